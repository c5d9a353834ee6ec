// The agent's certificate subsystem, in Istio's start order (NewSecurityOptions in
// pilot/cmd/pilot-agent/options/security.go, then Agent.Run and initSdsServer in
// pkg/istio-agent/agent.go): security options (bad ones fail start-up), the SDS socket decision,
// the secret manager with its CA client (istiod, or the embedded local CA with
// CA_PROVIDER=local), then the SDS server on ./var/run/secrets/workload-spiffe-uds/socket with a
// background pre-warm of `default` and `ROOTCA` (which also writes OUTPUT_CERTS). With
// DISABLE_ENVOY there is no SDS server: a background loop fetches `default` then `ROOTCA` and
// refetches on every update.
import { existsSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { AgentError, errorMessage } from '../../lib/errors.js';
import { scope } from '../../lib/log.js';
import type { Subsystem } from '../agent.js';
import type { AgentConfig } from '../../config/index.js';
import { retryUntilSuccess } from './backoff.js';
import type { CitadelClient as CitadelClientType } from './ca-client.js';
import { loadRootCert } from './credentials.js';
import { isSocket, LateServer, socketHealthy } from '../uds.js';
import { securityOptions, type SecurityOptions } from './options.js';
import { SecretManager } from './secret-manager.js';
import type { SdsServer } from './sds-server.js';
import { ROOT_CERT_RESOURCE, WORKLOAD_KEY_CERT_RESOURCE, type CaClient } from './types.js';

const log = scope('security');

export interface SdsSubsystemDeps {
  /** Directory relative paths resolve against (default: the process working directory). */
  cwd?: string;
  /** Secret-manager knobs tests shorten (file retry window, renewal backoff). */
  secretManager?: Partial<ConstructorParameters<typeof SecretManager>[0]>;
}

/** A start-up step of the SDS subsystem failed (socket decision, CA configuration, CA client, SDS server). */
export class SdsStartError extends AgentError {
  static override readonly code: string = 'SDS_START';
}

export class SdsSubsystem implements Subsystem {
  readonly name = 'sds';
  readonly options: SecurityOptions;
  /** Set once started: pushes, trust-bundle updates (PCDS) and metrics go through it. */
  secretManager: SecretManager | undefined;
  /** true when an external SDS (e.g. SPIRE) owns the workload socket and we serve files only */
  serveOnlyFiles = false;
  private server: SdsServer | undefined;
  private socketPath = '';
  private needsCa = false;
  private proxyless = false;
  private afterStartCalled = false;
  private connectCa: (() => Promise<void>) | undefined;
  private caClient: CaClient | undefined;
  /** The early socket, the serve step after Envoy starts, and `done` for background failures. */
  private readonly late = new LateServer(log);
  /** The CA client could not be created: start-up fails with that error, so the pre-warm stays quiet. */
  private caFailed = false;
  private readonly cwd: string;

  /** Rejects when a start-up step that runs in the background fails; the agent then ends. */
  get done(): Promise<void> {
    return this.late.done;
  }

  /** Validates the security options now (as Istio's NewSecurityOptions): bad ones fail start-up. */
  constructor(
    private readonly config: AgentConfig,
    private readonly deps: SdsSubsystemDeps = {},
  ) {
    this.cwd = deps.cwd ?? process.cwd();
    const { options, infos, warnings } = securityOptions(config, { cwd: this.cwd, fileExists: existsSync });
    for (const w of warnings) log.warn(w);
    for (const i of infos) log.info(i);
    this.options = options;
  }

  async start(): Promise<void> {
    try {
      await this.startInOrder();
    } catch (err) {
      // A failed start is not stopped by the agent; release the socket and background work here.
      await this.stop();
      throw err;
    }
  }

  private async startInOrder(): Promise<void> {
    const o = this.options;
    if (!o.disableEnvoy || o.ca.provider === 'local') await this.decideSocket();
    const needsCa = !o.fileMountedCerts && !this.serveOnlyFiles;
    if (o.fileMountedCerts) log.info(`Workload is using file mounted certificates (${o.fileMountedReason}); skipping connecting to CA`);
    // What Istio fails start-up for (unknown provider, missing root) is checked here, before
    // Envoy starts. Creating the CA client (it loads gRPC) waits for afterStart().
    if (needsCa) await this.checkCaConfig();
    this.needsCa = needsCa;
    let resolveCa!: (c: CaClient) => void;
    let rejectCa!: (err: Error) => void;
    const caClient = needsCa
      ? new Promise<CaClient>((resolve, reject) => {
          resolveCa = resolve;
          rejectCa = reject;
        })
      : undefined;
    this.connectCa = needsCa
      ? () =>
          this.createCaClient().then(
            (c) => {
              this.caClient = c;
              resolveCa(c);
            },
            (err: unknown) => {
              this.caFailed = true;
              const e = new SdsStartError('failed to create the CA client', { cause: err });
              rejectCa(e);
              this.late.fail(e);
            },
          )
      : undefined;
    caClient?.catch(() => {}); // reported through late.fail()
    this.secretManager = new SecretManager({
      ...(caClient ? { caClient } : {}),
      workloadIdentity: o.workloadIdentity,
      ttlSeconds: o.ttlSeconds,
      graceRatio: o.graceRatio,
      graceJitter: o.graceJitter,
      key: o.key,
      certFiles: o.certFiles,
      useExistingCertFiles: o.useExistingCertFiles,
      ...(o.outputDir ? { outputDir: o.outputDir } : {}),
      outputCertMode: o.outputCertMode,
      trustAnchors: o.trustAnchors,
      fileDebounceMs: o.fileDebounceMs,
      ...this.deps.secretManager,
    });
    // DISABLE_ENVOY (proxyless): Istio runs no SDS server. The embedded local CA is for
    // development (`npm start` without an Envoy binary), where serving SDS anyway lets local
    // tools and a hand-started Envoy use it.
    if (o.disableEnvoy && o.ca.provider !== 'local') {
      this.proxyless = true;
      return;
    }
    this.socketPath = this.serveOnlyFiles ? o.filesSocketPath : o.workloadSocketPath;
    // The socket is bound now, so Envoy finds it however early it dials; its connections wait
    // in the listener until the gRPC server (loaded after Envoy starts) takes them.
    try {
      await this.late.bind(this.socketPath);
    } catch (err) {
      log.error(`failed to listen on ${this.socketPath}: ${errorMessage(err)}; the SDS server retries`);
    }
  }

  /**
   * After Envoy is spawned: connect to the CA, pre-warm `default` and `ROOTCA` (which writes
   * OUTPUT_CERTS), load gRPC and serve SDS — or, proxyless, keep the certificates fetched.
   */
  afterStart(): void {
    if (this.afterStartCalled) return;
    this.afterStartCalled = true;
    void this.connectCa?.();
    if (this.proxyless) {
      void this.proxylessLoop();
      return;
    }
    if (this.needsCa) void this.prewarm();
    this.late.serve(
      () => this.serve(),
      (err) => new SdsStartError('failed to start SDS server', { cause: err }),
    );
  }

  /** Loads gRPC and the SDS protos, then serves on the early listener (or binds itself). */
  private async serve(): Promise<void> {
    const o = this.options;
    const listener = this.late.listener;
    const { SdsServer } = await import('./sds-server.js');
    const server = await SdsServer.create(this.secretManager!, { socketPath: this.socketPath, ...(listener ? { listener } : {}), ...(o.crlPath ? { crlPath: o.crlPath } : {}) });
    if (this.late.stopped) {
      await server.stop();
      return;
    }
    this.server = server;
    await server.start();
  }

  /** Resolves when the SDS server is serving (tests, benchmarks); runs afterStart() if the agent has not. */
  async ready(): Promise<void> {
    this.afterStart();
    await this.late.ready();
  }

  /** Is someone else (SPIRE) serving the workload socket? (Istio's checkSocket in Agent.Run) */
  private async decideSocket(): Promise<void> {
    const o = this.options;
    const path = o.workloadSocketPath;
    if (existsSync(path)) {
      if (isSocket(path) && (await socketHealthy(path))) {
        log.info(`SDS socket found at ${path}: an external SDS server serves workload certificates; serving file certificates only on ${o.filesSocketPath}`);
        this.serveOnlyFiles = true;
        return;
      }
      log.info(`removing unhealthy SDS socket ${path}`);
      try {
        await unlink(path);
      } catch (err) {
        throw new SdsStartError(`failed to remove unhealthy SDS socket ${path}`, { cause: err });
      }
    }
    if (!o.workloadSocketIsDefault) {
      throw new SdsStartError(`agent configured for non-default SDS socket path: ${path} but no socket found`);
    }
  }

  /** What Istio fails start-up for (createCAClient): unknown CA_PROVIDER, missing CA root. */
  private async checkCaConfig(): Promise<void> {
    const ca = this.options.ca;
    if (ca.provider === 'local') return;
    if (ca.provider !== 'Citadel') throw new SdsStartError(`failed to start SDS server: CA provider ${JSON.stringify(ca.provider)} not registered`);
    if (!ca.tls) {
      log.warn('Debug mode or IP-secure network');
      return;
    }
    const root = ca.tls.root;
    if (root.kind === 'error') throw new SdsStartError(`failed to find root CA cert for CA: ${root.message}`);
    if (root.kind === 'system') {
      log.info(`Using CA ${ca.address} cert with system certs`);
      return;
    }
    if (!existsSync(root.path)) {
      // Istio log-fatals here for the PROV_CERT root (exit 1) and returns an error otherwise.
      if (root.via === 'PROV_CERT') log.fatal(`invalid config - ${ca.address} missing a root certificate ${root.path}`);
      throw new SdsStartError(`failed to find root CA cert for CA: ${root.path} does not exist`);
    }
    try {
      await loadRootCert(root);
    } catch (err) {
      throw new SdsStartError('failed to find root CA cert for CA', { cause: err });
    }
    log.info(`Using CA ${ca.address} cert with certs: ${root.path}`);
  }

  /** The CA client for CA_PROVIDER (checked by checkCaConfig first). */
  private async createCaClient(): Promise<CaClient> {
    const ca = this.options.ca;
    if (ca.provider === 'local') {
      const { loadOrCreateLocalCa, LocalCaClient } = await import('./local-ca/index.js');
      log.info(`Using the embedded local CA (CA_PROVIDER=local) in ${ca.localCaDir}`);
      return new LocalCaClient(await loadOrCreateLocalCa(ca.localCaDir, this.config.env.TRUST_DOMAIN));
    }
    const tls = ca.tls && ca.tls.root.kind !== 'error' ? { root: ca.tls.root, serverName: ca.tls.serverName, ...(ca.tls.clientCert ? { clientCert: ca.tls.clientCert } : {}) } : undefined;
    const { CitadelClient } = await import('./ca-client.js');
    return CitadelClient.create({
      address: ca.address,
      ...(tls ? { tls } : {}),
      ...(ca.tokenPath !== undefined ? { tokenPath: ca.tokenPath } : {}),
      clusterId: ca.clusterId,
      certSigner: ca.certSigner,
      headers: ca.headers,
      keepaliveMs: ca.keepaliveMs,
      keepaliveTimeoutMs: ca.keepaliveTimeoutMs,
    });
  }

  /** Gets `default` then `ROOTCA` before Envoy asks, retrying forever with backoff. */
  private async prewarm(): Promise<void> {
    const sm = this.secretManager!;
    for (const name of [WORKLOAD_KEY_CERT_RESOURCE, ROOT_CERT_RESOURCE]) {
      const ok = await retryUntilSuccess(
        () => sm.generateSecret(name),
        this.late.signal,
        (err, wait) => {
          if (!this.caFailed) log.warn(`failed to warm certificate ${name}, retrying in ${wait} ms: ${errorMessage(err)}`);
        },
      );
      if (ok === undefined) return;
    }
    log.info('workload certificate and root are ready');
  }

  /** DISABLE_ENVOY: fetch and keep fetching the certificates (they land in OUTPUT_CERTS). */
  private async proxylessLoop(): Promise<void> {
    const sm = this.secretManager!;
    let pending = Promise.resolve();
    const fetchAll = () => {
      pending = pending.then(() => this.prewarm());
    };
    sm.onSecretUpdate(() => fetchAll());
    fetchAll();
    await pending;
  }

  /**
   * Istio's istio_agent_* security metrics (security/pkg/nodeagent/cache/monitoring.go), named
   * without the prefix, for the status server's /stats/prometheus. Undefined values are left out.
   */
  metrics(): Record<string, number | undefined> {
    const sm = this.secretManager;
    const m = sm?.metrics;
    return {
      cert_expiry_seconds: sm?.certExpirySeconds(),
      outgoing_latency: m?.outgoingLatencyMs,
      num_outgoing_requests: m?.outgoingRequests,
      num_failed_outgoing_requests: m?.failedOutgoingRequests,
      num_outgoing_retries: (this.caClient as Partial<CitadelClientType> | undefined)?.retries ?? 0,
      num_file_secret_failures_total: m?.fileSecretFailures,
      num_file_watcher_failures_total: sm?.fileWatcherFailures,
      pilot_total_xds_rejects: this.server?.metrics.rejects,
      pilot_xds_expired_nonce: this.server?.metrics.expiredNonces,
    };
  }

  async stop(): Promise<void> {
    await this.late.stop(async () => {
      await this.server?.stop();
      this.server = undefined;
    });
    this.secretManager?.close();
  }
}
