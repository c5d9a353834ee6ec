// The binary flatbuffers schema (`.bfbs`, a reflection.Schema table, flatbuffers
// reflection/reflection.fbs) describing FlatNode. The metadata-exchange filter hands it to
// Envoy with `declare_property` so that CEL expressions can navigate the peer node, e.g.
// `upstream_peer.labels['app'].value` (istio/proxy extensions/metadata_exchange/plugin.cc
// onConfigure). It is built here from the schema's facts instead of being embedded as flatc
// output; test/wasm-filters/schema.test.ts compares it with what flatc produces.
import { ByteWriter } from './bytes';

/** reflection.BaseType */
namespace BaseType {
  export const Bool: u8 = 2;
  export const String: u8 = 13;
  export const Vector: u8 = 14;
  export const Obj: u8 = 15;
}

// A tiny front-to-back flatbuffer writer for nested tables, strings and vectors of offsets.
abstract class Node {
  pos: i32 = -1;
  abstract write(w: ByteWriter): void;
}

class StrNode extends Node {
  constructor(public readonly s: string) {
    super();
  }
  write(w: ByteWriter): void {
    w.align(4);
    this.pos = w.length;
    const b = String.UTF8.encode(this.s);
    w.u32(b.byteLength);
    w.bytes(b);
    w.u8(0);
  }
}

class VecNode extends Node {
  constructor(public readonly items: Node[]) {
    super();
  }
  write(w: ByteWriter): void {
    w.align(4);
    this.pos = w.length;
    w.u32(this.items.length);
    const first = w.length;
    for (let i = 0; i < this.items.length; i++) w.u32(0);
    for (let i = 0; i < this.items.length; i++) {
      const item = this.items[i];
      if (item.pos < 0) item.write(w);
      const at = first + 4 * i;
      w.patchU32(at, <u32>(item.pos - at));
    }
  }
}

class Field {
  constructor(
    public slot: i32,
    public size: i32,
    public value: i64,
    public child: Node | null,
  ) {}
}

class TableNode extends Node {
  fields: Field[] = [];

  scalar(slot: i32, size: i32, value: i64): TableNode {
    this.fields.push(new Field(slot, size, value, null));
    return this;
  }

  ref(slot: i32, child: Node): TableNode {
    this.fields.push(new Field(slot, 4, 0, child));
    return this;
  }

  str(slot: i32, s: string): TableNode {
    return this.ref(slot, new StrNode(s));
  }

  write(w: ByteWriter): void {
    // Largest fields first keeps every scalar aligned to its size.
    const ordered = this.fields.slice(0);
    ordered.sort((a: Field, b: Field): i32 => b.size - a.size);
    let slots = 0;
    for (let i = 0; i < this.fields.length; i++) if (this.fields[i].slot + 1 > slots) slots = this.fields[i].slot + 1;
    const offsets = new Array<i32>(slots);
    let inline = 4;
    for (let i = 0; i < ordered.length; i++) {
      offsets[ordered[i].slot] = inline;
      inline += ordered[i].size;
    }
    let objectSize = inline;
    while (objectSize % 4 != 0) objectSize++;
    w.align(2);
    const vtable = w.length;
    w.u16(4 + 2 * slots);
    w.u16(objectSize);
    for (let i = 0; i < slots; i++) w.u16(offsets[i]);
    w.align(4);
    this.pos = w.length;
    w.u32(<u32>(this.pos - vtable));
    for (let i = 0; i < ordered.length; i++) {
      const f = ordered[i];
      if (f.size == 1) w.u8(<u32>f.value);
      else if (f.size == 2) w.u16(<u32>f.value);
      else w.u32(<u32>f.value);
    }
    while (w.length < this.pos + objectSize) w.u8(0);
    for (let i = 0; i < ordered.length; i++) {
      const child = ordered[i].child;
      if (child === null) continue;
      if (child.pos < 0) child.write(w);
      const at = this.pos + offsets[ordered[i].slot];
      w.patchU32(at, <u32>(child.pos - at));
    }
  }
}

// reflection.Type slots: base_type 0, element 1, index 2 (default -1), fixed_length 3,
// base_size 4 (default 4), element_size 5 (default 0).
function stringType(): TableNode {
  return new TableNode().scalar(0, 1, BaseType.String).scalar(5, 4, 1);
}

function vectorType(element: u8, index: i32): TableNode {
  const t = new TableNode().scalar(0, 1, BaseType.Vector).scalar(1, 1, element).scalar(5, 4, 4);
  if (index >= 0) t.scalar(2, 4, index);
  return t;
}

// reflection.Field slots: name 0, type 1, id 2, offset 3, ..., required 7, key 8.
function field(name: string, type: TableNode, id: i32, key: bool): TableNode {
  const f = new TableNode()
    .str(0, name)
    .ref(1, type)
    .scalar(3, 2, 4 + 2 * id);
  if (id != 0) f.scalar(2, 2, id);
  if (key) f.scalar(7, 1, 1).scalar(8, 1, 1);
  return f;
}

// reflection.Object slots: name 0, fields 1 (sorted by name), is_struct 2, minalign 3, bytesize 4.
function object(name: string, fields: TableNode[]): TableNode {
  return new TableNode()
    .str(0, name)
    .ref(1, new VecNode(changetype<Node[]>(fields)))
    .scalar(3, 4, 1);
}

/** Index of KeyVal in the schema's objects vector (objects are sorted by name). */
const KEYVAL_INDEX = 1;

let cached: ArrayBuffer | null = null;

/** The FlatNode binary schema, identifier "BFBS". */
export function flatNodeSchema(): ArrayBuffer {
  if (cached !== null) return changetype<ArrayBuffer>(cached);
  const flatNode = object('Wasm.Common.FlatNode', [
    field('app_containers', vectorType(BaseType.String, -1), 8, false),
    field('cluster_id', stringType(), 9, false),
    field('instance_ips', vectorType(BaseType.String, -1), 10, false),
    field('istio_version', stringType(), 6, false),
    field('labels', vectorType(BaseType.Obj, KEYVAL_INDEX), 2, false),
    field('mesh_id', stringType(), 7, false),
    field('name', stringType(), 0, false),
    field('namespace', stringType(), 1, false),
    field('owner', stringType(), 3, false),
    field('platform_metadata', vectorType(BaseType.Obj, KEYVAL_INDEX), 5, false),
    field('workload_name', stringType(), 4, false),
  ]);
  const keyVal = object('Wasm.Common.KeyVal', [field('key', stringType(), 0, true), field('value', stringType(), 1, false)]);
  // reflection.Schema slots: objects 0, enums 1, file_ident 2, file_ext 3, root_table 4.
  const schema = new TableNode()
    .ref(0, new VecNode([changetype<Node>(flatNode), changetype<Node>(keyVal)]))
    .ref(1, new VecNode([]))
    .ref(4, flatNode);
  const w = new ByteWriter(1024);
  w.u32(0); // root offset
  w.u32(0x53424642); // file identifier "BFBS" (little-endian u32)
  schema.write(w);
  w.patchU32(0, <u32>schema.pos);
  cached = w.toArrayBuffer();
  return changetype<ArrayBuffer>(cached);
}
