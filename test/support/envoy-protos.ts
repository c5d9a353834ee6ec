// Envoy's API protos (shipped in @grpc/grpc-js-xds's deps/) loaded with protobufjs, for test code
// that encodes or decodes Envoy messages: the stand-in Envoy, fake control planes.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);

/** The include directories: envoy-api, xds (udpa/xds), googleapis, protoc-gen-validate. */
export const envoyProtoDirs = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps', d));

let commonAdded = false;

/** google/protobuf files protobufjs knows but does not register by default (descriptor.proto…). */
function addCommonProtos(): void {
  if (commonAdded) return;
  commonAdded = true;
  for (const name of ['api', 'descriptor', 'source_context', 'type']) {
    const json = require(`protobufjs/google/protobuf/${name}.json`) as { nested: { google: { nested: { protobuf: { nested: protobuf.INamespace } } } } };
    protobuf.common(name, json.nested.google.nested.protobuf.nested);
  }
}

/** A resolved protobufjs Root with `files` (paths relative to the include dirs) loaded, field names as in the protos. */
export function loadEnvoyProtos(files: readonly string[]): protobuf.Root {
  addCommonProtos();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    for (const dir of envoyProtoDirs) {
      const p = join(dir, target);
      if (existsSync(p)) return p;
    }
    return target;
  };
  root.loadSync([...files], { keepCase: true });
  root.resolveAll();
  return root;
}

/** Encoder/decoder pair for one message type (plain objects with proto field names). */
export function messageCodec(root: protobuf.Root, typeName: string) {
  const type = root.lookupType(typeName);
  return {
    serialize: (m: object) => Buffer.from(type.encode(type.fromObject(m)).finish()),
    deserialize: (b: Buffer) => type.toObject(type.decode(b), { longs: String, enums: String }) as Record<string, any>,
  };
}

/** google.protobuf.Any holding `body` encoded as `typeName`. */
export function packAny(root: protobuf.Root, typeName: string, body: object): { type_url: string; value: Uint8Array } {
  const type = root.lookupType(typeName);
  return { type_url: `type.googleapis.com/${typeName}`, value: type.encode(type.fromObject(body)).finish() };
}
