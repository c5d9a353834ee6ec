// Protobuf definitions the security subsystem speaks: Envoy's SDS (from the protos shipped in
// @grpc/grpc-js-xds's deps/) and Istio's CA service (protos/ in this repo). Loaded with
// protobufjs directly rather than @grpc/proto-loader: proto-loader also builds descriptor protos
// for every type, which triples the load time of Envoy's ~100-file import graph (≈160 ms vs
// ≈50 ms). Everything here is imported lazily, when the SDS subsystem starts.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServiceDefinition } from '@grpc/grpc-js';
import type { IConversionOptions, Root, Type } from 'protobufjs';

/** dist/agent/security → project root (protos/ is not compiled, so it stays beside dist/). */
const projectRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');

export const SECRET_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
export const SDS_SERVICE = 'envoy.service.secret.v3.SecretDiscoveryService';
export const CA_SERVICE = 'istio.v1.auth.IstioCertificateService';

/** How decoded messages look: snake_case fields, 64-bit ints as strings, bytes as Buffers. */
const conversion: IConversionOptions = { longs: String, enums: String, bytes: Buffer as unknown as IConversionOptions['bytes'], oneofs: true, defaults: false };

const require = createRequire(import.meta.url);

function envoyProtoDirs(): string[] {
  const deps = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  return ['envoy-api', 'googleapis', 'protoc-gen-validate', 'xds'].map((d) => join(deps, d));
}

async function loadRoot(files: string[], includeDirs: string[]): Promise<Root> {
  const pb = (await import('protobufjs')).default;
  const root = new pb.Root();
  // protobufjs bundles the common google/protobuf types but ships descriptor.proto (which the
  // validate/udpa annotations import) only as a file in its package.
  const dirs = [...includeDirs, dirname(require.resolve('protobufjs/package.json'))];
  root.resolvePath = (origin, target) => {
    for (const dir of dirs) {
      const p = join(dir, target);
      if (existsSync(p)) return p;
    }
    // google/protobuf/*.proto are bundled with protobufjs.
    return pb.util.path.resolve(origin, target);
  };
  root.loadSync(files, { keepCase: true });
  root.resolveAll();
  return root;
}

/** Turns one protobufjs service into a grpc-js service definition (for servers and clients). */
export function serviceDefinition(root: Root, serviceName: string): ServiceDefinition {
  const svc = root.lookupService(serviceName);
  const def: Record<string, unknown> = {};
  for (const m of svc.methodsArray) {
    m.resolve();
    const req = m.resolvedRequestType!;
    const res = m.resolvedResponseType!;
    def[m.name] = {
      path: `/${serviceName}/${m.name}`,
      requestStream: !!m.requestStream,
      responseStream: !!m.responseStream,
      requestSerialize: (o: object) => encodeMessage(req, o),
      requestDeserialize: (b: Buffer) => decodeMessage(req, b),
      responseSerialize: (o: object) => encodeMessage(res, o),
      responseDeserialize: (b: Buffer) => decodeMessage(res, b),
      originalName: m.name,
    };
  }
  return def as ServiceDefinition;
}

export function encodeMessage(t: Type, o: object): Buffer {
  const bytes = t.encode(t.fromObject(o as Record<string, unknown>)).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function decodeMessage<T = Record<string, unknown>>(t: Type, b: Uint8Array): T {
  return t.toObject(t.decode(b), conversion) as T;
}

export interface SdsProtos {
  root: Root;
  service: ServiceDefinition;
  secret: Type;
}

let sds: Promise<SdsProtos> | undefined;

/** SecretDiscoveryService + the Secret message (memoised; first call parses Envoy's protos). */
export function loadSdsProtos(): Promise<SdsProtos> {
  sds ??= (async () => {
    const root = await loadRoot(['envoy/service/secret/v3/sds.proto', 'envoy/extensions/transport_sockets/tls/v3/secret.proto'], envoyProtoDirs());
    return { root, service: serviceDefinition(root, SDS_SERVICE), secret: root.lookupType('envoy.extensions.transport_sockets.tls.v3.Secret') };
  })();
  return sds;
}

export interface CaProtos {
  root: Root;
  service: ServiceDefinition;
}

let ca: Promise<CaProtos> | undefined;

/** IstioCertificateService (protos/istio/v1/auth/ca.proto; memoised). */
export function loadCaProtos(): Promise<CaProtos> {
  ca ??= (async () => {
    const root = await loadRoot(['istio/v1/auth/ca.proto'], [join(projectRoot, 'protos')]);
    return { root, service: serviceDefinition(root, CA_SERVICE) };
  })();
  return ca;
}

// Shapes of the messages as this code reads and writes them (keepCase field names).

export interface DiscoveryRequest {
  version_info?: string;
  node?: { id?: string; cluster?: string; metadata?: unknown; user_agent_name?: string };
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string };
}

export interface DiscoveryResponse {
  version_info: string;
  resources: { type_url: string; value: Uint8Array }[];
  type_url: string;
  nonce: string;
}

/** google.protobuf.* types come from protobufjs's bundled copies, whose field names are camelCase. */
export interface IstioCertificateRequest {
  csr: string;
  validity_duration: string | number;
  metadata?: { fields?: Record<string, { stringValue?: string }> };
}

export interface IstioCertificateResponse {
  cert_chain?: string[];
}
