// The stand-in's gRPC side: Envoy's ADS stream (SotW or delta, per the bootstrap) over the
// `xds-grpc` pipe and one SDS stream per secret over the `sds-grpc` pipe, each opened with the
// bootstrap's node on the first message, ACKing (or NACKing) every response and reopening a
// closed stream after a pause. Loaded only when a stream is opened: Envoy's protos take a while.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type * as Grpc from '@grpc/grpc-js';
import type Protobuf from 'protobufjs';
import type { SdsScript, StandinEvent, XdsResource, XdsScript } from './script.js';

export const CDS_TYPE = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
export const LDS_TYPE = 'type.googleapis.com/envoy.config.listener.v3.Listener';
const SECRET_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';

const PROTO_FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/secret/v3/sds.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
];

// gRPC and Envoy's protos load only when a stream is actually opened (see openStreams).
let grpc: typeof Grpc;
let protos: typeof import('../envoy-protos.js');

type Json = Record<string, unknown>;

/**
 * google.protobuf.Value from plain JSON (protobufjs takes Struct only in its wire shape, and its
 * built-in well-known types use camelCase field names even in a keepCase root).
 */
function toValue(v: unknown): Json {
  if (v === null || v === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v as Json) };
}

function toStruct(o: Json): Json {
  return { fields: Object.fromEntries(Object.entries(o).map(([k, v]) => [k, toValue(v)])) };
}

function nodeProto(node: Json | undefined): Json | undefined {
  if (!node) return undefined;
  const out: Json = { ...node };
  if (node.metadata && typeof node.metadata === 'object') out.metadata = toStruct(node.metadata as Json);
  return out;
}

/** Decoded bytes read better as text in a record (certificates, keys). */
function readableBytes(v: unknown): unknown {
  if (v instanceof Uint8Array) {
    const s = Buffer.from(v).toString('utf8');
    return /^[\t\n\r\x20-\x7e]*$/.test(s) ? s : Buffer.from(v).toString('base64');
  }
  if (Array.isArray(v)) return v.map(readableBytes);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, readableBytes(x)]));
  return v;
}

export interface StreamsOptions {
  bootstrap: Json;
  cwd: string;
  record: (ev: StandinEvent) => void;
  /** update counters the stand-in serves as stats */
  counters: Map<string, number>;
  xds: 'auto' | boolean | XdsScript;
  sds: 'auto' | boolean | SdsScript;
}

function clusterPipe(bootstrap: Json, name: string): string | undefined {
  const clusters = ((bootstrap.static_resources as Json | undefined)?.clusters ?? []) as Json[];
  const c = clusters.find((x) => x.name === name);
  const lb = (((c?.load_assignment as Json | undefined)?.endpoints as Json[] | undefined)?.[0]?.lb_endpoints as Json[] | undefined)?.[0];
  const pipe = ((lb?.endpoint as Json | undefined)?.address as Json | undefined)?.pipe as Json | undefined;
  return typeof pipe?.path === 'string' ? pipe.path : undefined;
}

function bump(counters: Map<string, number>, name: string): void {
  counters.set(name, (counters.get(name) ?? 0) + 1);
}

function statPrefix(typeUrl: string): string | undefined {
  if (typeUrl === CDS_TYPE) return 'cluster_manager.cds';
  if (typeUrl === LDS_TYPE) return 'listener_manager.lds';
  return undefined;
}

interface PlannedStream {
  stream: string;
  /** the socket path, resolved against the working directory */
  path: string;
  pipe: string;
  reconnectMs: number;
  run: (s: Streams, c: Grpc.Client, onEnd: () => void) => void;
}

/**
 * Opens the streams the script and bootstrap call for. Returns undefined (after recording why)
 * when there is nothing to open, without loading gRPC.
 */
export async function openStreams(o: StreamsOptions): Promise<Streams | undefined> {
  const planned: PlannedStream[] = [];
  const plan = (stream: string, cluster: string, mode: StreamsOptions['xds' | 'sds'], reconnectMs: number | undefined, run: PlannedStream['run']) => {
    if (mode === false) return;
    const pipe = clusterPipe(o.bootstrap, cluster);
    if (!pipe) return o.record({ e: 'xds-skipped', t: Date.now(), stream, reason: `no pipe address for cluster ${cluster} in the bootstrap` });
    const path = resolve(o.cwd, pipe);
    if (mode === 'auto' && !existsSync(path)) return o.record({ e: 'xds-skipped', t: Date.now(), stream, reason: `no socket at ${pipe}` });
    planned.push({ stream, path, pipe, reconnectMs: reconnectMs ?? 1000, run });
  };
  const ads = (o.bootstrap.dynamic_resources as Json | undefined)?.ads_config as Json | undefined;
  const adsCluster = (((ads?.grpc_services as Json[] | undefined)?.[0]?.envoy_grpc as Json | undefined)?.cluster_name as string | undefined) ?? 'xds-grpc';
  const xds = typeof o.xds === 'object' ? o.xds : {};
  const delta = xds.delta ?? ads?.api_type === 'DELTA_GRPC';
  plan('ads', adsCluster, o.xds, xds.reconnectMs, (s, c, end) => s.runAds(c, xds, delta, end));
  const sds = typeof o.sds === 'object' ? o.sds : {};
  for (const name of sds.resourceNames ?? ['default', 'ROOTCA']) plan(`sds:${name}`, 'sds-grpc', o.sds, sds.reconnectMs, (s, c, end) => s.runSds(c, name, end));
  if (planned.length === 0) return undefined;
  grpc = await import('@grpc/grpc-js');
  protos = await import('../envoy-protos.js');
  const streams = new Streams(o);
  for (const p of planned) streams.open(p);
  return streams;
}

export class Streams {
  private readonly root: Protobuf.Root = protos.loadEnvoyProtos(PROTO_FILES);
  private readonly clients: Grpc.Client[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly o: StreamsOptions) {}

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    for (const c of this.clients) c.close();
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    t.unref();
    this.timers.add(t);
  }

  open(p: PlannedStream): void {
    const attempt = () => {
      if (this.closed) return;
      if (!existsSync(p.path)) return this.later(p.reconnectMs, attempt);
      const client = new grpc.Client(`unix://${p.path}`, grpc.credentials.createInsecure());
      this.clients.push(client);
      this.o.record({ e: 'xds-connect', t: Date.now(), stream: p.stream, target: p.pipe });
      let ended = false;
      p.run(this, client, () => {
        if (ended) return;
        ended = true;
        client.close();
        this.later(p.reconnectMs, attempt);
      });
    };
    attempt();
  }

  private codec(typeName: string) {
    return protos.messageCodec(this.root, typeName);
  }

  private decodeAny(any: Json | undefined, fallbackName = ''): XdsResource {
    const typeUrl = String(any?.type_url ?? '');
    const value = any?.value as Uint8Array | undefined;
    let body: Json | undefined;
    try {
      const type = this.root.lookupType(typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
      body = readableBytes(type.toObject(type.decode(value ?? new Uint8Array()), { longs: String, enums: String })) as Json;
    } catch {
      body = undefined; // a type Envoy's protos do not define (an agent-only type): recorded by URL only
    }
    return { name: typeof body?.name === 'string' ? body.name : fallbackName, typeUrl, ...(body ? { body } : {}) };
  }

  private stream(client: Grpc.Client, method: string, req: string, res: string, stream: string, onEnd: () => void) {
    const out = this.codec(req);
    const inn = this.codec(res);
    const call = client.makeBidiStreamRequest(method, out.serialize, inn.deserialize);
    call.on('error', (err: Grpc.ServiceError) => {
      this.o.record({ e: 'xds-closed', t: Date.now(), stream, code: err.code, details: err.details ?? err.message });
      onEnd();
    });
    call.on('end', () => {
      this.o.record({ e: 'xds-closed', t: Date.now(), stream, details: 'stream ended' });
      onEnd();
    });
    return call;
  }

  runAds(client: Grpc.Client, script: XdsScript, delta: boolean, onEnd: () => void): void {
    const types = script.types ?? [CDS_TYPE, LDS_TYPE];
    const nack = new Set(script.nack ?? []);
    const node = nodeProto(this.o.bootstrap.node as Json | undefined);
    const accepted = new Map<string, string>();
    const counters = this.o.counters;
    const send = (call: Grpc.ClientDuplexStream<Json, Json>, m: Json, isNack: boolean) => {
      this.o.record({
        e: 'xds-request',
        t: Date.now(),
        stream: 'ads',
        typeUrl: String(m.type_url),
        versionInfo: String(m.version_info ?? ''),
        nonce: String(m.response_nonce ?? ''),
        resourceNames: (m.resource_names ?? m.resource_names_subscribe ?? []) as string[],
        nack: isNack,
      });
      call.write(m);
    };
    const end = () => {
      counters.set('control_plane.connected_state', 0);
      onEnd();
    };
    if (delta) {
      const call = this.stream(
        client,
        '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
        'envoy.service.discovery.v3.DeltaDiscoveryRequest',
        'envoy.service.discovery.v3.DeltaDiscoveryResponse',
        'ads',
        end,
      );
      call.on('data', (r: Json) => {
        counters.set('control_plane.connected_state', 1);
        const typeUrl = String(r.type_url ?? '');
        const resources = ((r.resources ?? []) as Json[]).map((x) => ({
          ...this.decodeAny(x.resource as Json | undefined, String(x.name ?? '')),
          name: String(x.name ?? ''),
          version: String(x.version ?? ''),
        }));
        this.o.record({
          e: 'xds-response',
          t: Date.now(),
          stream: 'ads',
          typeUrl,
          versionInfo: String(r.system_version_info ?? ''),
          nonce: String(r.nonce ?? ''),
          resources,
          removed: (r.removed_resources ?? []) as string[],
        });
        const rejected = nack.has(typeUrl);
        const prefix = statPrefix(typeUrl);
        if (prefix) bump(counters, `${prefix}.${rejected ? 'update_rejected' : 'update_success'}`);
        send(call, { type_url: typeUrl, response_nonce: r.nonce, ...(rejected ? { error_detail: { code: 3, message: 'rejected by the stand-in Envoy' } } : {}) }, rejected);
      });
      types.forEach((typeUrl, i) => send(call, { type_url: typeUrl, ...(i === 0 && node ? { node } : {}) }, false));
      return;
    }
    const call = this.stream(
      client,
      '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
      'envoy.service.discovery.v3.DiscoveryRequest',
      'envoy.service.discovery.v3.DiscoveryResponse',
      'ads',
      end,
    );
    call.on('data', (r: Json) => {
      counters.set('control_plane.connected_state', 1);
      const typeUrl = String(r.type_url ?? '');
      const resources = ((r.resources ?? []) as Json[]).map((x) => this.decodeAny(x));
      this.o.record({ e: 'xds-response', t: Date.now(), stream: 'ads', typeUrl, versionInfo: String(r.version_info ?? ''), nonce: String(r.nonce ?? ''), resources });
      const rejected = nack.has(typeUrl);
      const prefix = statPrefix(typeUrl);
      if (prefix) bump(counters, `${prefix}.${rejected ? 'update_rejected' : 'update_success'}`);
      if (!rejected) accepted.set(typeUrl, String(r.version_info ?? ''));
      send(
        call,
        {
          type_url: typeUrl,
          version_info: accepted.get(typeUrl) ?? '',
          response_nonce: r.nonce,
          ...(rejected ? { error_detail: { code: 3, message: 'rejected by the stand-in Envoy' } } : {}),
        },
        rejected,
      );
    });
    types.forEach((typeUrl, i) => send(call, { type_url: typeUrl, ...(i === 0 && node ? { node } : {}) }, false));
  }

  runSds(client: Grpc.Client, name: string, onEnd: () => void): void {
    const stream = `sds:${name}`;
    const call = this.stream(
      client,
      '/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets',
      'envoy.service.discovery.v3.DiscoveryRequest',
      'envoy.service.discovery.v3.DiscoveryResponse',
      stream,
      onEnd,
    );
    const send = (m: Json) => {
      this.o.record({
        e: 'xds-request',
        t: Date.now(),
        stream,
        typeUrl: SECRET_TYPE,
        versionInfo: String(m.version_info ?? ''),
        nonce: String(m.response_nonce ?? ''),
        resourceNames: [name],
        nack: false,
      });
      call.write(m);
    };
    call.on('data', (r: Json) => {
      const resources = ((r.resources ?? []) as Json[]).map((x) => this.decodeAny(x));
      this.o.record({ e: 'xds-response', t: Date.now(), stream, typeUrl: String(r.type_url ?? ''), versionInfo: String(r.version_info ?? ''), nonce: String(r.nonce ?? ''), resources });
      send({ type_url: SECRET_TYPE, resource_names: [name], version_info: r.version_info, response_nonce: r.nonce });
    });
    const node = nodeProto(this.o.bootstrap.node as Json | undefined);
    send({ type_url: SECRET_TYPE, resource_names: [name], ...(node ? { node } : {}) });
  }
}
