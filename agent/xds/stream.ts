// One of Envoy's ADS streams and the istiod stream opened for it (Istio's
// pkg/istio-agent/xds_proxy.go and xds_proxy_delta.go: handleUpstream, handleUpstreamRequest,
// handleUpstreamResponse and their delta twins).
//
// Requests from Envoy go upstream as the bytes Envoy sent (node included). On the stream's
// first LDS request the agent adds its own subscriptions (NDS, PCDS) and the last health report;
// health reports before that first LDS request are dropped. Responses from istiod go to Envoy
// unchanged if their type is Envoy's; the agent-handled types (NDS, PCDS) are consumed and
// ACKed (or NACKed) by the agent itself; anything else is dropped with an error log.
//
// Flow control: the upstream stream is paused while two responses are on their way to Envoy
// (Istio: one buffered, one in flight), so a slow Envoy holds istiod back through HTTP/2 flow
// control instead of growing the agent's memory. Requests are never held back (Istio's
// unbounded request queue, which avoids the send/receive deadlock of istio/istio#39209): they
// are written upstream as they arrive.
//
// Either side ending ends both: an upstream failure ends Envoy's stream with that status (a
// graceful istiod EOF with OK), and Envoy reconnects with its own backoff, which opens a new
// upstream connection. Nothing is kept across streams but the health report.
import type * as grpcTypes from '@grpc/grpc-js';
import { scope } from '../../lib/log.js';
import { goStatusText } from '../security/ca-client.js';
import { classifyTermination, type XdsProxyMetrics } from './metrics.js';
import { forwardedToEnvoy, HEALTH_INFO_TYPE, LISTENER_TYPE, NAME_TABLE_TYPE, PROXY_CONFIG_TYPE, shortType } from './types.js';
import type { UpstreamConnection } from './upstream.js';
import { encodeRequest, readResponse, requestTypeUrl, type Flavour, type ResponseSummary } from './wire.js';
import { errorMessage } from '../../lib/errors.js';

const log = scope('xdsproxy');

/** Consumes one resource of an agent-handled type; a throw NACKs it. */
export type ResourceHandler = (value: Uint8Array) => Promise<void> | void;

/** A workload health transition, from the health checker (agent/health/checker.ts). */
export interface HealthEvent {
  healthy: boolean;
  /** The probe's error, reported when unhealthy. */
  message?: string;
}

/** gRPC INTERNAL: the code of the agent's NACKs and unhealthy reports. */
const INTERNAL = 13;
const UNAVAILABLE = 14;
/** Istio logs a send to Envoy that takes longer than this. */
const SLOW_SEND_MS = 10_000;
/** Responses on their way to Envoy before istiod's stream is paused. */
const MAX_IN_FLIGHT = 2;

export const ADS_METHODS: Record<Flavour, string> = {
  sotw: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
  delta: '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
};

/** The HealthInformation request for an event (SotW and delta carry the same fields). */
export function healthRequest(event: HealthEvent, flavour: Flavour): Buffer {
  return encodeRequest({ typeUrl: HEALTH_INFO_TYPE, ...(event.healthy ? {} : { errorDetail: { code: INTERNAL, message: event.message ?? '' } }) }, flavour);
}

export interface StreamContext {
  address: string;
  dial(): Promise<UpstreamConnection>;
  handlers: ReadonlyMap<string, ResourceHandler>;
  /** The last health report, re-sent after the first LDS request of every stream. */
  health(): HealthEvent | undefined;
  metrics: XdsProxyMetrics;
  ended(s: ProxyStream): void;
}

type Status = { code: number; details: string };

const raw = (b: Buffer) => b;

export class ProxyStream {
  private client: grpcTypes.Client | undefined;
  private upstream: grpcTypes.ClientDuplexStream<Buffer, Buffer> | undefined;
  /** Requests that arrived before the upstream stream was open. */
  private pending: [Buffer, string][] = [];
  private initialRequestsSent = false;
  private closed = false;
  private responded = false;
  private inFlight = 0;
  private paused = false;
  private handling: Promise<void> = Promise.resolve();

  constructor(
    readonly id: number,
    readonly flavour: Flavour,
    private readonly downstream: grpcTypes.ServerDuplexStream<Buffer, Buffer>,
    private readonly ctx: StreamContext,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** Wires Envoy's stream and connects upstream. */
  async run(): Promise<void> {
    const ds = this.downstream;
    ds.on('data', (b: Buffer) => this.onRequest(b));
    ds.on('end', () => this.finish('envoy', null));
    ds.on('error', (e: Status) => this.finish('envoy', e));
    ds.on('cancelled', () => this.finish('envoy', { code: 1, details: 'client disconnected' }));
    let conn: UpstreamConnection;
    try {
      conn = await this.ctx.dial();
    } catch (err) {
      this.ctx.metrics.istiodConnectionFailures++;
      const msg = `failed to connect to upstream ${this.ctx.address}: ${errorMessage(err)}`;
      log.error(msg);
      this.close({ code: UNAVAILABLE, details: msg });
      return;
    }
    if (this.closed) {
      conn.client.close();
      return;
    }
    this.client = conn.client;
    const up = conn.client.makeBidiStreamRequest(ADS_METHODS[this.flavour], raw, raw, conn.metadata);
    this.upstream = up;
    up.on('data', (b: Buffer) => this.onResponse(b));
    // A non-OK status arrives as 'error'; an OK one (istiod's graceful EOF) ends the readable
    // side once every response before it has been handled.
    up.on('error', (e: grpcTypes.ServiceError) => this.finish('istiod', e));
    up.on('end', () => this.finish('istiod', null));
    log.info(`connected to ${this.flavour === 'delta' ? 'delta ' : ''}upstream XDS server[${this.id}]: ${this.ctx.address}`);
    const pending = this.pending;
    this.pending = [];
    for (const [b, typeUrl] of pending) this.send(b, typeUrl);
  }

  private onRequest(b: Buffer): void {
    if (this.closed) return;
    let typeUrl = '';
    try {
      typeUrl = requestTypeUrl(b, this.flavour);
    } catch {
      // Not ours to judge: istiod answers a malformed request itself.
    }
    this.send(b, typeUrl);
    if (!this.initialRequestsSent && typeUrl === LISTENER_TYPE) {
      for (const t of [NAME_TABLE_TYPE, PROXY_CONFIG_TYPE]) if (this.ctx.handlers.has(t)) this.send(encodeRequest({ typeUrl: t }, this.flavour), t);
      this.initialRequestsSent = true;
      const health = this.ctx.health();
      if (health) this.send(healthRequest(health, this.flavour), HEALTH_INFO_TYPE);
    }
  }

  /** Sends a health report now (it is also remembered by the proxy for later streams). */
  sendHealth(event: HealthEvent): void {
    if (!this.closed) this.send(healthRequest(event, this.flavour), HEALTH_INFO_TYPE);
  }

  private send(b: Buffer, typeUrl: string): void {
    if (!this.upstream) {
      this.pending.push([b, typeUrl]);
      return;
    }
    if (typeUrl === HEALTH_INFO_TYPE && !this.initialRequestsSent) {
      log.debug(`health report dropped: no LDS request on stream ${this.id} yet`);
      return;
    }
    if (log.debugEnabled()) log.debug(`request for type url ${typeUrl}`);
    this.ctx.metrics.requests++;
    this.upstream.write(b);
  }

  private onResponse(b: Buffer): void {
    this.responded = true;
    this.ctx.metrics.responses++;
    let summary: ResponseSummary;
    try {
      summary = readResponse(b, this.flavour);
    } catch (err) {
      log.error(`dropping a malformed response from istiod on stream ${this.id}: ${errorMessage(err)}`);
      return;
    }
    const typeUrl = summary.typeUrl;
    if (log.debugEnabled()) log.debug('upstream response', { id: this.id, type: shortType(typeUrl), resources: summary.resourceCount });
    const handler = this.ctx.handlers.get(typeUrl);
    if (handler) {
      // Agent-handled types are singletons; an empty response is nothing to apply or ACK.
      if (summary.resourceCount > 0) this.consume(handler, readResponse(b, this.flavour, true));
      return;
    }
    if (!forwardedToEnvoy(typeUrl)) {
      log.error(`Skipping forwarding type url ${typeUrl} to Envoy as is not a valid Envoy type`);
      return;
    }
    this.forward(b);
  }

  /** Applies an agent-handled resource and ACKs it upstream (NACK with INTERNAL on failure). */
  private consume(handler: ResourceHandler, r: ResponseSummary): void {
    this.handling = this.handling.then(async () => {
      let errorDetail: { code: number; message: string } | undefined;
      try {
        await handler(r.first?.value ?? new Uint8Array());
      } catch (err) {
        errorDetail = { code: INTERNAL, message: errorMessage(err) };
        log.warn(`failed to apply ${shortType(r.typeUrl)} from istiod, sending NACK: ${errorDetail.message}`);
      }
      if (this.closed) return;
      const ack =
        this.flavour === 'sotw'
          ? { typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce, ...(errorDetail ? { errorDetail } : {}) }
          : { typeUrl: r.typeUrl, responseNonce: r.nonce, ...(errorDetail ? { errorDetail } : {}) };
      this.send(encodeRequest(ack, this.flavour), r.typeUrl);
    });
  }

  private forward(b: Buffer): void {
    if (this.closed) {
      log.error(`downstream [${this.id}] dropped xds push to Envoy, connection already closed`);
      return;
    }
    const started = Date.now();
    this.inFlight++;
    this.downstream.write(b, () => {
      this.inFlight--;
      const took = Date.now() - started;
      if (took > SLOW_SEND_MS) log.warn(`sendDownstream took ${(took / 1000).toFixed(1)}s`);
      if (this.paused && this.inFlight < MAX_IN_FLIGHT) {
        this.paused = false;
        this.upstream?.resume();
      }
    });
    if (this.inFlight >= MAX_IN_FLIGHT && !this.paused) {
      this.paused = true;
      this.upstream?.pause();
    }
  }

  /** One side ended (null: gracefully): record it, end the other side with the same outcome. */
  private finish(side: 'istiod' | 'envoy', err: { code?: number; details?: string; message?: string } | null): void {
    if (this.closed) return;
    let kind = classifyTermination(err);
    if (side === 'istiod' && err && !this.responded && err.code === UNAVAILABLE) {
      // The stream never got going (istiod unreachable, DNS, TLS): Istio logs this at debug
      // only, because Envoy reports the failed stream itself.
      log.debug(`failed to create upstream grpc client [${this.id}]: ${err.details ?? err.message}`);
      kind = 'unexpected';
    } else if (kind === 'unexpected') {
      log.warn(`${side === 'istiod' ? 'upstream' : 'downstream'} [${this.id}] terminated with unexpected error ${goStatusText(err ?? {})}`);
    } else {
      log.debug(`${side === 'istiod' ? 'upstream' : 'downstream'} [${this.id}] terminated with status ${err ? goStatusText(err) : 'EOF'}`);
    }
    this.ctx.metrics.countTermination(side, kind);
    if (side === 'istiod') this.close(err ? { code: err.code ?? 2, details: err.details ?? err.message ?? '' } : null);
    else this.close(null);
  }

  /**
   * Ends both sides: Envoy's stream with `status` (null: OK), istiod's stream cancelled and its
   * connection closed. Used when a side ends, a newer stream replaces this one, or the agent stops.
   */
  close(status: Status | null): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    if (this.upstream) {
      this.upstream.removeAllListeners('data');
      this.upstream.on('error', () => {}); // a cancel reports CANCELLED; nobody listens any more
      this.upstream.cancel();
    }
    this.client?.close();
    try {
      if (status) this.downstream.emit('error', status);
      else this.downstream.end();
    } catch {
      // Envoy's side is already gone
    }
    this.ctx.ended(this);
  }
}
