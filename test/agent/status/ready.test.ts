// Readiness: ports of Istio's probe_test.go (TestEnvoyStatsCompleteAndSuccessful,
// TestEnvoyDraining, TestEnvoyStats/*, TestEnvoyInitializing, TestEnvoyNoClusterManagerStats,
// TestEnvoyNoServerStats, TestEnvoyReadinessCache) against an admin server answering Istio's
// fixtures, the gRPC bootstrap probe against files the tests write, TestAdditionalProbes, and
// `/healthz/ready` over HTTP against the stand-in Envoy.
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { checkAll, dnsReadinessProbe, EnvoyReadinessProbe, GrpcBootstrapProbe, parseEnvoyStats, type ReadinessProbe } from '../../../agent/status/index.js';
import { runStandin } from '../../support/envoy-standin/index.js';
import { statusServer } from './harness.js';

const liveServerStats = 'cluster_manager.cds.update_success: 1\nlistener_manager.lds.update_success: 1\nserver.state: 0\nlistener_manager.workers_started: 1';
const onlyServerStats = 'server.state: 0';
const initServerStats = 'cluster_manager.cds.update_success: 1\nlistener_manager.lds.update_success: 1\nserver.state: 2';
const noServerStats = '';

/** Istio's testserver: `/stats` answers `body`, filtered by the query's regex as Envoy does. */
async function statsServer(body: string): Promise<{ port: number; srv: Server; seen: IncomingMessage[] }> {
  const seen: IncomingMessage[] = [];
  const srv = createServer((req, res) => {
    seen.push(req);
    res.end(body);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { port: (srv.address() as AddressInfo).port, srv, seen };
}

const close = (srv: Server) => new Promise((r) => srv.close(r));
const probeFor = (port: number, shutdown?: AbortSignal) => new EnvoyReadinessProbe({ adminHost: '127.0.0.1', adminPort: port, ...(shutdown ? { shutdown } : {}) });

t.test('TestEnvoyStatsCompleteAndSuccessful', async (t) => {
  const s = await statsServer(liveServerStats);
  t.teardown(() => close(s.srv));
  await t.resolves(probeFor(s.port).check());
  t.match(decodeURIComponent(s.seen[0]!.url!), /^\/stats\?usedonly&filter=\^\(cluster_manager\\\.cds\|listener_manager\\\.lds\)\\\.\(update_success\|update_rejected\)\$$/, "Istio's config query");
  t.match(decodeURIComponent(s.seen[1]!.url!), /^\/stats\?usedonly&filter=\^\(server\\\.state\|listener_manager\\\.workers_started\)$/, "Istio's liveness query");
});

t.test('TestEnvoyDraining: a cancelled agent is not ready, even after success', async (t) => {
  const s = await statsServer(liveServerStats);
  t.teardown(() => close(s.srv));
  const ctl = new AbortController();
  const p = probeFor(s.port, ctl.signal);
  await t.resolves(p.check());
  ctl.abort('received signal: terminated');
  await t.rejects(p.check(), { message: 'server is terminated: received signal: terminated' });
});

t.test('TestEnvoyStats: exact messages', async (t) => {
  const cases: [string, string, string][] = [
    ['only lds', 'listener_manager.lds.update_success: 1', 'config not fully received from XDS server: cds updates: 0 successful, 0 rejected; lds updates: 1 successful, 0 rejected'],
    ['only cds', 'cluster_manager.cds.update_success: 1', 'config not fully received from XDS server: cds updates: 1 successful, 0 rejected; lds updates: 0 successful, 0 rejected'],
    [
      'reject CDS',
      'cluster_manager.cds.update_rejected: 1\nlistener_manager.lds.update_success: 1',
      'config received from XDS server, but was rejected: cds updates: 0 successful, 1 rejected; lds updates: 1 successful, 0 rejected',
    ],
    ['no config', '', 'config not received from XDS server (is Istiod running?): cds updates: 0 successful, 0 rejected; lds updates: 0 successful, 0 rejected'],
    ['workers not started', '\ncluster_manager.cds.update_success: 1\nlistener_manager.lds.update_success: 1\nlistener_manager.workers_started: 0\nserver.state: 0', 'workers have not yet started'],
    ['full', '\ncluster_manager.cds.update_success: 1\nlistener_manager.lds.update_success: 1\nlistener_manager.workers_started: 1\nserver.state: 0', ''],
  ];
  for (const [name, stats, want] of cases) {
    const s = await statsServer(stats);
    if (want === '') await t.resolves(probeFor(s.port).check(), name);
    else await t.rejects(probeFor(s.port).check(), { message: want }, name);
    await close(s.srv);
  }
});

t.test('TestEnvoyInitializing, TestEnvoyNoClusterManagerStats, TestEnvoyNoServerStats', async (t) => {
  for (const [stats, want] of [
    [initServerStats, /^failed to get readiness stats: listener_manager\.workers_started is not yet updated/],
    [`${initServerStats}\nlistener_manager.workers_started: 1`, /^server is not live, current state is: PRE_INITIALIZING$/],
    [`${initServerStats.replace('state: 2', 'state: 1')}\nlistener_manager.workers_started: 1`, /^server is not live, current state is: DRAINING$/],
    [onlyServerStats, /^config not received from XDS server/],
    [noServerStats, /^config not received from XDS server/],
  ] as const) {
    const s = await statsServer(stats);
    await t.rejects(probeFor(s.port).check(), { message: want });
    await close(s.srv);
  }
  const s = await statsServer('cluster_manager.cds.update_success: 1\nlistener_manager.lds.update_success: 1\nlistener_manager.workers_started: 1');
  await t.rejects(probeFor(s.port).check(), { message: /server\.state is not yet updated/ });
  await close(s.srv);
});

t.test('TestEnvoyReadinessCache: both parts are sticky once passed', async (t) => {
  let s = await statsServer(noServerStats);
  // As Istio's test moves probe.AdminPort, this one points the probe at the next server.
  const o = { adminHost: '127.0.0.1', adminPort: s.port };
  const p = new EnvoyReadinessProbe(o);
  await t.rejects(p.check());
  await t.rejects(p.check());
  await close(s.srv);
  s = await statsServer(liveServerStats);
  o.adminPort = s.port;
  await t.resolves(p.check());
  await close(s.srv);
  s = await statsServer(noServerStats);
  o.adminPort = s.port;
  await t.resolves(p.check(), 'cached: an Envoy reporting nothing does not matter any more');
  t.equal(s.seen.length, 0, 'cached: Envoy is not asked');
  await close(s.srv);
  await t.resolves(p.check(), 'cached: no admin call at all');
});

t.test('admin errors are reported, not thrown past the probe', async (t) => {
  const s = await statsServer('');
  const port = s.port;
  await close(s.srv);
  await t.rejects(probeFor(port).check(), { message: /ECONNREFUSED/ });
  const bad = await statsServer('cluster_manager.cds.update_success: 1\nlistener_manager.lds.update_success: 1\nserver.state: x\nlistener_manager.workers_started: 1');
  await t.rejects(probeFor(bad.port).check(), { message: /failed to get readiness stats: failed parsing Envoy stat server.state/ });
  await close(bad.srv);
  t.same(
    [...parseEnvoyStats('a: 1\na: 2\nb:3\n', ['a', 'b', 'c'])],
    [
      ['a', 1],
      ['b', 3],
      ['c', 0],
    ],
    'first line per name; absent = 0',
  );
});

t.test('gRPC bootstrap probe: the file must load (cached), file_watcher certificates must exist (every time)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'grpc-boot-'));
  const p = new GrpcBootstrapProbe('etc/istio/proxy/grpc-bootstrap.json', dir);
  await t.rejects(p.check(), { message: /^failed loading etc\/istio\/proxy\/grpc-bootstrap\.json: ENOENT/ }, 'missing file');
  mkdirSync(join(dir, 'etc/istio/proxy'), { recursive: true });
  writeFileSync(join(dir, 'etc/istio/proxy/grpc-bootstrap.json'), '{"xds_servers": [');
  await t.rejects(p.check(), { message: /^failed loading etc\/istio\/proxy\/grpc-bootstrap\.json: / }, 'not JSON');
  const boot = {
    xds_servers: [{ server_uri: 'unix:///etc/istio/proxy/XDS', channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: 'sidecar~10.0.0.1~a.default~default.svc.cluster.local' },
    certificate_providers: {
      default: { plugin_name: 'file_watcher', config: { certificate_file: 'out/cert-chain.pem', private_key_file: 'out/key.pem', ca_certificate_file: 'out/root-cert.pem', refresh_interval: '900s' } },
    },
  };
  writeFileSync(join(dir, 'etc/istio/proxy/grpc-bootstrap.json'), JSON.stringify(boot));
  await t.rejects(p.check(), { message: 'out/cert-chain.pem does not exist' });
  mkdirSync(join(dir, 'out'));
  for (const f of ['cert-chain.pem', 'key.pem']) writeFileSync(join(dir, 'out', f), 'x');
  await t.rejects(p.check(), { message: 'out/root-cert.pem does not exist' });
  writeFileSync(join(dir, 'out/root-cert.pem'), 'x');
  await t.resolves(p.check());
  rmSync(join(dir, 'etc/istio/proxy/grpc-bootstrap.json'));
  await t.resolves(p.check(), 'the loaded bootstrap is cached');
  rmSync(join(dir, 'out/key.pem'));
  await t.rejects(p.check(), { message: 'out/key.pem does not exist' }, 'certificates are checked every time');
  const plain = new GrpcBootstrapProbe(join(dir, 'plain.json'));
  writeFileSync(join(dir, 'plain.json'), JSON.stringify({ ...boot, certificate_providers: undefined }));
  await t.resolves(plain.check(), 'no certificate provider: loading is enough');
});

t.test('TestAdditionalProbes: extra probes are ANDed after the built-in ones, first error wins', async (t) => {
  const s = await statsServer(liveServerStats);
  t.teardown(() => close(s.srv));
  const ready: ReadinessProbe = { check: async () => {} };
  const notReady: ReadinessProbe = {
    check: async () => {
      throw new Error('not ready');
    },
  };
  await t.resolves(checkAll([probeFor(s.port), ready]), 'success probe');
  await t.rejects(checkAll([probeFor(s.port), notReady]), { message: 'not ready' }, 'not ready probe');
  await t.rejects(checkAll([probeFor(s.port), ready, notReady]), { message: 'not ready' }, 'both probes');
  let table = false;
  const dns = dnsReadinessProbe(() => table);
  await t.rejects(dns.check(), { message: 'istio DNS capture is turned ON and DNS lookup table is not ready yet' });
  table = true;
  await t.resolves(dns.check());
});

t.test('/healthz/ready over HTTP against the stand-in Envoy', async (t) => {
  const e = await runStandin({ stats: { 'cluster_manager.cds.update_success': 0, 'listener_manager.lds.update_success': 0, 'server.state': 2 } });
  t.teardown(() => e.stop());
  const dir = mkdtempSync(join(tmpdir(), 'ready-http-'));
  const h = await statusServer({ adminPort: e.adminPort, grpcBootstrap: '' }, {}, dir);
  t.teardown(() => h.stop());
  const r1 = await fetch(`http://127.0.0.1:${h.port}/healthz/ready`);
  t.equal(r1.status, 503);
  t.equal(await r1.text(), '', 'empty body');
  t.match(h.log(), /\twarn\tEnvoy proxy is NOT ready: config not received from XDS server \(is Istiod running\?\)/);
  await e.stop();

  const live = await runStandin({ stats: { 'cluster_manager.cds.update_success': 1, 'listener_manager.lds.update_success': 2 } });
  t.teardown(() => live.stop());
  const h2 = await statusServer({ adminPort: live.adminPort, grpcBootstrap: 'grpc-bootstrap.json' }, {}, dir);
  t.teardown(() => h2.stop());
  t.equal((await fetch(`http://127.0.0.1:${h2.port}/healthz/ready`)).status, 503, 'the gRPC bootstrap is checked too (no file yet)');
  t.match(h2.log(), /Envoy proxy is NOT ready: failed loading grpc-bootstrap\.json/);
  writeFileSync(join(dir, 'grpc-bootstrap.json'), '{}');
  const ok = await fetch(`http://127.0.0.1:${h2.port}/healthz/ready`, { method: 'POST' });
  t.equal(ok.status, 200, 'any method');
  t.equal(await ok.text(), '');
  t.equal(
    h2
      .log()
      .split('\n')
      .filter((l) => l.endsWith('\tinfo\tEnvoy proxy is ready')).length,
    1,
    'the transition is logged',
  );
  await fetch(`http://127.0.0.1:${h2.port}/healthz/ready`);
  t.equal(
    h2
      .log()
      .split('\n')
      .filter((l) => l.endsWith('\tinfo\tEnvoy proxy is ready')).length,
    1,
    '…once',
  );
  const calls = live.s.events().filter((ev) => ev.e === 'admin' && ev.path.startsWith('/stats?')).length;
  await fetch(`http://127.0.0.1:${h2.port}/healthz/ready`);
  t.equal(live.s.events().filter((ev) => ev.e === 'admin' && ev.path.startsWith('/stats?')).length, calls, 'once ready, Envoy is not asked again');
  t.ok(h2.server.metrics.startupSeconds! > 0, 'startup duration recorded');
  const m = await (await fetch(`http://127.0.0.1:${h2.port}/stats/prometheus`)).text();
  t.match(m, /\n# TYPE istio_agent_startup_duration_seconds gauge\nistio_agent_startup_duration_seconds \d/);
  h2.lifecycle.requestShutdown('received signal: terminated');
  t.equal((await fetch(`http://127.0.0.1:${h2.port}/healthz/ready`)).status, 503, 'not ready while shutting down');
  t.match(h2.log(), /Envoy proxy is NOT ready: server is terminated: received signal: terminated/);
});
