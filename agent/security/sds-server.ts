// The SDS server Envoy's `sds-grpc` cluster talks to: SecretDiscoveryService on a unix socket
// (Istio's security/pkg/nodeagent/sds/server.go and sdsservice.go). StreamSecrets only
// (Delta/Fetch answer UNIMPLEMENTED), one SdsConnection per stream, pushes fanned out to every
// stream and sent only where the name is watched.
import { existsSync } from 'node:fs';
import type * as grpcTypes from '@grpc/grpc-js';
import { scope } from '../../lib/log.js';
import { UdsListener } from '../uds.js';
import { sleep } from './backoff.js';
import { encodeMessage, loadSdsProtos, type DiscoveryRequest, type DiscoveryResponse, type SdsProtos } from './protos.js';
import { SdsConnection, type StreamError } from './sds-stream.js';
import { UnknownResourceError } from './secret-manager.js';
import type { SecretItem } from './types.js';
import { errorMessage } from '../../lib/errors.js';

const log = scope('sds');

/** What the SDS server serves from: the secret manager, or anything that behaves like it. */
export interface SecretSource {
  generateSecret(name: string): Promise<SecretItem>;
  onSecretUpdate(cb: (name: string) => void): () => void;
}

export interface SdsServerOptions {
  /** Absolute socket path. */
  socketPath: string;
  /**
   * A listener already bound to socketPath (the agent binds it before gRPC loads so Envoy can
   * start at once); when absent the server binds the socket itself.
   */
  listener?: UdsListener;
  /** CRL file added to validation contexts when it exists. */
  crlPath?: string;
}

/** Counters (Istio's pilot_total_xds_rejects{type="sds"}, pilot_xds_expired_nonce). */
export interface SdsMetrics {
  rejects: number;
  expiredNonces: number;
  pushes: number;
}

/** Builds the Envoy Secret for an item (Istio's toEnvoySecret in sdsservice.go). */
export function toEnvoySecret(item: SecretItem, crlPath?: string): Record<string, unknown> {
  if (item.certificateChain !== undefined && item.privateKey !== undefined) {
    return {
      name: item.resourceName,
      tls_certificate: {
        certificate_chain: { inline_bytes: Buffer.from(item.certificateChain) },
        private_key: { inline_bytes: Buffer.from(item.privateKey) },
      },
    };
  }
  const vc: Record<string, unknown> = { trusted_ca: { inline_bytes: Buffer.from(item.rootCert ?? '') } };
  if (crlPath && existsSync(crlPath)) vc.crl = { filename: crlPath };
  return { name: item.resourceName, validation_context: vc };
}

export class SdsServer {
  private server: grpcTypes.Server | undefined;
  private listener: UdsListener | undefined;
  private readonly connections = new Set<SdsConnection>();
  private unsubscribe: (() => void) | undefined;
  private stopped = false;
  readonly metrics: SdsMetrics = { rejects: 0, expiredNonces: 0, pushes: 0 };

  private constructor(
    private readonly grpc: typeof grpcTypes,
    private readonly protos: SdsProtos,
    private readonly source: SecretSource,
    private readonly o: SdsServerOptions,
  ) {}

  static async create(source: SecretSource, o: SdsServerOptions): Promise<SdsServer> {
    const [grpc, protos] = await Promise.all([import('@grpc/grpc-js'), loadSdsProtos()]);
    return new SdsServer(grpc, protos, source, o);
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Listens on the socket. The first attempt is awaited (Envoy must find the socket when it
   * starts); if it fails, serving is retried in the background up to 5 times with 1 s, 2 s,
   * 4 s, … between tries, after which the agent carries on without SDS, as Istio does.
   */
  async start(): Promise<void> {
    this.unsubscribe = this.source.onSecretUpdate((name) => {
      this.metrics.pushes++;
      for (const c of this.connections) c.onPush(name);
    });
    try {
      await this.serveOnce();
    } catch (err) {
      log.error(`failed to serve SDS on ${this.o.socketPath}: ${errorMessage(err)}; retrying`);
      void this.retryServe();
    }
  }

  private async retryServe(): Promise<void> {
    for (let i = 1; i < 5 && !this.stopped; i++) {
      await sleep(1000 * 2 ** (i - 1));
      if (this.stopped) return;
      try {
        await this.serveOnce();
        return;
      } catch (err) {
        log.error(`failed to serve SDS on ${this.o.socketPath} (attempt ${i + 1}): ${errorMessage(err)}`);
      }
    }
    if (!this.stopped) log.warn(`SDS server failed to start on ${this.o.socketPath}; continuing without it`);
  }

  private async serveOnce(): Promise<void> {
    const grpc = this.grpc;
    const server = new grpc.Server({ 'grpc.max_concurrent_streams': 100000 });
    server.addService(this.protos.service, {
      StreamSecrets: (call: grpcTypes.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => this.stream(call),
      DeltaSecrets: (call: grpcTypes.ServerDuplexStream<unknown, unknown>) => {
        call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'DeltaSecrets not implemented' });
      },
      FetchSecrets: (_call: unknown, cb: grpcTypes.sendUnaryData<unknown>) => {
        cb({ code: grpc.status.UNIMPLEMENTED, details: 'FetchSecrets not implemented' });
      },
    });
    // The socket is the agent's (bound early) or ours; gRPC takes its connections either way.
    const listener = this.o.listener ?? (await UdsListener.listen(this.o.socketPath));
    if (this.stopped) {
      server.forceShutdown();
      if (!this.o.listener) await listener.close();
      return;
    }
    listener.attach(server.createConnectionInjector(grpc.ServerCredentials.createInsecure()));
    this.listener = listener;
    this.server = server;
    log.info(`SDS server for workload certificates started, listening on "${this.o.socketPath}"`);
  }

  private stream(call: grpcTypes.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>): void {
    const grpc = this.grpc;
    const conn: SdsConnection = new SdsConnection({
      generate: async (name) => encodeMessage(this.protos.secret, toEnvoySecret(await this.source.generateSecret(name), this.o.crlPath)),
      send: (res) => {
        call.write(res);
        log.info('SDS: PUSH', { resource: res.resources.length, nonce: res.nonce, version: res.version_info, conn: conn.id });
      },
      fail: (err: StreamError) => {
        log.warn(`SDS stream ${conn.id || '(new)'} closed: ${err.message}`);
        this.connections.delete(conn);
        call.emit('error', { code: err.grpcCode, details: err.message });
      },
      onNack: (msg) => {
        this.metrics.rejects++;
        log.warn(`SDS: NACK (conn ${conn.id}): ${msg}`);
      },
      onStaleNonce: () => this.metrics.expiredNonces++,
      statusFor: (err) => (err instanceof UnknownResourceError ? grpc.status.INVALID_ARGUMENT : grpc.status.UNKNOWN),
    });
    this.connections.add(conn);
    const done = () => {
      conn.close();
      this.connections.delete(conn);
    };
    call.on('data', (req: DiscoveryRequest) => conn.onRequest(req));
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('cancelled', done);
    call.on('close', done);
  }

  /** Hard-stops the server, closes the listener (removing the socket file) and every stream. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    for (const c of this.connections) c.close();
    this.connections.clear();
    this.server?.forceShutdown();
    this.server = undefined;
    await (this.listener ?? this.o.listener)?.close();
    this.listener = undefined;
  }
}
