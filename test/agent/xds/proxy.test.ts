// The XDS proxy in-process against the test control plane over TLS: ports of Istio's
// TestXdsProxyBasicFlow, TestDeltaXdsProxyBasicFlow and the TestXdsProxyReconnects cases
// (pkg/istio-agent/xds_proxy_test.go, xds_proxy_delta_test.go), plus what they imply: requests
// reach istiod byte for byte, with the token, ClusterID and XDS_HEADER_* metadata; one active
// stream; upstream failures end Envoy's stream with the upstream status; metrics.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { configureLogging } from '../../../lib/log.js';
import { AdsConnection, TEST_NODE } from '../../support/ads-client.js';
import { envoyResource, TestControlPlane } from '../../support/control-plane.js';
import { until } from '../../support/security-env.js';
import { xdsPod } from '../../support/xds-agent.js';

/** A (sub)test's `t`. */
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

const logFile = join(mkdtempSync(join(tmpdir(), 'xds-proxy-log-')), 'agent.log');
configureLogging({ targets: [logFile], outputLevels: 'default:info,xdsproxy:debug' });
const logText = () => readFileSync(logFile, 'utf8');

const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const LDS = 'type.googleapis.com/envoy.config.listener.v3.Listener';

async function controlPlane(t: Tap, opts: Parameters<typeof TestControlPlane.start>[0] = {}): Promise<TestControlPlane> {
  const cp = await TestControlPlane.start(opts);
  cp.set(CDS, [envoyResource('envoy.config.cluster.v3.Cluster', 'outbound|80||a.default.svc.cluster.local', { name: 'outbound|80||a.default.svc.cluster.local', type: 'EDS' })]);
  cp.set(LDS, [envoyResource('envoy.config.listener.v3.Listener', 'virtualOutbound', { name: 'virtualOutbound' })]);
  t.teardown(() => cp.stop());
  return cp;
}

/** A control plane, the proxy for a pod pointed at it, and Envoy's connection to the proxy. */
async function proxied(t: Tap, opts: Parameters<typeof TestControlPlane.start>[0] = {}, env: Record<string, string> = {}) {
  const cp = await controlPlane(t, opts);
  const pod = await xdsPod(cp, { env });
  t.teardown(pod.stop);
  const conn = AdsConnection.connect(pod.socket);
  t.teardown(() => conn.close());
  return { cp, pod, conn };
}

/** Istio's sendDownstreamWithNode: CDS then LDS, each answered with its type. */
async function cdsThenLds(t: Tap, s: ReturnType<AdsConnection['stream']>, what: string): Promise<void> {
  const cds = await s.requestResponseAck(CDS);
  t.equal(cds.typeUrl, CDS, `${what}: cluster response`);
  const lds = await s.requestResponseAck(LDS);
  t.equal(lds.typeUrl, LDS, `${what}: listener response`);
}

for (const delta of [false, true]) {
  const flavour = delta ? 'delta' : 'SotW';
  t.test(`${delta ? 'TestDeltaXdsProxyBasicFlow' : 'TestXdsProxyBasicFlow'}: CDS and LDS proxied end to end (${flavour})`, async (t) => {
    const { cp, pod, conn } = await proxied(t, { requiredToken: 'test-token', requiredClusterId: 'Kubernetes' }, { XDS_HEADER_X_TENANT: 'blue', XDS_HEADER_Zone: 'z1' });
    const s = conn.stream(delta);
    const cds = await s.requestResponseAck(CDS);
    t.equal(cds.typeUrl, CDS);
    t.equal(cds.resources.length, 1, 'the cluster istiod sent');
    t.equal(cds.resources[0]!.type_url, CDS);
    if (delta) t.same(cds.names, ['outbound|80||a.default.svc.cluster.local']);
    const lds = await s.requestResponseAck(LDS);
    t.equal(lds.typeUrl, LDS);

    await cp.until(() => cp.requests.filter((r) => r.stream === 1).length === 4, 5000, 'requests and ACKs upstream');
    const got = cp.requests.filter((r) => r.stream === 1);
    t.same(
      got.map((r) => r.raw),
      s.sent,
      'istiod received every request byte for byte as Envoy sent it',
    );
    t.equal(got[0]!.node?.id, TEST_NODE.id, 'node as Envoy sent it');
    t.equal(cp.streams.length, 1);
    const md = cp.streams[0]!.metadata;
    t.equal(md.authorization, 'Bearer test-token', 'bearer token from the token file');
    t.equal(md.clusterid, 'Kubernetes', 'ClusterID');
    t.equal(md['x_tenant'], 'blue', 'XDS_HEADER_X_TENANT as x_tenant');
    t.equal(md.zone, 'z1', 'XDS_HEADER_Zone as zone (gRPC lower-cases keys)');
    t.equal(cp.streams[0]!.delta, delta, 'same API flavour upstream');
    t.match(logText(), new RegExp(`connected to ${delta ? 'delta ' : ''}upstream XDS server\\[\\d+\\]: ${cp.address}`));

    // A push after the initial exchange reaches Envoy too.
    cp.set(CDS, [envoyResource('envoy.config.cluster.v3.Cluster', 'c2', { name: 'c2' })]);
    const push = await s.next();
    t.equal(push.typeUrl, CDS, 'pushed CDS relayed');
    t.equal(push.versionInfo, 'v2');
    const m = pod.xds.metrics();
    t.equal(m.xds_proxy_requests, 4, 'xds_proxy_requests');
    t.equal(m.xds_proxy_responses, 3, 'xds_proxy_responses');
  });
}

t.test('TestXdsProxyReconnects', async (t) => {
  const waitDisconnect = async (cp: TestControlPlane) => cp.until(() => cp.liveStreams === 0, 5000, 'upstream stream closed');

  t.test('Envoy close and open stream', async (t) => {
    const { cp, conn } = await proxied(t);
    let s = conn.stream();
    await cdsThenLds(t, s, 'first stream');
    s.closeSend();
    t.same(await s.ended, { code: 0, details: 'OK' }, 'a half-close ends the stream with OK');
    await waitDisconnect(cp);
    s = conn.stream();
    await cdsThenLds(t, s, 'second stream');
    t.equal(cp.streams.length, 2, 'a new upstream stream for the new downstream one');
  });

  t.test('Envoy opens multiple stream', async (t) => {
    const { cp, conn } = await proxied(t);
    const first = conn.stream();
    await cdsThenLds(t, first, 'first stream');
    const second = conn.stream();
    await cdsThenLds(t, second, 'second stream');
    t.same(await first.ended, { code: 0, details: 'OK' }, 'the older stream is closed when a new one registers');
    await cp.until(() => cp.liveStreams === 1, 5000, 'one upstream stream');
    t.match(logText(), /registered overlapping stream; closing previous/);
  });

  t.test('Envoy closes connection', async (t) => {
    const { cp, pod, conn } = await proxied(t);
    const s = conn.stream();
    await cdsThenLds(t, s, 'first connection');
    conn.close();
    s.cancel();
    await waitDisconnect(cp);
    const c2 = AdsConnection.connect(pod.socket);
    t.teardown(() => c2.close());
    await cdsThenLds(t, c2.stream(), 'new connection');
  });

  t.test('Envoy sends concurrent requests', async (t) => {
    const { pod, conn } = await proxied(t);
    await cdsThenLds(t, conn.stream(), 'first connection');
    const c2 = AdsConnection.connect(pod.socket);
    t.teardown(() => c2.close());
    const s2 = c2.stream();
    await cdsThenLds(t, s2, 'second connection');
    conn.close();
    // The surviving stream keeps working: a new subscription is still answered.
    const r = await s2.requestResponseAck('type.googleapis.com/envoy.config.route.v3.RouteConfiguration', undefined, ['80']);
    t.equal(r.typeUrl, 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration', 'the second stream still proxies');
  });

  t.test('Istiod closes connection', async (t) => {
    const { cp, pod, conn } = await proxied(t);
    const s = conn.stream();
    await cdsThenLds(t, s, 'before istiod restarts');
    await cp.restart();
    const end = await s.ended;
    t.equal(end.code, 14, `Envoy's stream ends with the upstream status (UNAVAILABLE): ${end.details}`);
    await cdsThenLds(t, conn.stream(), 'after istiod restarted');
    const m = pod.xds.metrics();
    t.equal(m.istiod_connection_terminations, 1, 'istiod_connection_terminations');
    t.equal(pod.xds.metricsState.istiodTerminations.cancelled, 1, 'a dropped connection is an expected termination (type="cancelled")');
  });

  t.test('Istiod ends the stream gracefully (EOF): Envoy gets OK', async (t) => {
    const { cp, conn } = await proxied(t);
    const s = conn.stream(true);
    await cdsThenLds(t, s, 'delta');
    cp.endStreams();
    t.same(await s.ended, { code: 0, details: 'OK' });
  });

  t.test('Istiod fails the stream: Envoy gets the same status', async (t) => {
    const { cp, pod, conn } = await proxied(t);
    const s = conn.stream();
    await cdsThenLds(t, s, 'SotW');
    cp.endStreams({ code: 8, details: 'too many connections' });
    t.same(await s.ended, { code: 8, details: 'too many connections' });
    await until(() => /\twarn\txdsproxy\tupstream \[\d+\] terminated with unexpected error rpc error: code = ResourceExhausted desc = too many connections/.test(logText()), 2000, 'the warning');
    t.pass('an unexpected upstream error is a warning');
    t.equal(pod.xds.metricsState.istiodTerminations.error, 1, 'istiod_connection_terminations{type="error"}');
  });
});

t.test('unreachable istiod: the stream fails with UNAVAILABLE, debug log only, Envoy can retry', async (t) => {
  const cp = await controlPlane(t);
  const port = cp.port;
  const pod = await xdsPod(cp);
  t.teardown(pod.stop);
  await cp.stop();
  const conn = AdsConnection.connect(pod.socket);
  t.teardown(() => conn.close());
  const s = conn.stream();
  s.send({ type_url: CDS, node: TEST_NODE });
  const end = await s.ended;
  t.equal(end.code, 14, `UNAVAILABLE: ${end.details}`);
  t.match(logText(), /\tdebug\txdsproxy\tfailed to create upstream grpc client \[\d+\]/);
  t.equal(pod.xds.metricsState.istiodTerminations.error >= 1, true);
  // istiod comes back on the same address: Envoy's next stream works.
  const back = await TestControlPlane.start({ port });
  t.teardown(() => back.stop());
  // Same identity is not needed: the agent trusts the root file, so write the new one.
  back.writeRoot(join(pod.cwd, 'var/run/secrets/istio/root-cert.pem'));
  await cdsThenLds(t, conn.stream(), 'after istiod is back');
});
