// Test-side helpers for the stand-in Envoy: where the executable is, a bootstrap with the admin
// address and the SDS/XDS pipe clusters it needs, the environment that scripts it, and reading
// what it recorded.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { projectRoot } from '../paths.js';
import { freePort } from '../ports.js';
import type { StandinEvent, StandinScript } from './script.js';

export type { SdsScript, StandinEvent, StandinScript, StatScript, XdsResource, XdsScript } from './script.js';

/** The stand-in executable; point ProxyConfig `binaryPath` at it. */
export const standinBin = resolve(projectRoot, 'dist/test/support/envoy-standin/envoy.js');
// tsc does not set the executable bit; the agent execs the file directly, as it would Envoy.
if (existsSync(standinBin)) chmodSync(standinBin, 0o755);

export interface BootstrapOptions {
  adminPort: number;
  adminAddress?: string;
  /** `xds-grpc` pipe (default `./etc/istio/proxy/XDS`, as Istio's bootstrap) */
  xdsPipe?: string;
  /** `sds-grpc` pipe (default `./var/run/secrets/workload-spiffe-uds/socket`) */
  sdsPipe?: string;
  /** ADS api_type (default DELTA_GRPC, as ISTIO_DELTA_XDS) */
  apiType?: 'GRPC' | 'DELTA_GRPC';
  node?: Record<string, unknown>;
}

function pipeCluster(name: string, path: string): Record<string, unknown> {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path } } } }] }] },
  };
}

/** A minimal bootstrap in the shape of Istio's: admin address, ADS over `xds-grpc`, `sds-grpc`. */
export function testBootstrap(o: BootstrapOptions): Record<string, unknown> {
  return {
    node: o.node ?? { id: 'sidecar~10.244.1.17~test.default~default.svc.cluster.local', cluster: 'test.default', metadata: { NAMESPACE: 'default' } },
    admin: { access_log_path: '/dev/null', address: { socket_address: { address: o.adminAddress ?? '127.0.0.1', port_value: o.adminPort } } },
    dynamic_resources: {
      lds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' },
      cds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' },
      ads_config: {
        api_type: o.apiType ?? 'DELTA_GRPC',
        set_node_on_first_message_only: true,
        transport_api_version: 'V3',
        grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }],
      },
    },
    static_resources: {
      clusters: [pipeCluster('sds-grpc', o.sdsPipe ?? './var/run/secrets/workload-spiffe-uds/socket'), pipeCluster('xds-grpc', o.xdsPipe ?? './etc/istio/proxy/XDS')],
    },
  };
}

/** Writes `testBootstrap(o)` to `file` (parent created) and returns the path. */
export function writeTestBootstrap(file: string, o: BootstrapOptions): string {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(testBootstrap(o), null, 2));
  return file;
}

/** A temp dir with a record file and a script, and the env that points the stand-in at them. */
export interface Standin {
  dir: string;
  recordFile: string;
  env: Record<string, string>;
  /** every event recorded so far */
  events(): StandinEvent[];
  /** resolves with the first event matching `pred` (polling the record file) */
  waitFor<E extends StandinEvent['e']>(e: E, pred?: (ev: Extract<StandinEvent, { e: E }>) => boolean, timeoutMs?: number): Promise<Extract<StandinEvent, { e: E }>>;
}

export function readRecord(file: string): StandinEvent[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  // A record still being appended (large ones, such as `start` with a pod's environment, take
  // more than one write) has no newline yet: only complete lines are events.
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  return complete
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as StandinEvent);
}

export function standin(script: StandinScript = {}, dir = mkdtempSync(join(tmpdir(), 'standin-'))): Standin {
  // Readable by the proxy user too (Envoy may run as uid 1337).
  chmodSync(dir, 0o755);
  const recordFile = join(dir, 'record.jsonl');
  writeFileSync(recordFile, '', { mode: 0o666 });
  chmodSync(recordFile, 0o666);
  const scriptFile = join(dir, 'script.json');
  writeFileSync(scriptFile, JSON.stringify(script), { mode: 0o644 });
  const events = () => readRecord(recordFile);
  return {
    dir,
    recordFile,
    env: { ENVOY_STANDIN_RECORD: recordFile, ENVOY_STANDIN_SCRIPT: scriptFile },
    events,
    waitFor: (e, pred, timeoutMs = 15_000) =>
      new Promise((res, rej) => {
        const deadline = Date.now() + timeoutMs;
        const poll = () => {
          const hit = events().find((ev) => ev.e === e && (!pred || pred(ev as never)));
          if (hit) return res(hit as never);
          if (Date.now() > deadline) return rej(new Error(`stand-in: no ${e} event within ${timeoutMs}ms; record:\n${readFileSync(recordFile, 'utf8')}`));
          setTimeout(poll, 20);
        };
        poll();
      }),
  };
}

/** Whether a process with this pid exists (and is not a zombie we could still signal). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** Resolves with the time (Date.now()) at which `pid` was first seen gone. */
export function whenGone(pid: number, timeoutMs = 30_000): Promise<number> {
  return new Promise((res, rej) => {
    const deadline = Date.now() + timeoutMs;
    const poll = () => {
      if (!pidAlive(pid)) return res(Date.now());
      if (Date.now() > deadline) return rej(new Error(`process ${pid} still alive after ${timeoutMs}ms`));
      setTimeout(poll, 10);
    };
    poll();
  });
}

/** A stand-in Envoy run directly (no agent), its admin API on a free port. */
export interface RunningStandin {
  s: Standin;
  adminPort: number;
  child: ChildProcess;
  /** SIGKILLs the stand-in and waits for it to be gone */
  stop(): Promise<void>;
}

/** Starts the stand-in Envoy on its own (for tests of agent parts that talk to Envoy's admin API). */
export async function runStandin(script: StandinScript = {}): Promise<RunningStandin> {
  const s = standin({ xds: false, sds: false, ...script });
  const adminPort = await freePort();
  const boot = writeTestBootstrap(join(s.dir, 'bootstrap.json'), { adminPort });
  const child = spawn(standinBin, ['-c', boot, '--drain-time-s', '1'], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...s.env }, cwd: s.dir, stdio: 'ignore' });
  await s.waitFor('start');
  return {
    s,
    adminPort,
    child,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = once(child, 'exit');
        child.kill('SIGKILL');
        await gone;
      }
    },
  };
}
