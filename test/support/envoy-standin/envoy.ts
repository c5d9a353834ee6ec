#!/usr/bin/env node
// The stand-in Envoy (test code, never shipped): started by the agent exactly as Envoy would be.
// It parses Envoy's flags (and refuses what Envoy refuses), reads the bootstrap (`-c`, merged
// with `--config-yaml`), serves the admin API on the bootstrap's admin address with scriptable
// stats, opens the SDS and ADS streams over the bootstrap's Unix-socket clusters, records what it
// was asked to a file, and exits like Envoy: on SIGTERM/SIGINT, /quitquitquit, at the end of a
// graceful drain without skip_exit, or when scripted to.
import { appendFileSync, createReadStream, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { EnvoyFlagError, parseEnvoyFlags, type EnvoyFlags } from './flags.js';
import { statValue, type StandinEvent, type StandinScript } from './script.js';

type Json = Record<string, unknown>;

const argv = process.argv.slice(2);
const recordFile = process.env.ENVOY_STANDIN_RECORD;
const startedAt = Date.now();
let drainedAt: number | undefined;

function record(ev: StandinEvent): void {
  if (recordFile) appendFileSync(recordFile, `${JSON.stringify(ev)}\n`);
}

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  record({ e: 'start-error', t: Date.now(), argv, message });
  process.exit(1);
}

function exitWith(code: number, reason: string): void {
  record({ e: 'exit', t: Date.now(), code, reason });
  process.exit(code);
}

function loadScript(): StandinScript {
  const v = process.env.ENVOY_STANDIN_SCRIPT;
  if (!v) return {};
  try {
    return JSON.parse(v.trimStart().startsWith('{') ? v : readFileSync(v, 'utf8')) as StandinScript;
  } catch (err) {
    return fail(`stand-in: bad ENVOY_STANDIN_SCRIPT: ${(err as Error).message}`);
  }
}

/** Envoy merges --config-yaml over the file as protobuf MergeFrom: messages merge, lists append. */
function protoMerge(base: unknown, over: unknown): unknown {
  if (Array.isArray(base) && Array.isArray(over)) return [...base, ...over];
  if (base && over && typeof base === 'object' && typeof over === 'object' && !Array.isArray(base) && !Array.isArray(over)) {
    const out: Json = { ...(base as Json) };
    for (const [k, v] of Object.entries(over as Json)) out[k] = k in out ? protoMerge(out[k], v) : v;
    return out;
  }
  return over;
}

async function readBootstrap(flags: EnvoyFlags): Promise<Json> {
  let boot: unknown = {};
  const path = flags.get('--config-path');
  if (path !== undefined) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      return fail(`error initializing configuration '${path}': unable to read file: ${(err as Error).message}`);
    }
    try {
      boot = /\.ya?ml$/.test(path) ? (await import('yaml')).parse(text) : JSON.parse(text);
    } catch (err) {
      return fail(`error initializing configuration '${path}': Unable to parse JSON as proto (${(err as Error).message})`);
    }
  }
  const yamlFlag = flags.get('--config-yaml');
  if (yamlFlag !== undefined) {
    try {
      boot = protoMerge(boot, (await import('yaml')).parse(yamlFlag));
    } catch (err) {
      return fail(`error initializing configuration '': --config-yaml does not parse: ${(err as Error).message}`);
    }
  }
  return (boot ?? {}) as Json;
}

const STATE_NAMES = ['LIVE', 'DRAINING', 'PRE_INITIALIZING', 'INITIALIZING'];

function main(script: StandinScript, flags: EnvoyFlags, bootstrap: Json): void {
  const counters = new Map<string, number>([
    ['cluster_manager.cds.update_success', 0],
    ['cluster_manager.cds.update_rejected', 0],
    ['listener_manager.lds.update_success', 0],
    ['listener_manager.lds.update_rejected', 0],
    ['control_plane.connected_state', 0],
  ]);

  function stats(): Map<string, number> {
    const now = Date.now();
    const out = new Map<string, number>([['server.state', 0], ['listener_manager.workers_started', 1], ...counters]);
    for (const [name, s] of Object.entries(script.stats ?? {})) {
      if (s === null) out.delete(name);
      else out.set(name, statValue(s, now, startedAt, drainedAt));
    }
    return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  function prometheusText(): string {
    let body = '';
    for (const [name, v] of stats()) {
      const metric = `envoy_${name.replace(/[^a-zA-Z0-9_]/g, '_')}`;
      body += `# TYPE ${metric} ${/update_|_total$/.test(name) ? 'counter' : 'gauge'}\n${metric} ${v}\n`;
    }
    return body;
  }

  const drainSeconds = Number(flags.get('--drain-time-s') ?? '600');
  const postOnly = new Set(['/drain_listeners', '/quitquitquit', '/healthcheck/fail', '/healthcheck/ok']);

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : String(v ?? '');
    record({ e: 'admin', t: Date.now(), method: req.method ?? '', path: req.url ?? '', headers });
    const reply = (status: number, body: string, type = 'text/plain; charset=UTF-8') => {
      res.writeHead(status, { 'content-type': type });
      res.end(body);
    };
    const scripted = script.adminStatus?.[path];
    if (scripted !== undefined) return reply(scripted, `scripted status ${scripted}\n`);
    if (postOnly.has(path) && req.method !== 'POST') return reply(405, 'Method GET not allowed, POST required.\n');
    const st = stats();
    switch (path) {
      case '/ready': {
        const state = st.get('server.state') ?? 0;
        return reply(state === 0 ? 200 : 503, `${STATE_NAMES[state] ?? state}\n`);
      }
      case '/stats': {
        if (url.searchParams.get('format') === 'prometheus') return reply(200, prometheusText());
        const filter = url.searchParams.get('filter');
        let re: RegExp | undefined;
        try {
          re = filter ? new RegExp(filter) : undefined;
        } catch {
          return reply(400, `Invalid re2 regex\n`);
        }
        const picked = [...st].filter(([n]) => !re || re.test(n));
        if (url.searchParams.get('format') === 'json') return reply(200, JSON.stringify({ stats: picked.map(([name, value]) => ({ name, value })) }), 'application/json');
        return reply(200, picked.map(([n, v]) => `${n}: ${v}\n`).join(''));
      }
      case '/stats/prometheus':
        if (script.prometheusFile) {
          res.writeHead(200, { 'content-type': 'text/plain; charset=UTF-8' });
          createReadStream(script.prometheusFile).pipe(res);
          return;
        }
        return reply(200, script.prometheus ?? prometheusText());
      case '/server_info': {
        const state = st.get('server.state') ?? 0;
        const info = {
          version: 'stand-in/1.0.0/Clean/RELEASE/BoringSSL',
          state: STATE_NAMES[state] ?? String(state),
          uptime_current_epoch: `${Math.floor((Date.now() - startedAt) / 1000)}s`,
          command_line_options: Object.fromEntries(flags),
          node: bootstrap.node ?? {},
        };
        return reply(200, JSON.stringify(info, null, 2), 'application/json');
      }
      case '/config_dump':
        return reply(200, JSON.stringify({ configs: [{ '@type': 'type.googleapis.com/envoy.admin.v3.BootstrapConfigDump', bootstrap }] }, null, 2), 'application/json');
      case '/drain_listeners': {
        const q = url.searchParams;
        const graceful = q.has('graceful');
        const skipExit = q.has('skip_exit');
        record({ e: 'drain', t: Date.now(), inboundOnly: q.has('inboundonly'), graceful, skipExit });
        drainedAt ??= Date.now();
        if (graceful && !skipExit && script.exitAfterDrain !== false) {
          setTimeout(() => exitWith(0, 'drain period over'), drainSeconds * 1000);
        }
        return reply(200, 'OK\n');
      }
      case '/quitquitquit':
        res.writeHead(200, { 'content-type': 'text/plain; charset=UTF-8' });
        res.end('OK\n', () => exitWith(0, 'quitquitquit'));
        return;
      case '/healthcheck/fail':
      case '/healthcheck/ok':
        return reply(200, 'OK\n');
      default:
        return reply(404, 'invalid path. admin commands are: /config_dump /drain_listeners /quitquitquit /ready /server_info /stats /stats/prometheus\n');
    }
  }

  const admin = ((bootstrap.admin as Json | undefined)?.address as Json | undefined)?.socket_address as Json | undefined;
  const host = String(admin?.address ?? '127.0.0.1');
  const port = script.adminPort ?? Number(admin?.port_value ?? 0);
  const server = createServer(handle);
  server.on('error', (err) => fail(`cannot bind '${host}:${port}': ${err.message}`));
  server.listen(port, host, () => {
    const addr = server.address();
    const actual = typeof addr === 'object' && addr ? addr.port : port;
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
    record({
      e: 'start',
      t: Date.now(),
      pid: process.pid,
      ppid: process.ppid,
      uid: process.getuid?.() ?? -1,
      gid: process.getgid?.() ?? -1,
      cwd: process.cwd(),
      argv,
      env,
      bootstrapPath: flags.get('--config-path') ?? '',
      adminAddress: host,
      adminPort: actual,
    });
    if (script.xds !== false || script.sds !== false) {
      void import('./xds.js').then(({ openStreams }) => openStreams({ bootstrap, cwd: process.cwd(), record, counters, xds: script.xds ?? 'auto', sds: script.sds ?? 'auto' }));
    }
  });
}

// Signals first: a SIGTERM during start-up is still Envoy's clean shutdown.
const script = loadScript();
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    record({ e: 'signal', t: Date.now(), signal: sig });
    if (!script.ignoreSigterm) exitWith(0, sig);
  });
}
for (const sig of ['SIGHUP', 'SIGUSR1'] as const) process.on(sig, () => record({ e: 'signal', t: Date.now(), signal: sig }));

if (script.exitWithParent !== false) {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) exitWith(0, 'parent exited');
  }, 500).unref();
}

let flags: EnvoyFlags;
try {
  flags = parseEnvoyFlags(argv);
} catch (err) {
  fail(err instanceof EnvoyFlagError ? err.message : String(err));
}
if (flags.has('--version')) {
  process.stdout.write('envoy  version: stand-in/1.0.0/Clean/RELEASE/BoringSSL\n');
  process.exit(0);
}
const bootstrap = await readBootstrap(flags);
if (script.exit) {
  const { afterMs, code = 0, signal } = script.exit;
  setTimeout(() => {
    if (signal) {
      record({ e: 'exit', t: Date.now(), code: -1, reason: `scripted signal ${signal}` });
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else exitWith(code, 'scripted exit');
  }, afterMs);
}
// Keeps the stand-in alive until it is told to go, like Envoy.
setInterval(() => {}, 1 << 30);
setTimeout(() => main(script, flags, bootstrap), script.startDelayMs ?? 0);
