// Protobuf loading for the agent's subsystems: Envoy's API protos (shipped in
// @grpc/grpc-js-xds's deps/) and the project's own protos/ (Istio's CA service, the NDS name
// table, the ProxyConfig subset PCDS carries). Loaded with protobufjs directly rather than
// @grpc/proto-loader: proto-loader also builds descriptor protos for every type, which triples
// the load time of Envoy's ~100-file import graph (≈160 ms vs ≈50 ms). Everything here is
// imported lazily, by the subsystem that needs it once Envoy is running.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServiceDefinition } from '@grpc/grpc-js';
import type { IConversionOptions, Root, Type } from 'protobufjs';

/** protos/ of this project (dist/agent → project root; protos/ is not compiled, so it stays beside dist/). */
export const PROJECT_PROTOS_DIR = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..', 'protos');

/** How decoded messages look: snake_case fields, 64-bit ints as strings, bytes as Buffers. */
const conversion: IConversionOptions = { longs: String, enums: String, bytes: Buffer, oneofs: true, defaults: false };

const require = createRequire(import.meta.url);

/** Include directories of Envoy's API protos and what they import. */
export function envoyProtoDirs(): string[] {
  const deps = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  return ['envoy-api', 'googleapis', 'protoc-gen-validate', 'xds'].map((d) => join(deps, d));
}

/** A resolved protobufjs Root with `files` (relative to `includeDirs`) loaded, field names as in the protos. */
export async function loadProtoRoot(files: string[], includeDirs: string[]): Promise<Root> {
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
  const bytes = t.encode(t.fromObject(o)).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function decodeMessage<T = Record<string, unknown>>(t: Type, b: Uint8Array): T {
  return t.toObject(t.decode(b), conversion) as T;
}
