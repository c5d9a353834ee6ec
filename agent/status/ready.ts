// The readiness decision of `/healthz/ready` (Istio's isReady in
// pilot/cmd/pilot-agent/status/server.go, with status/ready/probe.go and
// status/grpcready/probe.go): probes evaluated in order, the first failure is the answer.
// Envoy's probe reads its admin stats (config received from istiod, server LIVE with workers
// started), each part cached once it has passed; the gRPC bootstrap probe checks the proxyless
// bootstrap file; further probes (the DNS proxy's) are added by the subsystems that own them.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { getStats } from '../../envoy/index.js';
import { AgentError } from '../../lib/errors.js';

/** Why the proxy is not ready (the text /healthz/ready answers with, as Istio words it). */
export class ReadinessError extends AgentError {
  static override readonly code: string = 'STATUS_NOT_READY';
}

/** Istio's ready.Prober: resolves when ready, rejects with an Error saying why not. */
export interface ReadinessProbe {
  check(): Promise<void>;
}

const UPDATE_STATS = '^(cluster_manager\\.cds|listener_manager\\.lds)\\.(update_success|update_rejected)$';
const READY_STATS = '^(server\\.state|listener_manager\\.workers_started)';
const SERVER_STATES = ['LIVE', 'DRAINING', 'PRE_INITIALIZING', 'INITIALIZING'];

/**
 * `name: value` lines of Envoy's `/stats` text: the first line for each wanted name, absent = 0.
 * A wanted line whose value is not an unsigned integer is an error.
 */
export function parseEnvoyStats(body: string, names: readonly string[]): Map<string, number> {
  const out = new Map<string, number>(names.map((n) => [n, 0]));
  const seen = new Set<string>();
  for (const line of body.split('\n')) {
    const i = line.indexOf(':');
    if (i < 0) continue;
    const name = line.slice(0, i).trim();
    if (!out.has(name) || seen.has(name)) continue;
    seen.add(name);
    const raw = line.slice(i + 1).trim();
    if (!/^\d+$/.test(raw)) throw new ReadinessError(`failed parsing Envoy stat ${name} (error: invalid syntax) line: ${line}`);
    out.set(name, Number(raw));
  }
  return out;
}

export interface EnvoyProbeOptions {
  /** `127.0.0.1`, or `::1` for IPv6 proxies */
  adminHost: string;
  adminPort: number;
  /** the agent's shutdown signal: once aborted, readiness fails (`server is terminated: <cause>`) */
  shutdown?: AbortSignal;
  /** called once, the first time Envoy is live (startup_duration_seconds) */
  onFirstLive?: () => void;
}

/** Envoy's part of readiness (Istio's ready.Probe), with its two sticky caches. */
export class EnvoyReadinessProbe implements ReadinessProbe {
  #configReceived = false;
  #live = false;

  constructor(private readonly o: EnvoyProbeOptions) {}

  async check(): Promise<void> {
    await this.#checkConfig();
    if (this.o.shutdown?.aborted) throw new ReadinessError(`server is terminated: ${String(this.o.shutdown.reason ?? 'shutdown requested')}`);
    await this.#checkLive();
  }

  async #checkConfig(): Promise<void> {
    if (this.#configReceived) return;
    const body = await getStats({ host: this.o.adminHost, port: this.o.adminPort }, `usedonly&filter=${encodeURIComponent(UPDATE_STATS)}`, 1000);
    const s = parseEnvoyStats(body, ['cluster_manager.cds.update_success', 'cluster_manager.cds.update_rejected', 'listener_manager.lds.update_success', 'listener_manager.lds.update_rejected']);
    const cdsOk = s.get('cluster_manager.cds.update_success')!;
    const cdsRejected = s.get('cluster_manager.cds.update_rejected')!;
    const ldsOk = s.get('listener_manager.lds.update_success')!;
    const ldsRejected = s.get('listener_manager.lds.update_rejected')!;
    if (cdsOk > 0 && ldsOk > 0) {
      this.#configReceived = true;
      return;
    }
    const stats = `cds updates: ${cdsOk} successful, ${cdsRejected} rejected; lds updates: ${ldsOk} successful, ${ldsRejected} rejected`;
    if (cdsOk === 0 && ldsOk === 0) throw new ReadinessError(`config not received from XDS server (is Istiod running?): ${stats}`);
    if (cdsRejected > 0 || ldsRejected > 0) throw new ReadinessError(`config received from XDS server, but was rejected: ${stats}`);
    throw new ReadinessError(`config not fully received from XDS server: ${stats}`);
  }

  async #checkLive(): Promise<void> {
    if (this.#live) return;
    let body: string;
    try {
      body = await getStats({ host: this.o.adminHost, port: this.o.adminPort }, `usedonly&filter=${encodeURIComponent(READY_STATS)}`, 3000);
    } catch (err) {
      throw new ReadinessError(`failed to get readiness stats`, { cause: err });
    }
    if (!body.includes('server.state')) throw new ReadinessError(`failed to get readiness stats: server.state is not yet updated: ${body}`);
    if (!body.includes('listener_manager.workers_started')) throw new ReadinessError(`failed to get readiness stats: listener_manager.workers_started is not yet updated: ${body}`);
    let s: Map<string, number>;
    try {
      s = parseEnvoyStats(body, ['server.state', 'listener_manager.workers_started']);
    } catch (err) {
      throw new ReadinessError(`failed to get readiness stats`, { cause: err });
    }
    const state = s.get('server.state')!;
    if (state !== 0) throw new ReadinessError(`server is not live, current state is: ${SERVER_STATES[state] ?? String(state)}`);
    if (s.get('listener_manager.workers_started') !== 1) throw new ReadinessError('workers have not yet started');
    this.#live = true;
    this.o.onFirstLive?.();
  }
}

/**
 * The proxyless gRPC bootstrap (GRPC_XDS_BOOTSTRAP, written by the XDS side): it must load as
 * JSON (cached once it has), and the files of a `file_watcher` certificate provider must exist
 * (checked every time, so readiness waits for OUTPUT_CERTS).
 */
export class GrpcBootstrapProbe implements ReadinessProbe {
  #certFiles: string[] | undefined;

  constructor(
    private readonly path: string,
    private readonly cwd: string = process.cwd(),
  ) {}

  #abs(p: string): string {
    return isAbsolute(p) ? p : resolve(this.cwd, p);
  }

  async check(): Promise<void> {
    if (!this.#certFiles) {
      let boot: unknown;
      try {
        boot = JSON.parse(await readFile(this.#abs(this.path), 'utf8'));
        if (boot === null || typeof boot !== 'object' || Array.isArray(boot)) throw new ReadinessError('not a JSON object');
      } catch (err) {
        throw new ReadinessError(`failed loading ${this.path}`, { cause: err });
      }
      this.#certFiles = fileWatcherPaths(boot as Record<string, unknown>);
    }
    for (const f of this.#certFiles) if (!existsSync(this.#abs(f))) throw new ReadinessError(`${f} does not exist`);
  }
}

/** The three files of the bootstrap's first `file_watcher` certificate provider, if any. */
export function fileWatcherPaths(boot: Record<string, unknown>): string[] {
  const providers = boot.certificate_providers;
  if (!providers || typeof providers !== 'object') return [];
  for (const p of Object.values(providers as Record<string, unknown>)) {
    const prov = p as { plugin_name?: unknown; config?: Record<string, unknown> } | null;
    if (prov?.plugin_name !== 'file_watcher') continue;
    const c = prov.config ?? {};
    return ['certificate_file', 'private_key_file', 'ca_certificate_file'].map((k) => c[k]).filter((v): v is string => typeof v === 'string' && v !== '');
  }
  return [];
}

/**
 * The DNS proxy's readiness (Istio's Agent.Check in pkg/istio-agent/agent.go), for the DNS proxy
 * to add when DNS capture is on: ready once its name table has arrived from istiod.
 */
export function dnsReadinessProbe(tableReceived: () => boolean): ReadinessProbe {
  return {
    async check() {
      if (!tableReceived()) throw new ReadinessError('istio DNS capture is turned ON and DNS lookup table is not ready yet');
    },
  };
}

/** Runs probes in order; the first failure wins (Istio's isReady). */
export async function checkAll(probes: readonly ReadinessProbe[]): Promise<void> {
  for (const p of probes) await p.check();
}
