// `/quitquitquit` and `/drain` (Istio's handleQuit and handleDrain): TestHandleQuit's cases over
// HTTP, and both endpoints driving the real agent — buildSubsystems with the status server
// first, the Envoy subsystem and the stand-in Envoy — through the Envoy lifecycle. Also the
// debug endpoints and the status server as a subsystem (first to start, listen failures only
// logged).
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Agent, ShutdownController } from '../../../agent/agent.js';
import { buildSubsystems } from '../../../agent/subsystems.js';
import { isLoopback, StatusServer } from '../../../agent/status/index.js';
import { standinAgentConfig } from '../../support/envoy-standin/agent-config.js';
import { pidAlive, standin, writeTestBootstrap, type StandinScript } from '../../support/envoy-standin/index.js';
import { rawGet } from '../../support/metrics.js';
import { freePorts } from '../../support/ports.js';
import { statusServer } from './harness.js';

t.test('TestHandleQuit: loopback first (403), then POST (405), then shutdown without drain', async (t) => {
  const h = await statusServer();
  t.teardown(() => h.stop());
  const get = await rawGet(h.port, '/quitquitquit');
  t.equal(get.status, 405, 'should require POST method');
  t.equal(get.body.toString(), 'Method Not Allowed\n');
  t.notOk(h.lifecycle.signal.aborted, 'no shutdown');
  const drainGet = await rawGet(h.port, '/drain');
  t.equal(drainGet.status, 405);
  t.notOk(h.lifecycle.skipDrain);
  const post = await rawGet(h.port, '/quitquitquit', {}, 'POST');
  t.equal(post.status, 200, 'should send a sigterm for valid requests');
  t.equal(post.body.toString(), 'OK');
  await new Promise((r) => setTimeout(r, 50));
  t.ok(h.lifecycle.signal.aborted, 'shutdown requested');
  t.equal(h.lifecycle.signal.reason, '/quitquitquit called');
  t.ok(h.lifecycle.skipDrain, 'drain disabled');
  t.match(h.log(), /\tinfo\thandling \/quitquitquit, notifying pilot-agent to exit/);
});

t.test('TestHandleQuit over IPv6 loopback, and what counts as loopback', async (t) => {
  const h = await statusServer();
  t.teardown(() => h.stop());
  const r = await new Promise<number>((resolve, reject) => {
    import('node:http').then(({ request }) => {
      const req = request({ host: '::1', port: h.port, path: '/quitquitquit', method: 'POST', agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    }, reject);
  });
  t.equal(r, 200, 'should send a sigterm for valid ipv6 requests ([::1])');
  for (const ok of ['127.0.0.1', '127.0.0.6', '::1', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1']) t.ok(isLoopback(ok), ok);
  for (const no of ['10.0.0.1', '::ffff:10.0.0.1', 'fd00::1', '', undefined, 'garbage', '::6']) t.notOk(isLoopback(no), String(no));
});

t.test('debug endpoints, 404s', async (t) => {
  const h = await statusServer();
  t.teardown(() => h.stop());
  const cmdline = await rawGet(h.port, '/debug/pprof/cmdline');
  t.equal(cmdline.status, 200, 'TestPprof: /debug/pprof/cmdline from localhost');
  t.equal(cmdline.body.toString(), process.argv.join('\x00'));
  t.equal((await rawGet(h.port, '/debug/pprof/')).status, 200);
  t.equal((await rawGet(h.port, '/debug/pprof/goroutine')).status, 501, 'Go-only profiles: 501');
  const prof = await rawGet(h.port, '/debug/pprof/profile?seconds=0.2');
  t.equal(prof.status, 200);
  t.ok(Array.isArray((JSON.parse(prof.body.toString()) as { nodes: unknown[] }).nodes), 'a V8 CPU profile');
  const ndsz = await rawGet(h.port, '/debug/ndsz');
  t.equal(ndsz.status, 404);
  t.equal(ndsz.body.toString(), '{}', 'no DNS proxy: 404 {}');
  h.server.setDnsTable(() => ({ table: { 'a.default.svc.cluster.local': { ips: ['10.0.0.1'] } } }));
  const table = await rawGet(h.port, '/debug/ndsz');
  t.equal(table.headers['content-type'], 'application/json');
  t.same(JSON.parse(table.body.toString()), { table: { 'a.default.svc.cluster.local': { ips: ['10.0.0.1'] } } });
  const nf = await rawGet(h.port, '/nope');
  t.equal(nf.status, 404);
  t.equal(nf.body.toString(), '404 page not found\n');
  const off = await statusServer({ profiling: false });
  t.teardown(() => off.stop());
  t.equal((await rawGet(off.port, '/debug/pprof/cmdline')).status, 404, '--profiling=false: no pprof');
});

t.test('a status port already in use is logged, the agent carries on', async (t) => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, () => r()));
  t.teardown(() => blocker.close());
  const port = (blocker.address() as { port: number }).port;
  const h = await statusServer({ statusPort: port });
  t.equal(h.server.port, undefined, 'not listening');
  t.match(h.log(), /\terror\tError listening on status port: listen EADDRINUSE/);
  t.notOk(h.lifecycle.signal.aborted, 'no shutdown for a port that could not be opened');
  await h.stop();
});

// --- with the real agent ------------------------------------------------------------------------

const logFile = join(mkdtempSync(join(tmpdir(), 'status-agent-log-')), 'agent.log');

async function agent(script: StandinScript, proxyConfig: Record<string, unknown> = {}) {
  const s = standin({ exitWithParent: true, ...script });
  const [adminPort, statusPort] = await freePorts(2);
  const bootstrap = join(s.dir, 'bootstrap.json');
  const config = standinAgentConfig({
    s,
    adminPort: adminPort!,
    statusPort: statusPort!,
    iface: { name: 'lo', address: '127.0.0.1', internal: true },
    terminationDrainDuration: '5s',
    proxyConfig,
    env: { GRPC_XDS_BOOTSTRAP: '', ENVOY_PROMETHEUS_PORT: String(adminPort) },
  });
  const controller = new ShutdownController();
  const subsystems = await buildSubsystems(config, controller, {
    prepareBootstrap: async () => ({ path: writeTestBootstrap(bootstrap, { adminPort: adminPort! }), generated: false }),
    sds: false,
    xds: false,
  });
  const running = new Agent(config, subsystems).run(controller.signal);
  const start = await s.waitFor('start');
  return { s, controller, running, start, statusPort: statusPort!, subsystems };
}

t.test('the status server is the first subsystem, started before Envoy', async (t) => {
  const { configureLogging } = await import('../../../lib/log.js');
  configureLogging({ targets: [logFile], outputLevels: 'default:info' });
  const a = await agent({});
  t.equal(a.subsystems[0]!.name, 'status server');
  t.ok(a.subsystems[0] instanceof StatusServer);
  const log = readFileSync(logFile, 'utf8');
  t.ok(log.indexOf('Opening status port') < log.indexOf('Envoy command:'), 'listening before Envoy is started');
  a.controller.requestShutdown();
  await a.running;
  await t.rejects(rawGet(a.statusPort, '/healthz/ready'), 'closed when the agent is done');
});

t.test('POST /quitquitquit from loopback: Envoy killed without a drain, the agent ends', async (t) => {
  const a = await agent({});
  const t0 = Date.now();
  const r = await rawGet(a.statusPort, '/quitquitquit', {}, 'POST');
  t.equal(r.status, 200);
  await a.running;
  t.ok(Date.now() - t0 < 3000, 'no drain period (terminationDrainDuration is 5s)');
  t.notOk(
    a.s.events().some((e) => e.e === 'drain'),
    'no drain_listeners',
  );
  t.notOk(pidAlive(a.start.pid), 'Envoy is gone');
});

t.test('POST /drain from loopback: drain_listeners?inboundonly&graceful&skip_exit now; the later SIGTERM kills at once', async (t) => {
  const a = await agent({});
  const r = await rawGet(a.statusPort, '/drain', {}, 'POST');
  t.equal(r.status, 200);
  t.equal(r.body.toString(), 'OK');
  const drain = a.s.events().find((e) => e.e === 'drain');
  t.match(drain, { inboundOnly: true, graceful: true, skipExit: true }, 'the drain was sent before the answer');
  t.ok(a.controller.skipDrain, 'skip-drain set');
  t.ok(pidAlive(a.start.pid), 'Envoy keeps running after /drain');
  const t0 = Date.now();
  a.controller.shutdown('received signal: SIGTERM');
  await a.running;
  t.ok(Date.now() - t0 < 3000, 'SIGTERM after /drain: no second drain period');
  t.equal(a.s.events().filter((e) => e.e === 'drain').length, 1);
});

t.test('readiness during the SIGTERM drain: 503 "server is terminated", the server still answers', async (t) => {
  const a = await agent({ stats: { 'cluster_manager.cds.update_success': 1, 'listener_manager.lds.update_success': 1 } });
  t.equal((await rawGet(a.statusPort, '/healthz/ready')).status, 200);
  a.controller.shutdown('received signal: SIGTERM');
  const during = await rawGet(a.statusPort, '/healthz/ready');
  t.equal(during.status, 503);
  t.match(readFileSync(logFile, 'utf8'), /Envoy proxy is NOT ready: server is terminated: received signal: SIGTERM/);
  t.equal((await rawGet(a.statusPort, '/stats/prometheus')).status, 200, 'metrics are still served while Envoy drains');
  await a.running;
});
