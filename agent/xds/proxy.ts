// The downstream side of the XDS proxy (Istio's pkg/istio-agent/xds_proxy.go,
// initDownstreamServer and handleStream): a gRPC server for Envoy's ADS streams (state of the
// world and delta) on the socket the subsystem bound before Envoy started. Messages are carried
// as bytes (see wire.ts); each stream gets its own upstream connection (stream.ts). Only one
// stream is active: a new one closes the previous one, as Istio does ("registered overlapping
// stream; closing previous").
//
// Loaded after Envoy is spawned (gRPC takes a while to load); Envoy's early connection waits
// in the socket listener until then.
import * as grpc from '@grpc/grpc-js';
import { scope } from '../../lib/log.js';
import type { UdsListener } from '../uds.js';
import type { XdsProxyMetrics } from './metrics.js';
import { ADS_METHODS, ProxyStream, type HealthEvent, type ResourceHandler } from './stream.js';
import { UpstreamDialer, type XdsUpstreamConfig } from './upstream.js';
import type { Flavour } from './wire.js';

const log = scope('xdsproxy');

export interface XdsProxyOptions {
  upstream: XdsUpstreamConfig;
  /** The root PEM checked at start (kept if the file later stops parsing). */
  initialRoot?: string;
  /** Agent-handled types and what consumes them. */
  handlers: ReadonlyMap<string, ResourceHandler>;
  health: () => HealthEvent | undefined;
  metrics: XdsProxyMetrics;
  /** ISTIO_GPRC_MAXSTREAMS, ISTIO_GPRC_MAXRECVMSGSIZE, keepalive (GRPC_KEEPALIVE_*). */
  maxConcurrentStreams: number;
  maxReceiveMessageSize: number;
  keepaliveMs: number;
  keepaliveTimeoutMs: number;
}

const raw = (b: Buffer) => b;

function adsService(): grpc.ServiceDefinition {
  const method = (flavour: Flavour) => ({
    path: ADS_METHODS[flavour],
    requestStream: true,
    responseStream: true,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  });
  return { StreamAggregatedResources: method('sotw'), DeltaAggregatedResources: method('delta') };
}

export class XdsProxy {
  private readonly server: grpc.Server;
  private readonly dialer: UpstreamDialer;
  private connected: ProxyStream | undefined;
  private readonly streams = new Set<ProxyStream>();
  private nextId = 0;
  private stopped = false;

  constructor(private readonly o: XdsProxyOptions) {
    this.dialer = new UpstreamDialer(grpc, o.upstream, o.initialRoot);
    this.server = new grpc.Server({
      'grpc.max_concurrent_streams': o.maxConcurrentStreams,
      'grpc.max_receive_message_length': o.maxReceiveMessageSize,
      'grpc.keepalive_time_ms': o.keepaliveMs,
      'grpc.keepalive_timeout_ms': o.keepaliveTimeoutMs,
    });
    this.server.addService(adsService(), {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => this.accept(call, 'sotw'),
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => this.accept(call, 'delta'),
    });
  }

  /** Takes over the connections of the early-bound socket (those waiting and all later ones). */
  serve(listener: UdsListener): void {
    listener.attach(this.server.createConnectionInjector(grpc.ServerCredentials.createInsecure()));
  }

  /** The active stream, if Envoy (or a gRPC client) is connected. */
  get activeStream(): ProxyStream | undefined {
    return this.connected;
  }

  private accept(call: grpc.ServerDuplexStream<Buffer, Buffer>, flavour: Flavour): void {
    if (this.stopped) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'XDS proxy is shutting down' });
      return;
    }
    log.debug(`accepted ${flavour === 'delta' ? 'delta ' : ''}XDS connection from Envoy, forwarding to upstream XDS server`);
    const stream = new ProxyStream(++this.nextId, flavour, call, {
      address: this.o.upstream.address,
      dial: () => this.dialer.dial(),
      handlers: this.o.handlers,
      health: this.o.health,
      metrics: this.o.metrics,
      ended: (s) => {
        this.streams.delete(s);
        if (this.connected === s) this.connected = undefined;
      },
    });
    if (this.connected) {
      log.warn('registered overlapping stream; closing previous');
      this.connected.close(null);
    }
    this.connected = stream;
    this.streams.add(stream);
    void stream.run();
  }

  /** A health report goes out at once on the active stream (if its first LDS request was seen). */
  sendHealth(event: HealthEvent): void {
    this.connected?.sendHealth(event);
  }

  /** Closes every stream (OK status to Envoy) and the server. */
  stop(): void {
    this.stopped = true;
    for (const s of [...this.streams]) s.close(null);
    this.server.forceShutdown();
  }
}
