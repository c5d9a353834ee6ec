// The whole agent (`pilot-agent proxy sidecar`) with the stand-in Envoy and the test control
// plane over TLS: Envoy's ADS stream over the generated bootstrap's xds-grpc pipe gets istiod's
// CDS/LDS and later pushes through the proxy; NDS (DNS capture on) is consumed by the agent and
// never reaches Envoy; istiod dropping the connection closes Envoy's stream and Envoy's next
// stream reconnects; a missing token is a clear log line and failed streams, not a crash.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadProtoRoot, PROJECT_PROTOS_DIR } from '../../../agent/protos.js';
import { spawnCli } from '../../support/cli.js';
import { envoyResource, rawResource, TestControlPlane } from '../../support/control-plane.js';
import { standin, standinBin, type StandinScript } from '../../support/envoy-standin/index.js';
import { freePorts } from '../../support/ports.js';
import { xdsEnv, xdsPodDir } from '../../support/xds-agent.js';

const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const LDS = 'type.googleapis.com/envoy.config.listener.v3.Listener';
const NDS = 'type.googleapis.com/istio.networking.nds.v1.NameTable';

const protos = await loadProtoRoot(['istio/networking/nds/v1/nds.proto'], [PROJECT_PROTOS_DIR]);
const NameTable = protos.lookupType('istio.networking.nds.v1.NameTable');
const nameTable = NameTable.encode(NameTable.fromObject({ table: { 'reviews.default.svc.cluster.local': { ips: ['10.96.0.12'], registry: 'Kubernetes' } } })).finish();

async function agentWithEnvoy(cp: TestControlPlane, opts: { delta: boolean; token?: string | null; script?: StandinScript; env?: Record<string, string> }) {
  const cwd = xdsPodDir(cp, { token: opts.token });
  const s = standin({ xds: { reconnectMs: 200 }, sds: false, ...opts.script }, cwd);
  const [adminPort, statusPort] = await freePorts(2);
  const env = {
    ...xdsEnv(cp, { proxyConfig: { binaryPath: standinBin, proxyAdminPort: adminPort, statusPort, drainDuration: '1s', terminationDrainDuration: '0.2s' } }),
    CA_PROVIDER: 'local',
    ISTIO_DELTA_XDS: String(opts.delta),
    ...s.env,
    ...opts.env,
  };
  const run = spawnCli(['proxy', 'sidecar'], { cwd, env });
  return { cwd, s, run };
}

for (const delta of [true, false]) {
  const flavour = delta ? 'delta' : 'SotW';
  t.test(`stand-in Envoy ↔ agent ↔ istiod (${flavour}): pushes relayed, NDS consumed, reconnect after istiod drops the connection`, async (t) => {
    const cp = await TestControlPlane.start({ requiredToken: 'test-token', requiredClusterId: 'Kubernetes' });
    t.teardown(() => cp.stop());
    cp.set(CDS, [envoyResource('envoy.config.cluster.v3.Cluster', 'outbound|9080||reviews.default.svc.cluster.local', { name: 'outbound|9080||reviews.default.svc.cluster.local', type: 'EDS' })]);
    cp.set(LDS, [envoyResource('envoy.config.listener.v3.Listener', 'virtualInbound', { name: 'virtualInbound' })]);
    cp.set(NDS, [rawResource(NDS, '', nameTable)]);
    const { s, run } = await agentWithEnvoy(cp, { delta, env: { ISTIO_META_DNS_CAPTURE: 'true' } });
    t.teardown(async () => {
      run.child.kill('SIGTERM');
      await run.exited;
    });

    const cds = await s.waitFor('xds-response', (e) => e.typeUrl === CDS);
    t.same(
      cds.resources.map((r) => r.name),
      ['outbound|9080||reviews.default.svc.cluster.local'],
      'Envoy got istiod’s clusters through the proxy',
    );
    await s.waitFor('xds-response', (e) => e.typeUrl === LDS);
    t.equal(cp.streams[0]!.delta, delta, `upstream ${flavour} like Envoy’s stream`);
    t.match(cp.requests[0]!.node, { id: 'sidecar~10.1.1.1~app-1.default~default.svc.cluster.local' }, 'the node from the generated bootstrap');

    // NDS: subscribed by the agent after Envoy's LDS request, ACKed by it, not forwarded.
    const ndsAck = await cp.request((r) => r.typeUrl === NDS && r.nonce !== '');
    t.notOk(ndsAck.errorDetail, 'the agent ACKed the name table');

    // A later push reaches Envoy.
    cp.set(LDS, [
      envoyResource('envoy.config.listener.v3.Listener', 'virtualInbound', { name: 'virtualInbound' }),
      envoyResource('envoy.config.listener.v3.Listener', 'virtualOutbound', { name: 'virtualOutbound' }),
    ]);
    const pushed = await s.waitFor('xds-response', (e) => e.typeUrl === LDS && e.resources.some((r) => r.name === 'virtualOutbound'));
    t.ok(pushed, 'LDS push relayed');
    t.notOk(
      s.events().some((e) => e.e === 'xds-response' && e.typeUrl === NDS),
      'NDS never reached Envoy',
    );

    // istiod goes away mid-stream: Envoy's stream is closed, and its reconnect gets a new upstream stream.
    const connects = s.events().filter((e) => e.e === 'xds-connect').length;
    await cp.restart();
    const closed = await s.waitFor('xds-closed');
    t.equal(closed.code, 14, `Envoy's stream closed with UNAVAILABLE (${closed.details})`);
    await s.waitFor('xds-connect', () => s.events().filter((e) => e.e === 'xds-connect').length > connects);
    await cp.until(() => cp.streams.length >= 2 && cp.requests.some((r) => r.stream === cp.streams.at(-1)!.id && r.typeUrl === CDS), 10_000, 'the reconnected stream');
    const again = await s.waitFor('xds-response', (e) => e.typeUrl === CDS && e.t > closed.t);
    t.ok(again, 'the new stream gets CDS again');
    t.equal(run.child.exitCode, null, 'the agent keeps running');
    run.child.kill('SIGTERM');
    const r = await run.exited;
    t.equal(r.code, 0);
    t.notMatch(r.stdout, /\t(error|fatal)\t/, 'no errors logged');
    t.match(r.stdout, /\tinfo\txdsproxy\tXDS proxy listening on ".*\/etc\/istio\/proxy\/XDS"/);
  });
}

t.test('a missing token: a clear log line, Envoy’s streams fail, the agent stays up', async (t) => {
  const cp = await TestControlPlane.start({ requiredToken: 'test-token' });
  t.teardown(() => cp.stop());
  const { s, run } = await agentWithEnvoy(cp, { delta: true, token: null });
  const closed = await s.waitFor('xds-closed');
  t.equal(closed.code, 16, `UNAUTHENTICATED: ${closed.details}`);
  await s.waitFor('xds-closed', (e) => e.t > closed.t);
  t.pass('Envoy retries and fails again');
  t.equal(run.child.exitCode, null, 'the agent is still running');
  run.child.kill('SIGTERM');
  const r = await run.exited;
  t.equal(r.code, 0, 'clean exit');
  t.match(r.stdout, /\twarn\tsecurity\tfailed to read token file .*var\/run\/secrets\/tokens\/istio-token: .*ENOENT.*; sending no authorization header/);
  t.match(r.stdout, /\twarn\txdsproxy\tupstream \[\d+\] terminated with unexpected error rpc error: code = Unauthenticated desc = authentication failure: no bearer token/);
});

t.test('no istiod root: one clear error, exit 255, Envoy never started, no XDS socket', async (t) => {
  const cp = await TestControlPlane.start();
  t.teardown(() => cp.stop());
  const cwd = xdsPodDir(cp, { root: false });
  const s = standin({}, cwd);
  const [adminPort, statusPort] = await freePorts(2);
  const r = await spawnCli(['proxy', 'sidecar'], { cwd, env: { ...xdsEnv(cp, { proxyConfig: { binaryPath: standinBin, proxyAdminPort: adminPort, statusPort } }), CA_PROVIDER: 'local', ...s.env } })
    .exited;
  t.equal(r.code, 255);
  const errors = r.stdout.split('\n').filter((l) => /\t(error|fatal)\t/.test(l));
  t.equal(errors.length, 1, errors.join('\n'));
  t.match(errors[0], /\terror\tfailed to find root CA cert for XDS: root CA file for XDS does not exist .*\/var\/run\/secrets\/istio\/root-cert\.pem$/);
  t.notOk(
    s.events().some((e) => e.e === 'start'),
    'Envoy not started',
  );
  t.notOk(existsSync(join(cwd, 'etc/istio/proxy/XDS')), 'no socket left behind');
});
