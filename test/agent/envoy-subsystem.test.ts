// The Envoy lifecycle inside the agent, in process with the real Agent, the Envoy subsystem and
// the stand-in Envoy: ports of Istio's TestStartExit and TestStartStop (pkg/envoy/agent_test.go),
// the /quitquitquit and /drain semantics the status server calls, the drain sequences, and
// the deletion of a generated bootstrap however Envoy ends.
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { configureLogging } from '../../lib/log.js';
import { Agent, ShutdownController } from '../../agent/agent.js';
import type { AgentConfig } from '../../config/index.js';
import type { PrepareBootstrap } from '../../agent/envoy/subsystem.js';
import { buildSubsystems } from '../../agent/subsystems.js';
import { EnvoyStartError } from '../../envoy/index.js';
import { standinAgentConfig } from '../support/envoy-standin/agent-config.js';
import { pidAlive, standin, standinBin, whenGone, writeTestBootstrap, type Standin, type StandinScript } from '../support/envoy-standin/index.js';
import { freePorts } from '../support/ports.js';

const logFile = join(mkdtempSync(join(tmpdir(), 'envoy-subsystem-log-')), 'agent.log');
configureLogging({ targets: [logFile], outputLevels: 'default:info' });
const logText = () => readFileSync(logFile, 'utf8');

interface Setup {
  s: Standin;
  config: AgentConfig;
  bootstrap: string;
  /** a prepare step that writes the bootstrap itself and reports it generated */
  generated: PrepareBootstrap;
}

async function setup(script: StandinScript, proxyConfig: Record<string, unknown> = {}, env: Record<string, string> = {}): Promise<Setup> {
  const s = standin({ exitWithParent: true, ...script });
  const [adminPort, statusPort] = await freePorts(2);
  const bootstrap = join(s.dir, 'etc/istio/proxy/envoy-rev.json');
  const config = standinAgentConfig({
    s,
    adminPort: adminPort!,
    statusPort: statusPort!,
    iface: { name: 'eth0', address: '10.244.1.17', internal: false },
    terminationDrainDuration: '0.6s',
    proxyConfig,
    env,
  });
  const generated: PrepareBootstrap = async () => ({ path: writeTestBootstrap(bootstrap, { adminPort: adminPort! }), generated: true });
  return { s, config, bootstrap, generated };
}

async function startAgent(x: Setup, prepareBootstrap = x.generated) {
  const controller = new ShutdownController();
  const agent = new Agent(x.config, await buildSubsystems(x.config, controller, { prepareBootstrap, sds: false, xds: false }));
  const running = agent.run(controller.signal);
  const start = await Promise.race([x.s.waitFor('start'), running.then(() => Promise.reject(new Error('agent ended before Envoy started')))]);
  return { controller, running, start };
}

t.test('TestStartExit: Envoy exiting ends the agent run, without a shutdown request', async (t) => {
  const x = await setup({ exit: { afterMs: 300, code: 0 } });
  const { controller, running } = await startAgent(x);
  await running;
  t.notOk(controller.signal.aborted, 'ended by Envoy, not by a shutdown');
  t.match(logText(), /\tinfo\tEnvoy exited normally\n/);
});

t.test('TestStartStop: the cleanup runs when Envoy stops — a generated bootstrap is deleted, a custom one kept', async (t) => {
  const x = await setup({ exit: { afterMs: 300, code: 3 } });
  const { running } = await startAgent(x);
  t.ok(existsSync(x.bootstrap), 'bootstrap present while Envoy runs');
  await running;
  t.notOk(existsSync(x.bootstrap), 'generated bootstrap deleted after Envoy exited');
  t.match(logText(), /\terror\tEnvoy exited with error: exit status 3\n/);

  const y = await setup({ exit: { afterMs: 300, code: 0 } });
  const custom = writeTestBootstrap(join(y.s.dir, 'custom.json'), { adminPort: y.config.proxyConfig.proxyAdminPort });
  const { running: r2 } = await startAgent(y, async () => ({ path: custom, generated: false }));
  await r2;
  t.ok(existsSync(custom), 'a customConfigFile is never deleted');
});

t.test("Envoy killed by a signal: Istio's OOM hint", async (t) => {
  const x = await setup({ exit: { afterMs: 200, signal: 'SIGKILL' } });
  const { running } = await startAgent(x);
  await running;
  t.match(logText(), /\twarn\tEnvoy may have been out of memory killed\. Check memory usage and limits\.\n.*\terror\tEnvoy exited with error: signal: killed\n/);
  t.notOk(existsSync(x.bootstrap));
});

t.test('shutdown (SIGTERM): graceful inbound drain, Envoy killed no earlier than terminationDrainDuration', async (t) => {
  const x = await setup({ exitAfterDrain: false });
  const { controller, running, start } = await startAgent(x);
  const t0 = Date.now();
  controller.shutdown('received signal: SIGTERM');
  const gone = await whenGone(start.pid);
  await running;
  const drain = await x.s.waitFor('drain');
  t.same({ ...drain, t: 0 }, { e: 'drain', t: 0, inboundOnly: true, graceful: true, skipExit: false });
  t.ok(gone - drain.t >= 600, `killed ${gone - drain.t}ms after the drain call (terminationDrainDuration 600ms)`);
  t.ok(gone - t0 < 3000, 'and not much later');
  t.notOk(
    x.s.events().some((e) => e.e === 'exit' || e.e === 'signal'),
    'no SIGTERM for Envoy: it is SIGKILLed',
  );
  t.notOk(existsSync(x.bootstrap), 'bootstrap deleted');
  t.match(logText(), /Graceful termination period is 600ms, starting\.\.\.\n.*Graceful termination period complete, terminating remaining proxies\.\n.*Envoy aborted normally/s);
});

t.test('shutdown: Envoy exiting by itself during the drain period ends the wait early', async (t) => {
  // drainDuration 1s < terminationDrainDuration 5s: Envoy exits at the end of its own drain.
  const x = await setup({}, { terminationDrainDuration: '5s' });
  const { controller, running, start } = await startAgent(x);
  const t0 = Date.now();
  controller.shutdown('received signal: SIGTERM');
  await running;
  t.ok(Date.now() - t0 < 4000, `agent done after ${Date.now() - t0}ms, not 5s`);
  t.notOk(pidAlive(start.pid));
  t.match(x.s.events().at(-1), { e: 'exit', reason: 'drain period over' });
  t.match(logText(), /Graceful termination logic ended prematurely, envoy process terminated early/);
  t.notOk(existsSync(x.bootstrap));
});

t.test('requestShutdown (/quitquitquit): no drain, Envoy killed at once', async (t) => {
  const x = await setup({}, { terminationDrainDuration: '5s' });
  const { controller, running, start } = await startAgent(x);
  const t0 = Date.now();
  controller.requestShutdown();
  await running;
  t.ok(Date.now() - t0 < 1500, 'no drain period');
  t.equal(controller.signal.reason, '/quitquitquit called', 'the cause readiness reports');
  t.notOk(
    x.s.events().some((e) => e.e === 'drain'),
    'no drain_listeners call',
  );
  t.notOk(pidAlive(start.pid));
  t.notOk(existsSync(x.bootstrap));
  t.match(logText(), /Agent already drained, exiting immediately/);
});

t.test('drain (/drain) then SIGTERM: skip_exit drain now, immediate kill later', async (t) => {
  const x = await setup({}, { terminationDrainDuration: '5s' });
  const { controller, running, start } = await startAgent(x);
  await controller.drain();
  const drain = await x.s.waitFor('drain');
  t.same({ ...drain, t: 0 }, { e: 'drain', t: 0, inboundOnly: true, graceful: true, skipExit: true });
  t.ok(controller.skipDrain);
  t.notOk(controller.signal.aborted, '/drain does not stop the agent');
  await new Promise((r) => setTimeout(r, 1300)); // past Envoy's 1s drain time
  t.ok(pidAlive(start.pid), 'Envoy keeps running after a skip_exit drain');
  const t0 = Date.now();
  controller.shutdown('received signal: SIGTERM');
  await running;
  t.ok(Date.now() - t0 < 1500, 'the later SIGTERM kills Envoy without another drain period');
  t.equal(x.s.events().filter((e) => e.e === 'drain').length, 1, 'drained once');
  t.notOk(existsSync(x.bootstrap));
});

t.test('EXIT_ON_ZERO_ACTIVE_CONNECTIONS: Envoy is killed when the count reaches zero, not later', async (t) => {
  const x = await setup(
    { stats: { 'listener.0.0.0.0_8080.downstream_cx_active': { value: 3, step: -1, everyMs: 1000, from: 'drain', min: 0 }, 'listener.0.0.0.0_15021.downstream_cx_active': 7 }, exitAfterDrain: false },
    { terminationDrainDuration: '1s' },
    { EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'true', MINIMUM_DRAIN_DURATION: '1s' },
  );
  const { controller, running, start } = await startAgent(x);
  controller.shutdown('received signal: SIGTERM');
  const gone = await whenGone(start.pid);
  await running;
  const drain = await x.s.waitFor('drain');
  const after = gone - drain.t;
  t.ok(after >= 3000, `not killed before the count reached zero (${after}ms; zero at 3000ms; terminationDrainDuration ignored)`);
  t.ok(after < 3000 + 1600, `killed within one poll of reaching zero (${after}ms)`);
  const polls = x.s.events().filter((e) => e.e === 'admin' && e.path === '/stats?usedonly&filter=downstream_cx_active$');
  t.ok(polls.length >= 2, 'polled the connection count');
  t.ok(polls[0]!.t - drain.t >= 1000, 'first poll after MINIMUM_DRAIN_DURATION');
  t.match(logText(), /There are still 1 active connections\n.*There are no more active connections\. terminating proxy\.\.\./s);
  t.notOk(existsSync(x.bootstrap));
});

t.test('EXIT_ON_ZERO_ACTIVE_CONNECTIONS: stats unavailable or failing end the wait', async (t) => {
  const none = await setup({ stats: {}, exitAfterDrain: false, adminStatus: {} }, {}, { EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'true', MINIMUM_DRAIN_DURATION: '100ms' });
  // A filter that matches nothing returns an empty body: "stats not available".
  const a = await startAgent(none);
  a.controller.shutdown('received signal: SIGTERM');
  await a.running;
  t.match(logText(), /downstream_cx_active are not available/);

  const failing = await setup({ adminStatus: { '/stats': 500 }, exitAfterDrain: false }, {}, { EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'true', MINIMUM_DRAIN_DURATION: '100ms' });
  const b = await startAgent(failing);
  const t0 = Date.now();
  b.controller.shutdown('received signal: SIGTERM');
  await b.running;
  t.ok(Date.now() - t0 < 9000);
  t.equal(failing.s.events().filter((e) => e.e === 'admin' && e.path.startsWith('/stats')).length, 5, 'five failed reads, then abort');
  t.match(logText(), /Max retry 5 exceeded/);
});

t.test('a bad binary: the start fails before the bootstrap step; an exec failure removes a generated bootstrap', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'badbin-'));
  const notExec = join(dir, 'envoy');
  writeFileSync(notExec, '#!/bin/sh\n', { mode: 0o644 });
  for (const [binaryPath, re] of [
    [join(dir, 'missing'), /binary .*missing not found/],
    [notExec, /is not executable/],
    [dir, /is a directory/],
  ] as const) {
    const x = await setup({}, { binaryPath });
    let prepared = false;
    const controller = new ShutdownController();
    // Checked when the subsystems are built, before any of them starts or writes anything.
    await t.rejects(buildSubsystems(x.config, controller, { prepareBootstrap: async () => ((prepared = true), x.generated()), sds: false, xds: false }), { name: 'EnvoyStartError', message: re });
    t.notOk(prepared, 'no bootstrap was written');
  }
  // Executable, but the exec fails (its interpreter does not exist): the check passes, the spawn fails.
  const badInterpreter = join(dir, 'bad-interpreter');
  writeFileSync(badInterpreter, '#!/nonexistent/interpreter\n');
  chmodSync(badInterpreter, 0o755);
  const x = await setup({}, { binaryPath: badInterpreter });
  const controller = new ShutdownController();
  const agent = new Agent(x.config, await buildSubsystems(x.config, controller, { prepareBootstrap: x.generated, sds: false, xds: false }));
  await t.rejects(agent.run(controller.signal), EnvoyStartError);
  t.notOk(existsSync(x.bootstrap), 'the generated bootstrap is removed when the exec fails');
});

t.test('DISABLE_ENVOY: no Envoy subsystem, one line saying so', async (t) => {
  const x = await setup({});
  const config = { ...x.config, env: { ...x.config.env, DISABLE_ENVOY: true } } as AgentConfig;
  const before = logText().length;
  t.same(
    (await buildSubsystems(config, new ShutdownController(), { sds: false, xds: false })).map((s) => s.name),
    ['status server'],
    'only the status server',
  );
  t.equal(
    logText().slice(before),
    logText()
      .slice(before)
      .split('\n')
      .filter(Boolean)
      .map((l) => `${l}\n`)
      .join(''),
  );
  t.match(logText().slice(before), /^\S+\tinfo\tDISABLE_ENVOY is set: the agent runs without Envoy\n$/);
});

t.test('root agent with the DNS proxy on :53 runs Envoy as uid/gid 1337', { skip: process.getuid?.() === 0 || process.env.CI === 'true' ? false : 'needs root (runs in CI)' }, async (t) => {
  // uid 1337 must be able to read the stand-in wherever the checkout lives: run a copy from /tmp.
  const copy = mkdtempSync(join(tmpdir(), 'standin-copy-'));
  chmodSync(copy, 0o755);
  for (const f of ['envoy.js', 'flags.js', 'script.js']) copyFileSync(join(dirname(standinBin), f), join(copy, f));
  writeFileSync(join(copy, 'package.json'), '{"type":"module"}');
  chmodSync(join(copy, 'envoy.js'), 0o755);
  const x = await setup({ xds: false, sds: false }, { binaryPath: join(copy, 'envoy.js') }, { DNS_PROXY_ADDR: 'localhost:53' });
  const { controller, running, start } = await startAgent(x);
  t.equal(start.uid, 1337);
  t.equal(start.gid, 1337);
  controller.requestShutdown();
  await running;
});
