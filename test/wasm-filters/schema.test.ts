// The FlatNode binary schema the metadata-exchange filter declares to Envoy (declare_property),
// against what flatc (Debian's flatbuffers-compiler) generates from node_info.fbs: the same
// objects, fields, slots, vtable offsets, types and key, as Envoy's reflection-based CEL reads
// them. Both are decoded with the test host's flatbuffers reader (reflection.fbs layout).
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FbTable, Sidecar, WasmType } from '../support/proxy-wasm-host/index.js';
import { mxConfig, serverNodeMetadata } from './fixtures.js';

const hasFlatc = spawnSync('flatc', ['--version']).status === 0;
const skip = hasFlatc || process.env.CI === 'true' ? false : 'flatc is not installed: apt-get install flatbuffers-compiler';

/** istio/proxy extensions/common/node_info.fbs: its tables and fields, in declaration order. */
const nodeInfoFbs = `namespace Wasm.Common;
table KeyVal { key:string (key); value:string; }
table FlatNode {
  name:string; namespace:string; labels:[KeyVal]; owner:string; workload_name:string;
  platform_metadata:[KeyVal]; istio_version:string; mesh_id:string; app_containers:[string];
  cluster_id:string; instance_ips:[string];
}
root_type FlatNode;
`;

/** reflection.Schema → the parts Envoy's FlatBuffers CEL wrapper uses. */
function describe(bytes: Uint8Array): unknown {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const schema = FbTable.root(buf);
  return {
    identifier: buf.toString('latin1', 4, 8),
    root: schema.table(4)?.string(0),
    enums: (schema.tables(1) ?? []).length,
    objects: (schema.tables(0) ?? []).map((o) => ({
      name: o.string(0),
      isStruct: o.scalar(2, 1, false, 0),
      minalign: o.scalar(3, 4, true, 0),
      fields: (o.tables(1) ?? []).map((f) => {
        const ty = f.table(1)!;
        return {
          name: f.string(0),
          id: f.scalar(2, 2, false, 0),
          offset: f.scalar(3, 2, false, 0),
          key: f.scalar(8, 1, false, 0),
          required: f.scalar(7, 1, false, 0),
          type: { base: ty.scalar(0, 1, false, 0), element: ty.scalar(1, 1, false, 0), index: ty.scalar(2, 4, true, -1), baseSize: ty.scalar(4, 4, false, 4), elementSize: ty.scalar(5, 4, false, 0) },
        };
      }),
    })),
  };
}

void t.test('declared FlatNode schema = flatc --schema output', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fbs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'node_info.fbs'), nodeInfoFbs);
  execFileSync('flatc', ['-b', '--schema', '-o', dir, join(dir, 'node_info.fbs')]);
  const reference = new Uint8Array(readFileSync(join(dir, 'node_info.bfbs')));

  const sc = await Sidecar.start({ nodeId: 'server', metadata: serverNodeMetadata, direction: 1, mxConfig });
  const declared = sc.host.vms[0]!.declaredProperty('upstream_peer')!;
  t.equal(declared.type, WasmType.FlatBuffers);
  t.same(describe(declared.schema), describe(reference));
  t.same(sc.host.vms[0]!.declaredProperty('downstream_peer')!.schema, declared.schema, 'one schema for both keys');
});
