// The XDS proxy subsystem, in Istio's start order (pkg/istio-agent/agent.go, Agent.Run:
// initXdsProxy, the gRPC bootstrap, the root CA watch): after SDS, before Envoy.
//
// start(): what Istio fails start-up for — the XDS root CA (unless controlPlaneAuthPolicy is
// NONE) must exist and hold a certificate, the gRPC bootstrap's node metadata must build — then
// the socket `<configPath>/XDS` is bound (so Envoy finds it however early it dials) and the
// gRPC bootstrap file is written while Envoy starts. Nothing heavy loads here: gRPC and the
// relay load in afterStart(), once Envoy is spawned, and take over the connections that waited
// in the socket.
//
// Agent-handled types: NDS when the DNS proxy is on (the name table is kept here for the DNS
// proxy, readiness and /debug/ndsz), PCDS with PROXY_CONFIG_XDS_AGENT (its trust anchors go to
// the secret manager).
import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { AgentError } from '../../lib/errors.js';
import { scope } from '../../lib/log.js';
import type { Subsystem } from '../agent.js';
import type { AgentConfig } from '../../config/index.js';
import { XDS_SOCKET_NAME } from '../../config/paths.js';
import { LateServer } from '../uds.js';
import type { NameTable } from './nds-pcds.js';
import { grpcBootstrap, writeGrpcBootstrap, type GrpcBootstrap } from './grpc-bootstrap.js';
import { XdsProxyMetrics } from './metrics.js';
import type { XdsProxy } from './proxy.js';
import type { HealthEvent, ResourceHandler } from './stream.js';
import { NAME_TABLE_TYPE, PROXY_CONFIG_TYPE } from './types.js';
import { checkXdsRoot, xdsUpstreamConfig, type XdsUpstreamConfig } from './upstream.js';

const log = scope('xdsproxy');

/** Where the agent's XDS socket is for this configuration (relative paths against `cwd`). */
export function xdsSocketPath(config: AgentConfig, cwd: string): string {
  const p = join(config.proxyConfig.configPath, XDS_SOCKET_NAME);
  return isAbsolute(p) ? p : resolve(cwd, p);
}

/** Istio's isDNSServerEnabled: DNS capture on a sidecar, or the DNS server asked for explicitly. */
export function dnsProxyEnabled(config: AgentConfig): boolean {
  return (config.env.ISTIO_META_DNS_CAPTURE && config.identity.type === 'sidecar') || config.env.ISTIO_META_ENABLE_DNS_SERVER;
}

/** The XDS proxy could not start (its gRPC bootstrap, or the relay after Envoy started). */
export class XdsStartError extends AgentError {
  static override readonly code: string = 'XDS_START';
}

/** The gRPC bootstrap (GRPC_XDS_BOOTSTRAP) could not be generated or written. */
export class GrpcBootstrapError extends XdsStartError {
  static override readonly code: string = 'XDS_GRPC_BOOTSTRAP';
}

export interface XdsSubsystemDeps {
  /** Directory relative paths resolve against (default: the process working directory). */
  cwd?: string;
  /**
   * Where PCDS trust anchors go (the secret manager's updateConfigTrustBundle). PCDS is
   * subscribed to only with PROXY_CONFIG_XDS_AGENT=true and this set, as Istio requires a
   * secret cache for it.
   */
  trustBundle?: (pems: string[]) => Promise<void>;
}

export class XdsSubsystem implements Subsystem {
  readonly name = 'xds-proxy';
  readonly socketPath: string;
  /** GRPC_XDS_BOOTSTRAP as an absolute path, or undefined when it is empty (no file). */
  readonly grpcBootstrapPath: string | undefined;
  readonly metricsState = new XdsProxyMetrics();
  private readonly cwd: string;
  private readonly handlers = new Map<string, ResourceHandler>();
  private upstream: XdsUpstreamConfig | undefined;
  private initialRoot: string | undefined;
  private proxy: XdsProxy | undefined;
  /** The early socket, the relay loaded after Envoy starts, and `done` for its failure. */
  private readonly late = new LateServer(log);
  /** The gRPC bootstrap being written (started in start(), awaited after Envoy is spawned). */
  private writing: Promise<void> | undefined;
  private health: HealthEvent | undefined;
  private table: NameTable | undefined;
  private readonly tableListeners = new Set<(t: NameTable) => void>();

  /** Rejects if the relay cannot be loaded after Envoy started; the agent then ends. */
  get done(): Promise<void> {
    return this.late.done;
  }

  constructor(
    private readonly config: AgentConfig,
    private readonly deps: XdsSubsystemDeps = {},
  ) {
    this.cwd = deps.cwd ?? process.cwd();
    this.socketPath = xdsSocketPath(config, this.cwd);
    const grpcPath = config.env.GRPC_XDS_BOOTSTRAP;
    this.grpcBootstrapPath = grpcPath === '' ? undefined : isAbsolute(grpcPath) ? grpcPath : resolve(this.cwd, grpcPath);
    if (dnsProxyEnabled(config)) this.handlers.set(NAME_TABLE_TYPE, (value) => this.applyNameTable(value));
    if (config.env.PROXY_CONFIG_XDS_AGENT && deps.trustBundle) {
      const sink = deps.trustBundle;
      this.handlers.set(PROXY_CONFIG_TYPE, async (value) => {
        const { decodeTrustAnchors } = await import('./nds-pcds.js');
        await sink(await decodeTrustAnchors(value));
      });
    }
  }

  async start(): Promise<void> {
    // The dial options Istio builds at start (initIstiodDialOptions) fail it when the root is
    // unusable.
    this.upstream = xdsUpstreamConfig(this.config, this.cwd, existsSync);
    this.initialRoot = await checkXdsRoot(this.upstream);
    // The gRPC bootstrap's content is checked now (bad node metadata fails start-up, as in
    // Istio's generateGRPCBootstrap); the file is written while Envoy starts, since nothing on
    // Envoy's path reads it.
    let bootstrap: GrpcBootstrap | undefined;
    try {
      if (this.grpcBootstrapPath) bootstrap = grpcBootstrap(this.config, { xdsSocketPath: this.socketPath, cwd: this.cwd });
    } catch (err) {
      throw new GrpcBootstrapError('failed generating gRPC XDS bootstrap', { cause: err });
    }
    log.info(`Initializing with upstream address "${this.upstream.address}" and cluster "${this.upstream.clusterId}"`);
    await this.late.bind(this.socketPath);
    if (bootstrap && this.grpcBootstrapPath) {
      const path = this.grpcBootstrapPath;
      this.writing = writeGrpcBootstrap(path, bootstrap).catch((err: unknown) => {
        throw new GrpcBootstrapError(`failed generating gRPC XDS bootstrap: failed writing to ${path}`, { cause: err });
      });
      this.writing.catch(() => {}); // reported by afterStart()/ready()
    }
  }

  /** After Envoy is spawned: load gRPC and the relay, and take over the socket's connections. */
  afterStart(): void {
    this.late.serve(
      () => this.serve(),
      (err) => (err instanceof GrpcBootstrapError ? err : new XdsStartError('failed to start the XDS proxy', { cause: err })),
    );
  }

  private async serve(): Promise<void> {
    const loading = import('./proxy.js');
    loading.catch(() => {}); // reported below, unless the bootstrap write failed first
    // Serving starts once the gRPC bootstrap is on disk (its write began before Envoy did), so
    // "XDS proxy listening" means both are there.
    await this.writing;
    const { XdsProxy } = await loading;
    const listener = this.late.listener;
    if (this.late.stopped || !this.upstream || !listener) return;
    const env = this.config.env;
    this.proxy = new XdsProxy({
      upstream: this.upstream,
      ...(this.initialRoot !== undefined ? { initialRoot: this.initialRoot } : {}),
      handlers: this.handlers,
      health: () => this.health,
      metrics: this.metricsState,
      maxConcurrentStreams: env.ISTIO_GPRC_MAXSTREAMS,
      maxReceiveMessageSize: env.ISTIO_GPRC_MAXRECVMSGSIZE,
      keepaliveMs: env.GRPC_KEEPALIVE_INTERVAL,
      keepaliveTimeoutMs: env.GRPC_KEEPALIVE_TIMEOUT,
    });
    this.proxy.serve(listener);
    log.info(`XDS proxy listening on "${this.socketPath}"`);
  }

  /**
   * Resolves when the proxy serves and the gRPC bootstrap is written (tests, benchmarks); runs
   * afterStart() if the agent has not.
   */
  async ready(): Promise<void> {
    this.afterStart();
    await this.late.ready();
  }

  /**
   * A health transition from the workload health checker (VMs, ProxyConfig readinessProbe):
   * remembered, sent at once on the current stream, and re-sent after the first LDS request
   * of every new stream.
   */
  sendHealth(event: HealthEvent): void {
    this.health = { healthy: event.healthy, ...(event.message !== undefined ? { message: event.message } : {}) };
    this.proxy?.sendHealth(this.health);
  }

  private async applyNameTable(value: Uint8Array): Promise<void> {
    const { decodeNameTable } = await import('./nds-pcds.js');
    const table = await decodeNameTable(value);
    this.table = table;
    log.debug(`name table received: ${Object.keys(table.table ?? {}).length} hosts`);
    for (const l of this.tableListeners) l(table);
  }

  /** The last NDS name table (undefined until istiod sent one). */
  get nameTable(): NameTable | undefined {
    return this.table;
  }

  /** Calls `listener` with every NDS name table from now on; returns the unsubscribe. */
  onNameTable(listener: (t: NameTable) => void): () => void {
    this.tableListeners.add(listener);
    return () => this.tableListeners.delete(listener);
  }

  /** Istio's istio_agent_* XDS proxy counters, without the prefix (terminations summed over `type`). */
  metrics(): Record<string, number | undefined> {
    return this.metricsState.record();
  }

  async stop(): Promise<void> {
    await this.late.stop(async () => {
      await this.writing?.catch(() => {});
      this.proxy?.stop();
      this.proxy = undefined;
    });
  }
}
