// The Envoy lifecycle through the real `pilot-agent proxy` CLI with the stand-in Envoy: exit
// codes, the SIGTERM drain, EXIT_ON_ZERO_ACTIVE_CONNECTIONS, an Envoy that ignores SIGTERM, the
// bootstrap override, and bad binaries (one error, nothing left behind).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { spawnCli } from '../support/cli.js';
import { pidAlive, standin, standinBin, whenGone, writeTestBootstrap, type Standin, type StandinScript } from '../support/envoy-standin/index.js';
import { writeIstiodVolumes } from '../support/injection.js';
import { pilotAgentBin } from '../support/paths.js';
import { freePorts } from '../support/ports.js';

interface Pod {
  cwd: string;
  s: Standin;
  env: Record<string, string>;
  adminPort: number;
  bootstrap: string;
}

const CUSTOM = 'etc/istio/custom/bootstrap.json';

async function pod(script: StandinScript = {}, proxyConfig: Record<string, unknown> = {}, env: Record<string, string> = {}): Promise<Pod> {
  const cwd = mkdtempSync(join(tmpdir(), 'envoy-cli-'));
  // A pod mounts istiod's root and token: the agent's XDS proxy needs the root to start.
  writeIstiodVolumes(cwd);
  const s = standin(script, cwd);
  const [adminPort, statusPort] = await freePorts(2);
  const bootstrap = writeTestBootstrap(join(cwd, CUSTOM), { adminPort: adminPort! });
  return {
    cwd,
    s,
    adminPort: adminPort!,
    bootstrap,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      POD_NAME: 'app-1',
      POD_NAMESPACE: 'default',
      INSTANCE_IP: '10.244.1.17',
      PROXY_CONFIG: JSON.stringify({ binaryPath: standinBin, customConfigFile: CUSTOM, proxyAdminPort: adminPort, statusPort, drainDuration: '2s', terminationDrainDuration: '1s', ...proxyConfig }),
      // Workload certificates from the embedded CA: no istiod needed for lifecycle tests.
      CA_PROVIDER: 'local',
      ...s.env,
      ...env,
    },
  };
}

function agent(p: Pod, args = ['proxy', 'sidecar']) {
  return spawnCli(args, { cwd: p.cwd, env: p.env });
}

const lines = (out: string, level: string) => out.split('\n').filter((l) => l.includes(`\t${level}\t`));

t.test("the stand-in exits by itself → the agent exits with Istio's code (0), whatever Envoy's status", async (t) => {
  for (const [exit, log] of [
    [{ afterMs: 300, code: 0 }, /\tinfo\tEnvoy exited normally/],
    [{ afterMs: 300, code: 7 }, /\terror\tEnvoy exited with error: exit status 7/],
  ] as const) {
    const p = await pod({ exit });
    const r = await agent(p).exited;
    t.equal(r.code, 0, `Envoy exit ${exit.code}: agent exit 0`);
    t.match(r.stdout, log);
    t.match(r.stdout, /Envoy exited; agent shutting down/);
    t.ok(existsSync(p.bootstrap), 'a customConfigFile stays');
  }
});

t.test('SIGTERM: graceful drain_listeners, Envoy killed no earlier than terminationDrainDuration, agent exits 0', async (t) => {
  const p = await pod({ exitAfterDrain: false });
  const run = agent(p);
  const start = await p.s.waitFor('start');
  t.same(start.argv.slice(0, 2), ['-c', CUSTOM], 'the customConfigFile path, as configured');
  t.equal(start.cwd, p.cwd, "Envoy runs in the agent's working directory");
  run.child.kill('SIGTERM');
  const gone = await whenGone(start.pid);
  const r = await run.exited;
  t.equal(r.code, 0);
  const drain = await p.s.waitFor('drain');
  t.same({ ...drain, t: 0 }, { e: 'drain', t: 0, inboundOnly: true, graceful: true, skipExit: false });
  t.ok(gone - drain.t >= 1000, `Envoy killed ${gone - drain.t}ms after the drain call (terminationDrainDuration 1s)`);
  t.match(r.stdout, /Agent draining: received signal: SIGTERM/);
  t.match(r.stdout, /Graceful termination period is 1s, starting\.\.\./);
  t.equal(lines(r.stdout, 'error').length, 0, 'no errors');
});

t.test('a second SIGTERM during the drain does not cut it short or orphan Envoy', async (t) => {
  const p = await pod({ exitAfterDrain: false });
  const run = agent(p);
  const start = await p.s.waitFor('start');
  run.child.kill('SIGTERM');
  await p.s.waitFor('drain');
  run.child.kill('SIGTERM');
  const r = await run.exited;
  t.equal(r.code, 0);
  t.notOk(pidAlive(start.pid), 'Envoy gone when the agent is');
  t.match(r.stdout, /received signal: SIGTERM; already shutting down/);
  t.match(r.stdout, /Graceful termination period complete/);
});

t.test('EXIT_ON_ZERO_ACTIVE_CONNECTIONS: the agent waits until the count reaches zero, and not longer', async (t) => {
  const p = await pod(
    { stats: { 'listener.0.0.0.0_9080.downstream_cx_active': { value: 2, step: -1, everyMs: 1000, from: 'drain', min: 0 } }, exitAfterDrain: false },
    { terminationDrainDuration: '0.2s' },
    { EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'true', MINIMUM_DRAIN_DURATION: '0.5s' },
  );
  const run = agent(p);
  const start = await p.s.waitFor('start');
  run.child.kill('SIGTERM');
  const gone = await whenGone(start.pid);
  const r = await run.exited;
  t.equal(r.code, 0);
  const drain = await p.s.waitFor('drain');
  const after = gone - drain.t;
  t.ok(after >= 2000, `killed ${after}ms after the drain: not before the count reached zero (at 2000ms)`);
  t.ok(after < 2000 + 1600, 'within one poll of reaching zero');
  t.match(r.stdout, /There are no more active connections\. terminating proxy\.\.\./);
});

t.test('an Envoy that ignores SIGTERM still goes away (the whole process group gets SIGTERM)', async (t) => {
  const p = await pod({ ignoreSigterm: true, exitAfterDrain: false, exitWithParent: false });
  const child = spawn(process.execPath, [pilotAgentBin, 'proxy', 'sidecar'], { cwd: p.cwd, env: p.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = once(child, 'exit');
  const start = await p.s.waitFor('start');
  process.kill(-child.pid!, 'SIGTERM');
  await p.s.waitFor('signal');
  const [code] = await exited;
  t.equal(code, 0);
  await whenGone(start.pid, 2000);
  t.pass('Envoy gone');
  t.match(out, /Envoy aborted normally/);
});

t.test('ISTIO_BOOTSTRAP_OVERRIDE: converted and passed as --config-yaml; unreadable → one warning naming the file, flag left out', async (t) => {
  const p = await pod({ exit: { afterMs: 200 } }, {}, { HOST_IP: '10.0.0.5' });
  const override = join(p.cwd, 'custom_bootstrap.yaml');
  writeFileSync(override, 'tracing:\n  http:\n    name: envoy.tracers.zipkin\n    address: "$(HOST_IP):9411"\n');
  p.env.ISTIO_BOOTSTRAP_OVERRIDE = override;
  const r = await agent(p).exited;
  t.equal(r.code, 0);
  const argv = (await p.s.waitFor('start')).argv;
  t.same(argv.slice(argv.indexOf('--config-yaml'), argv.indexOf('--config-yaml') + 2), ['--config-yaml', '{"tracing":{"http":{"address":"10.0.0.5:9411","name":"envoy.tracers.zipkin"}}}']);

  const q = await pod({ exit: { afterMs: 200 } }, {}, { ISTIO_BOOTSTRAP_OVERRIDE: '/etc/istio/custom-bootstrap/custom_bootstrap.json' });
  const r2 = await agent(q).exited;
  t.equal(r2.code, 0);
  const warns = lines(r2.stdout, 'warn');
  t.equal(warns.length, 1, warns.join('\n'));
  t.match(warns[0], /Failed to read bootstrap override: failed to read file: \/etc\/istio\/custom-bootstrap\/custom_bootstrap\.json, ENOENT/);
  t.notOk((await q.s.waitFor('start')).argv.includes('--config-yaml'));
});

t.test('COMPLIANCE_POLICY=fips-140-2: Envoy gets GRPC_SSL_CIPHER_SUITES; proxyMetadata reaches its environment', async (t) => {
  const p = await pod({ exit: { afterMs: 200 } }, { proxyMetadata: { FROM_PROXY_METADATA: 'yes' } }, { COMPLIANCE_POLICY: 'fips-140-2' });
  t.equal((await agent(p).exited).code, 0);
  const start = await p.s.waitFor('start');
  t.equal(start.env.GRPC_SSL_CIPHER_SUITES, 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384');
  t.equal(start.env.FROM_PROXY_METADATA, 'yes');
  t.equal(start.env.POD_NAME, 'app-1');
});

t.test('bad binary: one clear error, exit 255, no Envoy, no files left behind', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'badbin-'));
  const notExec = join(dir, 'envoy');
  writeFileSync(notExec, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
  mkdirSync(join(dir, 'a-dir'));
  for (const [binaryPath, re] of [
    ['/usr/local/bin/envoy-does-not-exist', /cannot start Envoy: binary \/usr\/local\/bin\/envoy-does-not-exist not found \(ProxyConfig binaryPath\)$/],
    [notExec, /cannot start Envoy: binary .*\/envoy is not executable \(ProxyConfig binaryPath\)$/],
    [join(dir, 'a-dir'), /cannot start Envoy: binary .*\/a-dir is a directory/],
    ['envoy-not-on-path', /cannot start Envoy: binary envoy-not-on-path on PATH not found/],
  ] as const) {
    const p = await pod({}, { binaryPath, customConfigFile: '' });
    const before = readdirSync(p.cwd).sort();
    const r = await agent(p).exited;
    t.equal(r.code, 255, `${binaryPath}: exit 255`);
    const errors = lines(r.stdout, 'error');
    t.equal(errors.length, 1, errors.join('\n'));
    t.match(errors[0], re);
    t.same(p.s.events(), [], 'no Envoy was started');
    t.same(readdirSync(p.cwd).sort(), before, 'no files created');
    t.notOk(existsSync(join(p.cwd, 'etc/istio/proxy/envoy-rev.json')));
  }
});

t.test('DISABLE_ENVOY=true: the agent runs without Envoy and says so in one line', async (t) => {
  const p = await pod({}, {}, { DISABLE_ENVOY: 'true' });
  const run = agent(p);
  await run.waitFor(/runs without Envoy/);
  await new Promise((r) => setTimeout(r, 300));
  run.child.kill('SIGTERM');
  const r = await run.exited;
  t.equal(r.code, 0);
  t.equal(r.stdout.split('\n').filter((l) => /without Envoy/.test(l)).length, 1);
  t.same(p.s.events(), [], 'no Envoy started');
});

t.test("lazy start path: nothing heavy is loaded before Envoy is exec'd", async (t) => {
  const p = await pod({ exit: { afterMs: 100 } }, { customConfigFile: '' });
  // A resolve hook records every module the agent loads, with the time.
  const hooks = join(p.cwd, 'hooks.mjs');
  const loaded = join(p.cwd, 'loaded.txt');
  writeFileSync(
    hooks,
    `import { appendFileSync } from 'node:fs';\nexport async function resolve(s, c, next) { const r = await next(s, c); appendFileSync(${JSON.stringify(loaded)}, process.pid + ' ' + Date.now() + ' ' + r.url + '\\n'); return r; }\n`,
  );
  const register = join(p.cwd, 'register.mjs');
  writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(`file://${hooks}`)});\n`);
  const run = spawnCli(['proxy', 'sidecar'], { cwd: p.cwd, env: { ...p.env, NODE_OPTIONS: `--import=${register}` } });
  await p.s.waitFor('start');
  const r = await run.exited;
  t.equal(r.code, 0);
  // The agent logs the command line right before it spawns Envoy.
  const spawnLine = r.stdout.split('\n').find((l) => l.includes('\tEnvoy command: ['));
  t.ok(spawnLine, 'the agent logged the Envoy command');
  const spawnedAt = Date.parse(spawnLine!.split('\t')[0]!.replace(/(\.\d{3})\d{3}Z$/, '$1Z'));
  // Envoy (the stand-in) inherits NODE_OPTIONS too: keep the agent's own lines, up to Envoy's exec.
  const mine = readFileSync(loaded, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith(`${run.child.pid} `))
    .map((l) => l.split(' ') as [string, string, string]);
  const before = mine
    .filter(([, at]) => Number(at) <= spawnedAt)
    .map(([, , url]) => url)
    .join('\n');
  const after = mine
    .filter(([, at]) => Number(at) > spawnedAt)
    .map(([, , url]) => url)
    .join('\n');
  // The shipped bin is the bundle (packaging/bundle.mjs): the bootstrap is its own chunk, loaded
  // by the dynamic import that renders it.
  t.match(before, /dist\/bundle\/pilot-agent\.mjs/, 'the hook saw the start path');
  t.match(before, /dist\/bundle\/agent-bootstrap-\w+\.mjs/, 'the bootstrap was rendered before Envoy started');
  for (const heavy of ['node_modules/undici/', 'node_modules/yaml/', 'node_modules/@grpc/', 'node_modules/protobufjs/', 'node_modules/prom-client/', 'node_modules/node-forge/']) {
    t.notOk(before.includes(heavy), `${heavy} not loaded before Envoy starts`);
  }
  t.match(after, /node_modules\/@grpc\/grpc-js/, 'gRPC (SDS) loads while Envoy starts');
});

t.test('generated bootstrap: written to etc/istio/proxy/envoy-rev.json, valid for Envoy, gone after shutdown', async (t) => {
  const { loadEnvoySchema } = await import('../support/envoy-schema.js');
  const p = await pod({ exitAfterDrain: false }, { customConfigFile: '' });
  const run = agent(p);
  const start = await p.s.waitFor('start');
  t.same(start.argv.slice(0, 2), ['-c', 'etc/istio/proxy/envoy-rev.json'], 'the cleaned relative path, as Istio passes it');
  const file = join(p.cwd, 'etc/istio/proxy/envoy-rev.json');
  const bootstrap = JSON.parse(readFileSync(file, 'utf8')) as { node: { id: string }; admin: { address: { socket_address: { port_value: number } } } };
  t.equal(bootstrap.node.id, 'sidecar~10.244.1.17~app-1.default~default.svc.cluster.local');
  t.equal(bootstrap.admin.address.socket_address.port_value, p.adminPort, 'admin on the configured port: the stand-in serves it');
  const schema = loadEnvoySchema();
  t.doesNotThrow(() => schema.validate(bootstrap), 'parses strictly as envoy.config.bootstrap.v3.Bootstrap');
  run.child.kill('SIGTERM');
  const r = await run.exited;
  t.equal(r.code, 0);
  t.notOk(existsSync(file), 'the generated bootstrap is deleted when Envoy is gone');
});

t.test('a custom bootstrap template is one clear error, exit 255, Envoy never started', async (t) => {
  const p = await pod({}, { customConfigFile: '' }, { ISTIO_BOOTSTRAP: '/etc/istio/custom/tmpl.json' });
  const r = await agent(p).exited;
  t.equal(r.code, 255);
  const errors = lines(r.stdout, 'error');
  t.equal(errors.length, 1, errors.join('\n'));
  t.match(errors[0]!, /ISTIO_BOOTSTRAP/);
  t.notOk(
    p.s.events().some((e) => e.e === 'start'),
    'Envoy not started',
  );
});
