// A test control plane playing istiod's XDS side: a grpc-js AggregatedDiscoveryService
// (state of the world and delta) on 127.0.0.1, over TLS with a certificate for
// istiod.istio-system.svc from its own test root (address it as localhost:<port>, as the agent
// maps localhost to that name) or plaintext. It records every stream (metadata, client
// certificate) and every request (decoded, and the bytes as received), can insist on a bearer
// token and a ClusterID, answers subscriptions from the resources a test sets, pushes changes
// to subscribed streams, and can be restarted on the same port (istiod going away).
//
// Answering rules, close to a real xDS server: SotW — a request without a nonce, or whose
// resource names changed, is answered with the current resources of its type (filtered by the
// names, unless they are empty = wildcard); an ACK or NACK is not. Delta — the first request of
// a type and every newly subscribed name are answered; ACKs and NACKs are not.
// HealthInformation is never answered (istiod does not).
import * as grpc from '@grpc/grpc-js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type protobuf from 'protobufjs';
import { generateKeyAndCsr } from '../../agent/security/index.js';
import { CertificateAuthority } from '../../agent/security/local-ca/index.js';
import { loadEnvoyProtos, messageCodec, packAny } from './envoy-protos.js';

const HEALTH = 'type.googleapis.com/istio.v1.HealthInformation';
const ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService';

/** Envoy protos the control plane encodes resources with (what grpc-js-xds needs, and more). */
const PROTO_FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
];

let protoRoot: protobuf.Root | undefined;
/** The shared protobufjs root (loaded on first use). */
export function controlPlaneProtos(): protobuf.Root {
  protoRoot ??= loadEnvoyProtos(PROTO_FILES);
  return protoRoot;
}

/** A resource as the control plane serves it: its name and its Any. */
export interface ServedResource {
  name: string;
  any: { type_url: string; value: Uint8Array };
}

/** `body` encoded as Envoy type `typeName` (e.g. 'envoy.config.cluster.v3.Cluster'), named `name`. */
export function envoyResource(typeName: string, name: string, body: object): ServedResource {
  return { name, any: packAny(controlPlaneProtos(), typeName, body) };
}

/** A resource of a type the Envoy protos do not define (NDS, PCDS): pre-encoded bytes. */
export function rawResource(typeUrl: string, name: string, value: Uint8Array): ServedResource {
  return { name, any: { type_url: typeUrl, value } };
}

export interface ReceivedRequest {
  stream: number;
  delta: boolean;
  typeUrl: string;
  versionInfo: string;
  nonce: string;
  /** SotW resource_names, or delta resource_names_subscribe. */
  resourceNames: string[];
  unsubscribe: string[];
  errorDetail?: { code?: number; message?: string };
  node?: Record<string, any>;
  /** The message exactly as it arrived. */
  raw: Buffer;
  at: number;
}

export interface StreamRecord {
  id: number;
  delta: boolean;
  metadata: Record<string, string>;
  clientCert: boolean;
  /** Set when the stream ended (by either side). */
  ended?: string;
}

export interface ControlPlaneOptions {
  /** Serve plaintext instead of TLS. */
  plaintext?: boolean;
  /** Ask for client certificates (the test root must have signed them) and record them. */
  requireClientCert?: boolean;
  /** Refuse streams without `authorization: Bearer <token>` (UNAUTHENTICATED), as istiod does. */
  requiredToken?: string;
  /** Refuse streams whose ClusterID differs (PERMISSION_DENIED). */
  requiredClusterId?: string;
  /** Bind this port (a restart keeps the address). */
  port?: number;
}

interface Served {
  version: number;
  resources: Map<string, ServedResource>;
}

interface TypeState {
  names: string[];
  lastNonce?: string;
  /** delta: subscribed names; undefined = wildcard */
  subscribed?: Set<string>;
}

interface LiveStream {
  rec: StreamRecord;
  call: grpc.ServerDuplexStream<{ raw: Buffer; msg: Record<string, any> }, Record<string, unknown>>;
  types: Map<string, TypeState>;
}

function bidi(path: string, req: string, res: string) {
  const i = messageCodec(controlPlaneProtos(), req);
  const o = messageCodec(controlPlaneProtos(), res);
  return {
    path,
    requestStream: true,
    responseStream: true,
    requestSerialize: (m: { raw: Buffer }) => m.raw,
    requestDeserialize: (b: Buffer) => ({ raw: Buffer.from(b), msg: i.deserialize(b) }),
    responseSerialize: o.serialize,
    responseDeserialize: o.deserialize,
  };
}

/** The TLS identity of the fake istiod, shared by restarts so clients keep trusting it. */
interface Identity {
  ca: CertificateAuthority;
  keyPem: string;
  certPem: string;
}

async function istiodIdentity(): Promise<Identity> {
  const ca = await CertificateAuthority.createRoot({ organization: 'cluster.local', commonName: 'test istiod root' });
  const kc = await generateKeyAndCsr({ eccSignatureAlgorithm: 'ECDSA', eccCurve: 'P256', rsaKeySize: 2048, pkcs8: false }, 'spiffe://cluster.local/ns/istio-system/sa/istiod');
  const [leaf] = await ca.sign(kc.csrPem, { ttlSeconds: 86400, identities: ['istiod.istio-system.svc'], verifyCsr: false });
  return { ca, keyPem: kc.privateKeyPem, certPem: leaf! };
}

export class TestControlPlane {
  readonly requests: ReceivedRequest[] = [];
  readonly streams: StreamRecord[] = [];
  /** Answer subscriptions (false: only record, a test pushes by hand). */
  autoRespond = true;
  private readonly live = new Set<LiveStream>();
  private readonly served = new Map<string, Served>();
  private nonce = 0;
  private nextStream = 0;
  private server: grpc.Server | undefined;
  private watchers: (() => void)[] = [];

  private constructor(
    readonly opts: ControlPlaneOptions,
    private readonly identity: Identity | undefined,
    public port: number,
  ) {}

  static async start(opts: ControlPlaneOptions = {}): Promise<TestControlPlane> {
    const identity = opts.plaintext ? undefined : await istiodIdentity();
    const cp = new TestControlPlane(opts, identity, opts.port ?? 0);
    await cp.listen();
    return cp;
  }

  /** `localhost:<port>`: the agent verifies istiod.istio-system.svc for a localhost address. */
  get address(): string {
    return `localhost:${this.port}`;
  }

  /** The root that verifies this server's certificate (and signs accepted client certificates). */
  get rootPem(): string {
    return this.identity?.ca.certPem ?? '';
  }

  /** The CA behind rootPem, to issue client certificates for PROV_CERT tests. */
  get ca(): CertificateAuthority | undefined {
    return this.identity?.ca;
  }

  writeRoot(path: string): void {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, this.rootPem);
  }

  private async listen(): Promise<void> {
    const server = new grpc.Server();
    server.addService(
      {
        StreamAggregatedResources: bidi(`${ADS}/StreamAggregatedResources`, 'envoy.service.discovery.v3.DiscoveryRequest', 'envoy.service.discovery.v3.DiscoveryResponse'),
        DeltaAggregatedResources: bidi(`${ADS}/DeltaAggregatedResources`, 'envoy.service.discovery.v3.DeltaDiscoveryRequest', 'envoy.service.discovery.v3.DeltaDiscoveryResponse'),
      },
      {
        StreamAggregatedResources: (call: LiveStream['call']) => this.accept(call, false),
        DeltaAggregatedResources: (call: LiveStream['call']) => this.accept(call, true),
      },
    );
    const creds = this.identity
      ? grpc.ServerCredentials.createSsl(
          Buffer.from(this.identity.ca.certPem),
          [{ private_key: Buffer.from(this.identity.keyPem), cert_chain: Buffer.from(this.identity.certPem) }],
          !!this.opts.requireClientCert,
        )
      : grpc.ServerCredentials.createInsecure();
    this.port = await new Promise<number>((resolve, reject) => server.bindAsync(`127.0.0.1:${this.port}`, creds, (err, p) => (err ? reject(err) : resolve(p))));
    this.server = server;
  }

  private accept(call: LiveStream['call'], delta: boolean): void {
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(call.metadata.getMap())) metadata[k] = String(v);
    const peer = (call as unknown as { getAuthContext?: () => { sslPeerCertificate?: unknown } }).getAuthContext?.();
    const rec: StreamRecord = { id: ++this.nextStream, delta, metadata, clientCert: !!peer?.sslPeerCertificate };
    this.streams.push(rec);
    this.notify();
    const s: LiveStream = { rec, call, types: new Map() };
    if (this.opts.requiredToken !== undefined && metadata.authorization !== `Bearer ${this.opts.requiredToken}`) {
      rec.ended = 'rejected: token';
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: metadata.authorization ? 'authentication failure: invalid token' : 'authentication failure: no bearer token' });
      return;
    }
    if (this.opts.requiredClusterId !== undefined && metadata.clusterid !== this.opts.requiredClusterId) {
      rec.ended = 'rejected: cluster';
      call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: `unknown cluster ${JSON.stringify(metadata.clusterid ?? '')}` });
      return;
    }
    this.live.add(s);
    const end = (why: string) => {
      rec.ended ??= why;
      this.live.delete(s);
      this.notify();
    };
    call.on('data', (m: { raw: Buffer; msg: Record<string, any> }) => this.onRequest(s, m.raw, m.msg));
    call.on('end', () => {
      end('client closed');
      call.end();
    });
    call.on('cancelled', () => end('cancelled'));
    call.on('error', () => end('error'));
  }

  private onRequest(s: LiveStream, raw: Buffer, m: Record<string, any>): void {
    const delta = s.rec.delta;
    const req: ReceivedRequest = {
      stream: s.rec.id,
      delta,
      typeUrl: String(m.type_url ?? ''),
      versionInfo: String(m.version_info ?? ''),
      nonce: String(m.response_nonce ?? ''),
      resourceNames: (delta ? m.resource_names_subscribe : m.resource_names) ?? [],
      unsubscribe: (delta ? m.resource_names_unsubscribe : undefined) ?? [],
      ...(m.error_detail ? { errorDetail: m.error_detail } : {}),
      ...(m.node ? { node: m.node } : {}),
      raw,
      at: Date.now(),
    };
    this.requests.push(req);
    this.notify();
    if (!this.autoRespond || req.typeUrl === HEALTH || req.errorDetail) return;
    const prev = s.types.get(req.typeUrl);
    if (!delta) {
      const names = [...req.resourceNames].sort();
      const changed = !prev || prev.names.join('\0') !== names.join('\0');
      const st: TypeState = { ...(prev ?? {}), names };
      s.types.set(req.typeUrl, st);
      if (req.nonce === '' || changed) this.sendSotw(s, req.typeUrl);
      return;
    }
    if (!prev) {
      const st: TypeState = { names: [], ...(req.resourceNames.length ? { subscribed: new Set(req.resourceNames) } : {}) };
      s.types.set(req.typeUrl, st);
      this.sendDelta(s, req.typeUrl, undefined, true);
      return;
    }
    for (const n of req.unsubscribe) prev.subscribed?.delete(n);
    if (req.resourceNames.length) {
      const added = req.resourceNames.filter((n) => !prev.subscribed?.has(n));
      if (prev.subscribed) for (const n of req.resourceNames) prev.subscribed.add(n);
      if (added.length) this.sendDelta(s, req.typeUrl, new Set(added), true);
    }
  }

  private sendSotw(s: LiveStream, typeUrl: string): void {
    const st = s.types.get(typeUrl)!;
    const served = this.served.get(typeUrl);
    const all = [...(served?.resources.values() ?? [])];
    const resources = st.names.length ? all.filter((r) => st.names.includes(r.name)) : all;
    const nonce = `n${++this.nonce}`;
    st.lastNonce = nonce;
    s.call.write({ type_url: typeUrl, version_info: `v${served?.version ?? 0}`, nonce, resources: resources.map((r) => r.any) });
  }

  /** Sends `only` (or everything the stream watches) and `removed`. `always`: even when empty. */
  private sendDelta(s: LiveStream, typeUrl: string, only: Set<string> | undefined, always: boolean, removed: string[] = []): void {
    const st = s.types.get(typeUrl)!;
    const served = this.served.get(typeUrl);
    const watched = (n: string) => !st.subscribed || st.subscribed.has(n);
    const resources = [...(served?.resources.values() ?? [])].filter((r) => watched(r.name) && (!only || only.has(r.name)));
    const gone = removed.filter(watched);
    if (!always && resources.length === 0 && gone.length === 0) return;
    const nonce = `d${++this.nonce}`;
    st.lastNonce = nonce;
    s.call.write({
      type_url: typeUrl,
      system_version_info: `v${served?.version ?? 0}`,
      nonce,
      resources: resources.map((r) => ({ name: r.name, version: `v${served?.version ?? 0}`, resource: r.any })),
      removed_resources: gone,
    });
  }

  /**
   * Replaces the resources of `typeUrl` (a new version) and pushes them to every stream that
   * subscribed to the type: SotW streams get their full filtered set, delta streams what they
   * watch of the new set and the names that went away.
   */
  set(typeUrl: string, resources: ServedResource[]): void {
    const prev = this.served.get(typeUrl);
    const next: Served = { version: (prev?.version ?? 0) + 1, resources: new Map(resources.map((r) => [r.name, r])) };
    this.served.set(typeUrl, next);
    const removed = [...(prev?.resources.keys() ?? [])].filter((n) => !next.resources.has(n));
    for (const s of this.live) {
      if (!s.types.has(typeUrl)) continue;
      if (s.rec.delta) this.sendDelta(s, typeUrl, undefined, false, removed);
      else this.sendSotw(s, typeUrl);
    }
  }

  /** Sends a hand-made response on every live stream (a push regardless of subscriptions). */
  pushRaw(response: Record<string, unknown>): void {
    for (const s of this.live) s.call.write(response);
  }

  /** Live streams right now. */
  get liveStreams(): number {
    return this.live.size;
  }

  /** Ends every live stream with `status` (an OK status = istiod's graceful EOF). */
  endStreams(status: { code: grpc.status; details: string } = { code: grpc.status.OK, details: 'OK' }): void {
    for (const s of [...this.live]) {
      s.rec.ended = `server ended: ${status.code}`;
      this.live.delete(s);
      if (status.code === grpc.status.OK) s.call.end();
      else s.call.emit('error', status);
    }
    this.notify();
  }

  /** istiod going away: every connection dropped, then (after `downMs`) listening again on the same port. */
  async restart(downMs = 0): Promise<void> {
    this.server?.forceShutdown();
    for (const s of this.live) s.rec.ended ??= 'server shut down';
    this.live.clear();
    this.notify();
    if (downMs) await new Promise((r) => setTimeout(r, downMs));
    await this.listen();
  }

  private notify(): void {
    for (const w of this.watchers.splice(0)) w();
  }

  /** Resolves when `cond` holds (checked at every request and stream change). */
  until(cond: () => boolean, timeoutMs = 10_000, what = 'control plane condition'): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out waiting for ${what}; requests: ${JSON.stringify(this.requests.map((r) => [r.stream, r.typeUrl.split('/')[1], r.nonce, r.resourceNames]))}`)),
        timeoutMs,
      );
      const check = () => {
        if (cond()) {
          clearTimeout(timer);
          resolve();
        } else this.watchers.push(check);
      };
      check();
    });
  }

  /** The first recorded request matching `pred` (waiting for it). */
  async request(pred: (r: ReceivedRequest) => boolean, timeoutMs = 10_000): Promise<ReceivedRequest> {
    await this.until(() => this.requests.some(pred), timeoutMs, 'a matching request');
    return this.requests.find(pred)!;
  }

  async stop(): Promise<void> {
    this.server?.forceShutdown();
    this.live.clear();
  }
}
