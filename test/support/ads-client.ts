// A gRPC ADS client playing Envoy on the agent's XDS socket (state of the world or delta):
// sends requests, awaits responses (decoded; resources as Any), observes how the stream ended.
// Several streams can share one connection (`stream()`), as Istio's reconnect tests need.
import * as grpc from '@grpc/grpc-js';
import { controlPlaneProtos } from './control-plane.js';
import { messageCodec } from './envoy-protos.js';
import { ResponseQueue, type StreamEnd } from './response-queue.js';

const ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService';

export interface AdsResponse {
  typeUrl: string;
  versionInfo: string;
  nonce: string;
  /** SotW: the Anys; delta: the Anys inside the Resources. */
  resources: { type_url: string; value: Buffer }[];
  names: string[];
  removed: string[];
  raw: Record<string, any>;
}

export type { StreamEnd };

export const TEST_NODE = { id: 'sidecar~1.1.1.1~debug~cluster.local', metadata: { fields: { NAMESPACE: { stringValue: 'default' }, INSTANCE_IPS: { stringValue: '1.1.1.1' } } } };

export class AdsStream {
  private endedWith: StreamEnd | undefined;
  readonly ended: Promise<StreamEnd>;
  private readonly responses: ResponseQueue<AdsResponse>;
  constructor(
    readonly delta: boolean,
    private readonly call: grpc.ClientDuplexStream<Record<string, unknown>, Record<string, any>>,
    /** Bytes of every request as sent (for byte-for-byte comparisons). */
    readonly sent: Buffer[] = [],
  ) {
    call.on('data', (m: Record<string, any>) => {
      const r: AdsResponse = delta
        ? {
            typeUrl: m.type_url ?? '',
            versionInfo: m.system_version_info ?? '',
            nonce: m.nonce ?? '',
            resources: (m.resources ?? []).map((x: Record<string, any>) => x.resource),
            names: (m.resources ?? []).map((x: Record<string, any>) => x.name),
            removed: m.removed_resources ?? [],
            raw: m,
          }
        : { typeUrl: m.type_url ?? '', versionInfo: m.version_info ?? '', nonce: m.nonce ?? '', resources: m.resources ?? [], names: [], removed: [], raw: m };
      this.responses.push(r);
    });
    this.ended = new Promise((resolve) => {
      call.on('error', (e: grpc.ServiceError) => {
        this.endedWith ??= { code: e.code, details: e.details };
        resolve(this.endedWith);
      });
      call.on('status', (s: grpc.StatusObject) => {
        this.endedWith ??= { code: s.code, details: s.details };
        resolve(this.endedWith);
      });
    });
    this.responses = new ResponseQueue('ADS response', this.ended);
  }

  send(req: Record<string, unknown>): void {
    this.call.write(req);
  }

  /** The next response, or a rejection after `timeoutMs` or when the stream ends first. */
  next(timeoutMs = 10_000): Promise<AdsResponse> {
    return this.responses.next(timeoutMs);
  }

  /** Resolves true when no response arrives within `ms`. */
  nothingWithin(ms: number): Promise<boolean> {
    return this.responses.nothingWithin(ms);
  }

  /** Requests `typeUrl` (with the node) and returns the response, ACKing it. */
  async requestResponseAck(typeUrl: string, node: Record<string, unknown> | undefined = TEST_NODE, names: string[] = []): Promise<AdsResponse> {
    const nameField = this.delta ? 'resource_names_subscribe' : 'resource_names';
    this.send({ type_url: typeUrl, ...(node ? { node } : {}), ...(names.length ? { [nameField]: names } : {}) });
    const r = await this.next();
    if (r.typeUrl !== typeUrl) throw new Error(`expected a ${typeUrl} response, got ${r.typeUrl}`);
    this.send(
      this.delta ? { type_url: typeUrl, response_nonce: r.nonce } : { type_url: typeUrl, version_info: r.versionInfo, response_nonce: r.nonce, ...(names.length ? { resource_names: names } : {}) },
    );
    return r;
  }

  /** Half-closes (Envoy's CloseSend). */
  closeSend(): void {
    this.call.end();
  }

  cancel(): void {
    this.call.cancel();
  }
}

/** One connection to the agent's XDS socket. */
export class AdsConnection {
  private constructor(private readonly client: grpc.Client) {}

  static connect(socketPath: string): AdsConnection {
    return new AdsConnection(new grpc.Client(`unix://${socketPath}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
  }

  /** A new ADS stream on this connection. */
  stream(delta = false): AdsStream {
    const root = controlPlaneProtos();
    const req = messageCodec(root, delta ? 'envoy.service.discovery.v3.DeltaDiscoveryRequest' : 'envoy.service.discovery.v3.DiscoveryRequest');
    const res = messageCodec(root, delta ? 'envoy.service.discovery.v3.DeltaDiscoveryResponse' : 'envoy.service.discovery.v3.DiscoveryResponse');
    const sent: Buffer[] = [];
    const serialize = (m: Record<string, unknown>) => {
      const b = req.serialize(m);
      sent.push(b);
      return b;
    };
    const call = this.client.makeBidiStreamRequest(`${ADS}/${delta ? 'DeltaAggregatedResources' : 'StreamAggregatedResources'}`, serialize, res.deserialize);
    return new AdsStream(delta, call, sent);
  }

  close(): void {
    this.client.close();
  }
}
