// The workload health checker of VM auto-registration (Istio's
// pkg/istio-agent/health/health_check.go, WorkloadHealthChecker): ProxyConfig `readinessProbe`
// (from the WorkloadGroup's `probe`) is run against the application, after Envoy's own
// readiness, on a schedule with consecutive-count thresholds. Only state changes are reported —
// the XDS proxy turns each into a HealthInformation request to istiod.
import { scope } from '../../lib/log.js';
import { ProbeError } from './probe-error.js';
import { AgentError, errorMessage } from '../../lib/errors.js';

const log = scope('healthcheck');

/** A state change of the workload: healthy, or unhealthy with the probe's error. */
export interface HealthEvent {
  healthy: boolean;
  /** why the workload is unhealthy (the failing probe's error) */
  message?: string;
}

/** Anything with Istio's Prober.Check shape: resolves when ready, rejects with the reason. */
export interface ReadinessCheck {
  check(): Promise<void>;
}

/** istio.networking.v1alpha3.ReadinessProbe with Istio's defaults filled in. */
export interface WorkloadProbeConfig {
  initialDelayMs: number;
  timeoutMs: number;
  periodMs: number;
  successThreshold: number;
  failureThreshold: number;
  method:
    | { kind: 'httpGet'; scheme: 'http' | 'https'; host: string; port: number; path: string; headers: [string, string][] }
    | { kind: 'tcpSocket'; host: string; port: number }
    | { kind: 'grpc'; host: string; port: number; service: string }
    | { kind: 'exec'; command: string[] }
    | { kind: 'none' };
}

export class ReadinessProbeConfigError extends AgentError {
  static override readonly code: string = 'READINESS_PROBE_CONFIG';
}

type Json = Record<string, unknown>;

/** A field by its protojson name or its proto name (both are accepted in ProxyConfig). */
function field(o: Json, camel: string): unknown {
  if (camel in o) return o[camel];
  const snake = camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return o[snake];
}

function int(o: Json, name: string, def: number): number {
  const v = field(o, name);
  if (v === undefined || v === null) return def;
  const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw new ReadinessProbeConfigError(`readinessProbe.${name}: want an integer, got ${JSON.stringify(v)}`);
  return n;
}

function str(o: Json, name: string): string {
  const v = field(o, name);
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new ReadinessProbeConfigError(`readinessProbe: ${name} must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function obj(v: unknown, what: string): Json | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new ReadinessProbeConfigError(`readinessProbe.${what} must be an object`);
  return v as Json;
}

/** Zero means "use the default", as Istio's orDefault. */
const orDefault = (v: number, def: number) => (v === 0 ? def : v);

export interface ProbeTargetDefaults {
  /** where probes without a host go: the first proxy IP, or `localhost` with REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION */
  defaultHost: string;
}

/** Parses ProxyConfig `readinessProbe` and fills in Istio's defaults (fillInDefaults). */
export function workloadProbeConfig(raw: Json, d: ProbeTargetDefaults): WorkloadProbeConfig {
  const httpGet = obj(field(raw, 'httpGet'), 'httpGet');
  const tcp = obj(field(raw, 'tcpSocket'), 'tcpSocket');
  const exec = obj(field(raw, 'exec'), 'exec');
  const grpc = obj(field(raw, 'grpc'), 'grpc');
  const kinds = [httpGet, tcp, exec, grpc].filter(Boolean).length;
  if (kinds > 1) throw new ReadinessProbeConfigError('readinessProbe: only one of httpGet, tcpSocket, exec or grpc may be set');
  let method: WorkloadProbeConfig['method'] = { kind: 'none' };
  if (httpGet) {
    const scheme = (str(httpGet, 'scheme') || 'http').toLowerCase();
    if (scheme !== 'http' && scheme !== 'https') throw new ReadinessProbeConfigError(`readinessProbe.httpGet.scheme: unsupported scheme ${JSON.stringify(scheme)}`);
    const headersRaw = field(httpGet, 'httpHeaders');
    const headers: [string, string][] = [];
    if (Array.isArray(headersRaw))
      for (const h of headersRaw) {
        const o = obj(h, 'httpGet.httpHeaders[]') ?? {};
        headers.push([str(o, 'name'), str(o, 'value')]);
      }
    method = { kind: 'httpGet', scheme, host: str(httpGet, 'host') || d.defaultHost, port: int(httpGet, 'port', 0), path: str(httpGet, 'path') || '/', headers };
  } else if (tcp) {
    method = { kind: 'tcpSocket', host: str(tcp, 'host') || d.defaultHost, port: int(tcp, 'port', 0) };
  } else if (grpc) {
    method = { kind: 'grpc', host: d.defaultHost, port: int(grpc, 'port', 0), service: str(grpc, 'service') };
  } else if (exec) {
    const command = field(exec, 'command');
    if (!Array.isArray(command) || command.length === 0 || !command.every((c) => typeof c === 'string'))
      throw new ReadinessProbeConfigError('readinessProbe.exec.command must be a non-empty list of strings');
    method = { kind: 'exec', command: command };
  }
  return {
    initialDelayMs: int(raw, 'initialDelaySeconds', 0) * 1000,
    timeoutMs: orDefault(int(raw, 'timeoutSeconds', 0), 1) * 1000,
    periodMs: orDefault(int(raw, 'periodSeconds', 0), 10) * 1000,
    successThreshold: orDefault(int(raw, 'successThreshold', 0), 1),
    failureThreshold: orDefault(int(raw, 'failureThreshold', 0), 1),
    method,
  };
}

export interface HealthCheckerDeps {
  /** Envoy's readiness (as /healthz/ready, without the shutdown check); absent without Envoy */
  envoyProbe?: ReadinessCheck;
  /** source address of HTTP probes: 127.0.0.6, or ::6 for IPv6 proxies */
  localAddress?: string;
}

/**
 * Runs the application probe on its schedule and reports transitions to the `onHealthEvent`
 * listeners: the first threshold crossing always reports (the initial state is undefined), then
 * only changes.
 */
export class WorkloadHealthChecker {
  readonly #listeners = new Set<(e: HealthEvent) => void>();
  #last: HealthEvent | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: AbortController | undefined;

  constructor(
    readonly config: WorkloadProbeConfig,
    private readonly deps: HealthCheckerDeps = {},
  ) {}

  /** Adds a listener for state changes; returns the function that removes it. */
  onHealthEvent(cb: (e: HealthEvent) => void): () => void {
    this.#listeners.add(cb);
    return () => this.#listeners.delete(cb);
  }

  /** The last state reported, for a consumer that connects late (a new XDS stream re-sends it). */
  get lastEvent(): HealthEvent | undefined {
    return this.#last;
  }

  /** One probe of the whole chain: Envoy first, then the application. Rejects with the reason. */
  async probeOnce(signal?: AbortSignal): Promise<void> {
    await this.deps.envoyProbe?.check();
    // The probers (node:http2, tls, child_process) load with the first probe, not on the agent's
    // way to Envoy's exec, where the checker is built.
    const { execProbe, grpcHealthProbe, httpGetProbe, tcpProbe } = await import('./probers.js');
    const c = this.config;
    const m = c.method;
    switch (m.kind) {
      case 'httpGet': {
        const headers = new Map<string, string[]>();
        let host: string | undefined;
        for (const [name, value] of m.headers) {
          if (name.toLowerCase() === 'host') host = value;
          else headers.set(name, [...(headers.get(name) ?? []), value]);
        }
        // Kubernetes probes identify themselves; so do ours, unless the config names an agent.
        if (![...headers.keys()].some((k) => k.toLowerCase() === 'user-agent')) headers.set('User-Agent', ['istio-probe/1.0']);
        const res = await httpGetProbe(
          { scheme: m.scheme, host: m.host, port: m.port, path: m.path.startsWith('/') ? m.path : `/${m.path}` },
          {
            headers,
            ...(host ? { hostHeader: host } : {}),
            timeoutMs: c.timeoutMs,
            redirects: 'any',
            ...(this.deps.localAddress ? { localAddress: this.deps.localAddress } : {}),
            ...(signal ? { signal } : {}),
          },
        );
        if (res.status < 200 || res.status >= 400) throw new ProbeError(`status code was not from [200,400), bad code ${res.status}`);
        return;
      }
      case 'tcpSocket':
        return tcpProbe(m.host, m.port, { timeoutMs: c.timeoutMs, ...(signal ? { signal } : {}) });
      case 'grpc': {
        const status = await grpcHealthProbe(m.host, m.port, { service: m.service, timeoutMs: c.timeoutMs, userAgent: 'istio-probe/1.0', ...(signal ? { signal } : {}) });
        if (status !== 'SERVING') throw new ProbeError(`service unhealthy (responded with "${status}")`);
        return;
      }
      case 'exec':
        return execProbe(m.command, c.timeoutMs, signal);
      case 'none':
        return;
    }
  }

  /** Starts probing: initial delay, a probe at once, then one every period. */
  start(): void {
    if (this.#running) return;
    const running = new AbortController();
    this.#running = running;
    let successes = 0;
    let failures = 0;
    const c = this.config;
    const emit = (e: HealthEvent) => {
      this.#last = e;
      for (const cb of this.#listeners) {
        try {
          cb(e);
        } catch (err) {
          log.warn(`health event listener failed: ${errorMessage(err)}`);
        }
      }
    };
    const tick = async () => {
      const startedAt = Date.now();
      try {
        await this.probeOnce(running.signal);
        if (running.signal.aborted) return;
        log.debug('probe completed with healthy status');
        successes++;
        failures = 0;
        if (successes >= c.successThreshold && this.#last?.healthy !== true) {
          log.info('success threshold hit, marking as healthy');
          successes = 0;
          emit({ healthy: true });
        }
      } catch (err) {
        if (running.signal.aborted) return;
        const message = errorMessage(err);
        log.debug(`probe completed with unhealthy status: ${message}`);
        failures++;
        successes = 0;
        if (failures >= c.failureThreshold && this.#last?.healthy !== false) {
          log.info(`failure threshold hit, marking as unhealthy: ${message}`);
          failures = 0;
          emit({ healthy: false, message });
        }
      }
      // A probe slower than the period skips ticks, as Go's ticker drops them.
      const elapsed = Date.now() - startedAt;
      this.#timer = setTimeout(() => void tick(), c.periodMs - (elapsed % c.periodMs));
    };
    log.info(`starting health check for ${c.method.kind} in ${c.initialDelayMs / 1000}s`);
    this.#timer = setTimeout(() => void tick(), c.initialDelayMs);
  }

  stop(): void {
    this.#running?.abort();
    this.#running = undefined;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
