// A real gRPC SDS client (what Envoy's sds-grpc cluster does): StreamSecrets over the unix
// socket, responses decoded down to the Secret messages, with helpers to await the next
// response, assert that none comes, and observe how the stream ended.
import * as grpc from '@grpc/grpc-js';
import { decodeMessage, loadSdsProtos, SECRET_TYPE_URL, type DiscoveryRequest } from '../../agent/security/index.js';
import { ResponseQueue, type StreamEnd } from './response-queue.js';

export interface DecodedSecret {
  name: string;
  tls_certificate?: { certificate_chain?: { inline_bytes?: Buffer }; private_key?: { inline_bytes?: Buffer } };
  validation_context?: { trusted_ca?: { inline_bytes?: Buffer }; crl?: { filename?: string } };
}

export interface SdsResponse {
  version_info: string;
  nonce: string;
  type_url: string;
  secrets: DecodedSecret[];
}

export type { StreamEnd };

export const TEST_NODE = { id: 'sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local', cluster: 'pod.ns' };

/** Builds a request; `node` is set unless `node: null`. */
export function sdsRequest(names: string[], extra: Omit<Partial<DiscoveryRequest>, 'node'> & { node?: DiscoveryRequest['node'] | null } = {}): DiscoveryRequest {
  const { node, ...rest } = extra;
  return { type_url: SECRET_TYPE_URL, resource_names: names, ...(node === null ? {} : { node: node ?? TEST_NODE }), ...rest };
}

export class SdsTestClient {
  readonly ended: Promise<StreamEnd>;
  private endedWith: StreamEnd | undefined;
  private readonly responses: ResponseQueue<SdsResponse>;

  private constructor(
    private readonly client: grpc.Client,
    private readonly call: grpc.ClientDuplexStream<DiscoveryRequest, Record<string, unknown>>,
    secretType: Awaited<ReturnType<typeof loadSdsProtos>>['secret'],
  ) {
    call.on('data', (res: { version_info?: string; nonce?: string; type_url?: string; resources?: { type_url: string; value: Buffer }[] }) => {
      const r: SdsResponse = {
        version_info: res.version_info ?? '',
        nonce: res.nonce ?? '',
        type_url: res.type_url ?? '',
        secrets: (res.resources ?? []).map((a) => decodeMessage<DecodedSecret>(secretType, a.value)),
      };
      this.responses.push(r);
    });
    this.ended = new Promise((resolve) => {
      call.on('error', (e: grpc.ServiceError) => {
        this.endedWith = { code: e.code, details: e.details };
        resolve(this.endedWith);
      });
      call.on('status', (s: grpc.StatusObject) => {
        if (s.code === grpc.status.OK) {
          this.endedWith = { code: 0, details: s.details };
          resolve(this.endedWith);
        }
      });
    });
    this.responses = new ResponseQueue('SDS response', this.ended);
  }

  static async connect(socketPath: string): Promise<SdsTestClient> {
    const protos = await loadSdsProtos();
    const Ctor = grpc.makeGenericClientConstructor(protos.service, 'SecretDiscoveryService');
    const client = new Ctor(`unix:${socketPath}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    const call = (client as unknown as { StreamSecrets(): grpc.ClientDuplexStream<DiscoveryRequest, Record<string, unknown>> }).StreamSecrets();
    return new SdsTestClient(client, call, protos.secret);
  }

  send(req: DiscoveryRequest): void {
    this.call.write(req);
  }

  /** The next response, or a rejection after `timeoutMs` or when the stream ends first. */
  next(timeoutMs = 10_000): Promise<SdsResponse> {
    return this.responses.next(timeoutMs);
  }

  /** Resolves true when no response arrives within `ms`. */
  nothingWithin(ms: number): Promise<boolean> {
    return this.responses.nothingWithin(ms);
  }

  /** Requests `names`, ACKs the answer, and returns it. */
  async subscribe(names: string[]): Promise<SdsResponse> {
    this.send(sdsRequest(names));
    const r = await this.next();
    this.send(sdsRequest(names, { node: null, response_nonce: r.nonce, version_info: r.version_info }));
    return r;
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

export function chainOf(s: DecodedSecret): string {
  return s.tls_certificate?.certificate_chain?.inline_bytes?.toString() ?? '';
}

export function keyOf(s: DecodedSecret): string {
  return s.tls_certificate?.private_key?.inline_bytes?.toString() ?? '';
}

export function rootOf(s: DecodedSecret): string {
  return s.validation_context?.trusted_ca?.inline_bytes?.toString() ?? '';
}
