// The status server on `statusPort` (default 15020; Istio's
// pilot/cmd/pilot-agent/status/server.go): readiness for the kubelet (through Envoy's 15021),
// the rewritten application probes, the merged Prometheus scrape, and the lifecycle endpoints
// `/quitquitquit` and `/drain`. It is the first subsystem to start — before Envoy exists — and
// listens with node:http alone; probes, prom-client and the admin client load when first used.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ipFamily, isLoopback as isLoopbackAddr, parseAddr } from '../../lib/netip.js';
import { scope } from '../../lib/log.js';
import type { Subsystem } from '../agent.js';
import type { AgentConfig } from '../../config/index.js';
import { AgentMetrics, type MetricsSource } from './agent-metrics.js';
import { AppProbeHandler } from './app-probe.js';
import { AppProbersError, parseAppProbers, type AppProbers } from './app-probers.js';
import { MAX_APP_BODY_BYTES, ScrapeError, serveMergedMetrics } from './merge.js';
import type { MetricsFormat } from './negotiate.js';
import { checkAll, EnvoyReadinessProbe, GrpcBootstrapProbe, type ReadinessProbe } from './ready.js';
import { respond, respondError, ResponseBody } from './respond.js';
import { normalizeScrapeConfig, ScrapeConfigError, type ScrapeConfig } from './scrape-config.js';
import { AgentError, errorMessage } from '../../lib/errors.js';

const log = scope('default');

/** A bad ISTIO_KUBE_APP_PROBERS or ISTIO_PROMETHEUS_ANNOTATIONS: start-up fails with this message. */
export class StatusConfigError extends AgentError {
  static override readonly code: string = 'STATUS_CONFIG';
}

/** What the status server needs from the agent's configuration (pure; see statusServerOptions). */
export interface StatusServerOptions {
  statusPort: number;
  adminPort: number;
  /** where Envoy's admin API is dialled: 127.0.0.1, or ::1 for IPv6 pods */
  adminHost: string;
  /** source of application probes: 127.0.0.6, or ::6 for IPv6 pods */
  probeSourceAddress: string;
  /** where application probes go: INSTANCE_IP, or `localhost` (legacy) */
  probeDestination: string;
  appProbers: AppProbers;
  /** the application targets of the merged scrape; undefined = none */
  scrape: ScrapeConfig | undefined;
  envoyPrometheusPort: number;
  noEnvoy: boolean;
  mergeEnvoyStats: boolean;
  /** GRPC_XDS_BOOTSTRAP; '' = no gRPC bootstrap readiness probe */
  grpcBootstrap: string;
  profiling: boolean;
  metricsLocalhostOnly: boolean;
  http2Probing: boolean;
  probeKeepAlive: boolean;
  /** directory relative paths (the gRPC bootstrap and its certificates) resolve against */
  cwd: string;
}

function isLinkLocalV6(ip: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(ip);
}

/** IPv6 when the proxy is IPv6-only, or (dual-stack) when INSTANCE_IP is a routable IPv6 address. */
export function probesUseIpv6(config: AgentConfig): boolean {
  const podIp = config.env.INSTANCE_IP;
  return config.identity.ipMode === 'v6' || (ipFamily(podIp) === 6 && !isLinkLocalV6(podIp));
}

/** Where Envoy's admin API is dialled for readiness: 127.0.0.1, or ::1 for IPv6 pods. */
export function envoyAdminHost(config: AgentConfig): string {
  return probesUseIpv6(config) ? '::1' : '127.0.0.1';
}

/**
 * The status server's options from the agent configuration. Throws StatusConfigError (naming
 * the variable and Istio's reason) for a malformed ISTIO_KUBE_APP_PROBERS or
 * ISTIO_PROMETHEUS_ANNOTATIONS, so start-up fails before anything listens.
 */
export function statusServerOptions(config: AgentConfig, cwd = process.cwd()): StatusServerOptions {
  const env = config.env;
  const podIp = env.INSTANCE_IP;
  const ipv6 = probesUseIpv6(config);
  let appProbers: AppProbers;
  try {
    appProbers = parseAppProbers(env.ISTIO_KUBE_APP_PROBERS);
  } catch (err) {
    if (err instanceof AppProbersError) throw new StatusConfigError(`invalid ISTIO_KUBE_APP_PROBERS`, { cause: err });
    throw err;
  }
  let scrape: ScrapeConfig | undefined;
  const annotations = env.ISTIO_PROMETHEUS_ANNOTATIONS;
  // Only sidecars merge application metrics: 15020 is exposed by gateway Services.
  if (config.identity.type === 'sidecar' && annotations !== undefined) {
    try {
      scrape = normalizeScrapeConfig(annotations, config.proxyConfig.statusPort);
    } catch (err) {
      if (err instanceof ScrapeConfigError) throw new StatusConfigError(`invalid ISTIO_PROMETHEUS_ANNOTATIONS ${JSON.stringify(annotations)}`, { cause: err });
      throw err;
    }
    if (scrape) log.info(`Prometheus scraping configuration: ${scrape.targets.map((t) => `${t.port}${t.path}`).join(', ')}`);
  }
  return {
    statusPort: config.proxyConfig.statusPort,
    adminPort: config.proxyConfig.proxyAdminPort,
    adminHost: ipv6 ? '::1' : '127.0.0.1',
    probeSourceAddress: ipv6 ? '::6' : '127.0.0.6',
    probeDestination: env.REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION ? 'localhost' : podIp,
    appProbers,
    scrape,
    envoyPrometheusPort: env.ENVOY_PROMETHEUS_PORT,
    noEnvoy: env.DISABLE_ENVOY,
    mergeEnvoyStats: env.PILOT_AGENT_MERGE_ENVOY_STATS,
    grpcBootstrap: env.GRPC_XDS_BOOTSTRAP,
    profiling: config.flags.profiling,
    metricsLocalhostOnly: env.METRICS_LOCALHOST_ACCESS_ONLY,
    http2Probing: env.ISTIO_ENABLE_HTTP2_PROBING,
    probeKeepAlive: env.ENABLE_PROBE_KEEPALIVE_CONNECTIONS,
    cwd,
  };
}

/** The agent lifecycle the status server drives (the agent's ShutdownController). */
export interface Lifecycle {
  readonly signal: AbortSignal;
  /** `/quitquitquit`: stop without draining */
  requestShutdown(cause?: string): void;
  /** `/drain`: drain Envoy's inbound listeners now; the later SIGTERM skips the drain */
  drain(): Promise<void>;
  /** SIGTERM semantics (used when serving fails after start) */
  shutdown(cause: string): void;
}

export interface StatusServerDeps {
  /** pulled at every scrape (the SDS subsystem, the XDS proxy) */
  metricsSources?: readonly MetricsSource[];
  /** extra readiness probes, after Envoy's and the gRPC bootstrap's (the DNS proxy's) */
  readinessProbes?: readonly ReadinessProbe[];
  /** the DNS proxy's name table for `/debug/ndsz`; undefined = no DNS proxy (404 `{}`) */
  dnsTable?: () => unknown;
  /** body cap of multi-target application scrapes (tests shrink it) */
  maxAppBodyBytes?: number;
}

/**
 * Loopback = 127.0.0.0/8 or ::1, also as IPv4-mapped IPv6 (a dual-stack listener's view), by
 * Go netip's rules (lib/netip): the remote address is Node's inet_ntop form of the peer.
 */
export function isLoopback(remote: string | undefined): boolean {
  if (!remote) return false;
  try {
    return isLoopbackAddr(parseAddr(remote));
  } catch {
    return false; // not an address at all
  }
}

export class StatusServer implements Subsystem {
  readonly name = 'status server';
  readonly metrics: AgentMetrics;
  readonly #sources: MetricsSource[];
  readonly #probes: ReadinessProbe[] = [];
  readonly #appProbes: AppProbeHandler;
  #server: Server | undefined;
  #lastReady = false;
  #dnsTable: (() => unknown) | undefined;

  constructor(
    readonly options: StatusServerOptions,
    private readonly lifecycle: Lifecycle,
    private readonly deps: StatusServerDeps = {},
  ) {
    const o = options;
    this.#sources = [...(deps.metricsSources ?? [])];
    this.metrics = new AgentMetrics(() => this.#sources);
    if (!o.noEnvoy) {
      this.#probes.push(
        new EnvoyReadinessProbe({
          adminHost: o.adminHost,
          adminPort: o.adminPort,
          shutdown: lifecycle.signal,
          onFirstLive: () => {
            this.metrics.startupSeconds = process.uptime();
            log.info(`Readiness succeeded in ${process.uptime().toFixed(6)}s`);
          },
        }),
      );
    }
    if (o.grpcBootstrap !== '') this.#probes.push(new GrpcBootstrapProbe(o.grpcBootstrap, o.cwd));
    this.#probes.push(...(deps.readinessProbes ?? []));
    this.#dnsTable = deps.dnsTable;
    this.#appProbes = new AppProbeHandler(o.appProbers, {
      destination: o.probeDestination,
      localAddress: o.probeSourceAddress,
      statusPort: o.statusPort,
      http2: o.http2Probing,
      keepAlive: o.probeKeepAlive,
    });
  }

  /** A subsystem whose istio_agent_* values join every scrape (see MetricsSource). */
  addMetricsSource(source: MetricsSource): void {
    this.#sources.push(source);
  }

  /** A readiness probe ANDed after the built-in ones (e.g. the DNS proxy's). */
  addReadinessProbe(probe: ReadinessProbe): void {
    this.#probes.push(probe);
  }

  /** The DNS proxy's name table for `/debug/ndsz`. */
  setDnsTable(fetch: () => unknown): void {
    this.#dnsTable = fetch;
  }

  /** The port actually listened on (undefined before start or if listening failed). */
  get port(): number | undefined {
    const a = this.#server?.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  /** The readiness decision `/healthz/ready` serves: resolves when ready, rejects with why not. */
  isReady(): Promise<void> {
    return checkAll(this.#probes);
  }

  async start(signal: AbortSignal): Promise<void> {
    log.info(`Opening status port ${this.options.statusPort}`);
    const server = createServer((req, res) => void this.#handle(req, res));
    await new Promise<void>((resolve) => {
      const onError = (err: Error) => {
        // Istio only logs this: the agent runs on without a status server.
        log.error(`Error listening on status port: ${err.message}`);
        resolve();
      };
      server.once('error', onError);
      // `:port` — every interface, both families where the host has IPv6.
      server.listen(this.options.statusPort, () => {
        server.off('error', onError);
        this.#server = server;
        server.on('error', (err) => {
          if (signal.aborted) return;
          // Without the status server the pod can never be ready again: shut down (Istio SIGTERMs itself).
          log.error(`status server failed: ${err.message}`);
          this.lifecycle.shutdown(`status server failed: ${err.message}`);
        });
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.#appProbes.close();
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    log.info('Status server has successfully terminated');
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let path: string;
    let query: URLSearchParams;
    let rawQuery: string;
    try {
      const url = new URL(req.url ?? '/', 'http://status');
      path = decodeURIComponent(url.pathname);
      query = url.searchParams;
      rawQuery = url.search.slice(1);
    } catch {
      return respondError(req, res, 400, 'Bad Request');
    }
    try {
      switch (path) {
        case '/healthz/ready':
          return await this.#ready(req, res);
        case '/stats/prometheus':
        case '/metrics':
          return await this.#stats(req, res, rawQuery);
        case '/quitquitquit':
          return this.#quit(req, res);
        case '/drain':
          return await this.#drain(req, res);
        case '/debug/ndsz':
          return this.#ndsz(req, res);
      }
      if (path.startsWith('/app-health/') || path.startsWith('/app-lifecycle/')) return await this.#appProbes.handle(req, res, path);
      if (this.options.profiling && path.startsWith('/debug/pprof/')) {
        if (!isLoopback(req.socket.remoteAddress)) return respondError(req, res, 403, 'Only requests from localhost are allowed');
        const { handlePprof } = await import('./debug.js');
        return await handlePprof(req, res, path, query);
      }
      return respondError(req, res, 404, '404 page not found');
    } catch (err) {
      log.error(`status server: ${req.method} ${path}: ${errorMessage(err)}`);
      if (!res.headersSent) respondError(req, res, 500, 'Internal Server Error');
      else res.destroy();
    }
  }

  async #ready(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await this.isReady();
      if (!this.#lastReady) log.info('Envoy proxy is ready');
      this.#lastReady = true;
      respond(req, res, 200);
    } catch (err) {
      log.warn(`Envoy proxy is NOT ready: ${errorMessage(err)}`);
      this.#lastReady = false;
      respond(req, res, 503);
    }
  }

  async #stats(req: IncomingMessage, res: ServerResponse, rawQuery: string): Promise<void> {
    if (this.options.metricsLocalhostOnly && !isLoopback(req.socket.remoteAddress)) return respondError(req, res, 403, 'Only requests from localhost are allowed');
    const gone = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) gone.abort(new ScrapeError('scraper disconnected'));
    });
    const o = this.options;
    const open = (format: MetricsFormat) => new ResponseBody(req, res, 200, { 'Content-Type': format });
    await serveMergedMetrics(
      { headers: req.headers, rawQuery },
      { envoyPort: o.envoyPrometheusPort, mergeEnvoy: !o.noEnvoy && o.mergeEnvoyStats, targets: o.scrape?.targets ?? [], maxAppBodyBytes: this.deps.maxAppBodyBytes ?? MAX_APP_BODY_BYTES },
      this.metrics,
      open,
      gone.signal,
    );
  }

  /** Loopback first (403), then POST (405), as Istio checks them. */
  #lifecycleAllowed(req: IncomingMessage, res: ServerResponse): boolean {
    if (!isLoopback(req.socket.remoteAddress)) {
      respondError(req, res, 403, 'Only requests from localhost are allowed');
      return false;
    }
    if (req.method !== 'POST') {
      respondError(req, res, 405, 'Method Not Allowed');
      return false;
    }
    return true;
  }

  #quit(req: IncomingMessage, res: ServerResponse): void {
    if (!this.#lifecycleAllowed(req, res)) return;
    log.info('handling /quitquitquit, notifying pilot-agent to exit');
    // After the answer is out: the agent's shutdown closes this server.
    res.once('close', () => this.lifecycle.requestShutdown('/quitquitquit called'));
    respond(req, res, 200, 'OK');
  }

  async #drain(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.#lifecycleAllowed(req, res)) return;
    log.info('handling /drain, starting drain');
    // Answered once the drain has been asked of Envoy and the skip-drain mark is set, as Istio's
    // handler does: the preStop hook that calls this is followed at once by SIGTERM.
    await this.lifecycle.drain();
    respond(req, res, 200, 'OK');
  }

  #ndsz(req: IncomingMessage, res: ServerResponse): void {
    if (!isLoopback(req.socket.remoteAddress)) return respondError(req, res, 403, 'Only requests from localhost are allowed');
    const table = this.#dnsTable?.();
    if (table === undefined || table === null) return respond(req, res, 404, '{}');
    respond(req, res, 200, JSON.stringify(table), { 'Content-Type': 'application/json' });
  }
}
