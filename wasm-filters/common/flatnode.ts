// Istio's node description as both filters exchange it through filter state: the `FlatNode`
// flatbuffer of istio/proxy extensions/common/node_info.fbs (namespace Wasm.Common). The
// metadata-exchange filter writes it into `upstream_peer` / `downstream_peer`; the stats filter
// (and Envoy CEL, through the declared schema, see schema.ts) reads it back. The native TCP
// metadata-exchange filter writes the same table, so the reader verifies every offset instead
// of trusting the bytes.
import { ByteWriter } from './bytes';

export class KeyVal {
  constructor(
    public key: string,
    public value: string,
  ) {}
}

/** FlatNode slots (vtable offset = 4 + 2 * slot). */
export namespace Slot {
  export const Name: i32 = 0;
  export const Namespace: i32 = 1;
  export const Labels: i32 = 2;
  export const Owner: i32 = 3;
  export const WorkloadName: i32 = 4;
  export const PlatformMetadata: i32 = 5;
  export const IstioVersion: i32 = 6;
  export const MeshId: i32 = 7;
  export const AppContainers: i32 = 8;
  export const ClusterId: i32 = 9;
  export const InstanceIps: i32 = 10;
  export const Count: i32 = 11;
}

export class NodeInfo {
  name: string | null = null;
  namespace_: string | null = null;
  owner: string | null = null;
  workloadName: string | null = null;
  istioVersion: string | null = null;
  meshId: string | null = null;
  clusterId: string | null = null;
  /** Sorted by key when present (flatbuffers CreateVectorOfSortedTables). */
  labels: KeyVal[] | null = null;
  platformMetadata: KeyVal[] | null = null;
  appContainers: string[] | null = null;
  instanceIps: string[] | null = null;

  /** `labels()->LookupByKey(key)->value()`, or null when there are no labels or no such key. */
  label(key: string): string | null {
    const l = this.labels;
    if (l === null) return null;
    for (let i = 0; i < l.length; i++) if (l[i].key == key) return l[i].value;
    return null;
  }
}

function strOrEmpty(s: string | null): string {
  return s === null ? '' : s;
}

/** Field value helpers for the stats filter (GetFromFbStringView: absent reads as ""). */
export function workloadNameOf(n: NodeInfo): string {
  return strOrEmpty(n.workloadName);
}

export function namespaceOf(n: NodeInfo): string {
  return strOrEmpty(n.namespace_);
}

export function clusterIdOf(n: NodeInfo): string {
  return strOrEmpty(n.clusterId);
}

// ----------------------------------------------------------------------------------------------
// Writer. Objects are laid out front to back: every uoffset points forward, as the format
// requires, and every table, vector and string starts 4-byte aligned (the verifier checks it).

function writeString(w: ByteWriter, s: string): i32 {
  w.align(4);
  const at = w.length;
  const b = String.UTF8.encode(s);
  w.u32(b.byteLength);
  w.bytes(b);
  w.u8(0);
  return at;
}

function patchOffset(w: ByteWriter, slotAt: i32, target: i32): void {
  w.patchU32(slotAt, <u32>(target - slotAt));
}

function writeStringVector(w: ByteWriter, items: string[]): i32 {
  w.align(4);
  const at = w.length;
  w.u32(items.length);
  const first = w.length;
  for (let i = 0; i < items.length; i++) w.u32(0);
  for (let i = 0; i < items.length; i++) patchOffset(w, first + 4 * i, writeString(w, items[i]));
  return at;
}

function writeKeyValVector(w: ByteWriter, items: KeyVal[]): i32 {
  w.align(4);
  const at = w.length;
  w.u32(items.length);
  const first = w.length;
  for (let i = 0; i < items.length; i++) w.u32(0);
  // One vtable shared by every KeyVal: both fields present, key at +4, value at +8.
  const vtable = w.length;
  w.u16(8);
  w.u16(12);
  w.u16(4);
  w.u16(8);
  for (let i = 0; i < items.length; i++) {
    w.align(4);
    const table = w.length;
    patchOffset(w, first + 4 * i, table);
    w.u32(<u32>(table - vtable));
    w.u32(0);
    w.u32(0);
    patchOffset(w, table + 4, writeString(w, items[i].key));
    patchOffset(w, table + 8, writeString(w, items[i].value));
  }
  return at;
}

/** Serializes a node as a FlatNode buffer; absent fields are left out of the table. */
export function encodeFlatNode(n: NodeInfo): ArrayBuffer {
  const present = new Array<bool>(Slot.Count);
  present[Slot.Name] = n.name !== null;
  present[Slot.Namespace] = n.namespace_ !== null;
  present[Slot.Labels] = n.labels !== null;
  present[Slot.Owner] = n.owner !== null;
  present[Slot.WorkloadName] = n.workloadName !== null;
  present[Slot.PlatformMetadata] = n.platformMetadata !== null;
  present[Slot.IstioVersion] = n.istioVersion !== null;
  present[Slot.MeshId] = n.meshId !== null;
  present[Slot.AppContainers] = n.appContainers !== null;
  present[Slot.ClusterId] = n.clusterId !== null;
  present[Slot.InstanceIps] = n.instanceIps !== null;

  const w = new ByteWriter(256);
  w.u32(0); // root uoffset, patched below
  const vtable = w.length;
  let count = 0;
  for (let i = 0; i < Slot.Count; i++) if (present[i]) count++;
  w.u16(4 + 2 * Slot.Count);
  w.u16(4 + 4 * count);
  const slotAt = new Array<i32>(Slot.Count);
  let field = 4;
  for (let i = 0; i < Slot.Count; i++) {
    if (present[i]) {
      w.u16(field);
      slotAt[i] = field;
      field += 4;
    } else {
      w.u16(0);
      slotAt[i] = 0;
    }
  }
  w.align(4);
  const table = w.length;
  w.patchU32(0, <u32>table);
  w.u32(<u32>(table - vtable));
  for (let i = 0; i < count; i++) w.u32(0);
  for (let i = 0; i < Slot.Count; i++) {
    if (!present[i]) continue;
    const at = table + slotAt[i];
    let target = 0;
    if (i == Slot.Labels) target = writeKeyValVector(w, changetype<KeyVal[]>(n.labels));
    else if (i == Slot.PlatformMetadata) target = writeKeyValVector(w, changetype<KeyVal[]>(n.platformMetadata));
    else if (i == Slot.AppContainers) target = writeStringVector(w, changetype<string[]>(n.appContainers));
    else if (i == Slot.InstanceIps) target = writeStringVector(w, changetype<string[]>(n.instanceIps));
    else target = writeString(w, changetype<string>(stringSlot(n, i)));
    patchOffset(w, at, target);
  }
  return w.toArrayBuffer();
}

function stringSlot(n: NodeInfo, slot: i32): string | null {
  switch (slot) {
    case Slot.Name:
      return n.name;
    case Slot.Namespace:
      return n.namespace_;
    case Slot.Owner:
      return n.owner;
    case Slot.WorkloadName:
      return n.workloadName;
    case Slot.IstioVersion:
      return n.istioVersion;
    case Slot.MeshId:
      return n.meshId;
    case Slot.ClusterId:
      return n.clusterId;
  }
  return null;
}

// ----------------------------------------------------------------------------------------------
// Verifying reader. Any inconsistency makes the whole buffer invalid (null), as
// flatbuffers::Verifier would; nothing here reads outside the buffer.

class Reader {
  constructor(
    public readonly ptr: usize,
    public readonly len: i32,
  ) {}

  ok(at: i64, size: i64): bool {
    return at >= 0 && size >= 0 && at + size <= <i64>this.len;
  }

  u16(at: i32): i32 {
    return <i32>load<u16>(this.ptr + at);
  }

  u32(at: i32): u32 {
    return load<u32>(this.ptr + at);
  }
}

class Table {
  constructor(
    public pos: i32,
    public vtable: i32,
    public vtableSize: i32,
    public objectSize: i32,
  ) {}
}

function readTable(r: Reader, pos: i64): Table | null {
  if (!r.ok(pos, 4) || pos % 4 != 0) return null;
  const p = <i32>pos;
  const vt = <i64>p - <i64>load<i32>(r.ptr + p);
  if (!r.ok(vt, 4) || vt % 2 != 0) return null;
  const v = <i32>vt;
  const vsize = r.u16(v);
  const osize = r.u16(v + 2);
  if (vsize < 4 || vsize % 2 != 0 || !r.ok(v, vsize) || osize < 4 || !r.ok(p, osize)) return null;
  return new Table(p, v, vsize, osize);
}

/** The absolute position of a field, 0 when absent, -1 when the vtable entry is invalid. */
function fieldPos(r: Reader, t: Table, slot: i32, size: i32): i32 {
  const voff = 4 + 2 * slot;
  if (voff + 2 > t.vtableSize) return 0;
  const off = r.u16(t.vtable + voff);
  if (off == 0) return 0;
  if (off + size > t.objectSize) return -1;
  return t.pos + off;
}

/** Follows a uoffset field to its target, -1 when it points outside the buffer. */
function deref(r: Reader, at: i32): i64 {
  if (!r.ok(at, 4) || at % 4 != 0) return -1;
  const target = <i64>at + <i64>r.u32(at);
  return r.ok(target, 4) ? target : -1;
}

class StringResult {
  constructor(
    public ok: bool,
    public value: string | null,
  ) {}
}

function readString(r: Reader, at: i32): StringResult {
  if (at == 0) return new StringResult(true, null);
  if (at < 0) return new StringResult(false, null);
  const s = deref(r, at);
  if (s < 0 || s % 4 != 0) return new StringResult(false, null);
  const n = <i64>r.u32(<i32>s);
  if (!r.ok(s + 4, n + 1) || load<u8>(r.ptr + <usize>(s + 4 + n)) != 0) return new StringResult(false, null);
  return new StringResult(true, String.UTF8.decodeUnsafe(r.ptr + <usize>(s + 4), <usize>n));
}

/** Position and length of a vector of offsets, or null when absent; `failed` is set when invalid. */
class VectorRef {
  constructor(
    public start: i32,
    public count: i32,
  ) {}
}

function readVector(r: Reader, at: i32, state: ReadState): VectorRef | null {
  if (at == 0) return null;
  if (at < 0) {
    state.failed = true;
    return null;
  }
  const v = deref(r, at);
  if (v < 0 || v % 4 != 0) {
    state.failed = true;
    return null;
  }
  const count = <i64>r.u32(<i32>v);
  if (!r.ok(v + 4, count * 4)) {
    state.failed = true;
    return null;
  }
  return new VectorRef(<i32>v + 4, <i32>count);
}

class ReadState {
  failed: bool = false;
}

function readStrings(r: Reader, at: i32, state: ReadState): string[] | null {
  const vec = readVector(r, at, state);
  if (vec === null) return null;
  const out = new Array<string>(0);
  for (let i = 0; i < vec.count; i++) {
    const s = readString(r, vec.start + 4 * i);
    if (!s.ok || s.value === null) {
      state.failed = true;
      return null;
    }
    out.push(changetype<string>(s.value));
  }
  return out;
}

function readKeyVals(r: Reader, at: i32, state: ReadState): KeyVal[] | null {
  const vec = readVector(r, at, state);
  if (vec === null) return null;
  const out = new Array<KeyVal>(0);
  for (let i = 0; i < vec.count; i++) {
    const t = readTable(r, deref(r, vec.start + 4 * i));
    if (t === null) {
      state.failed = true;
      return null;
    }
    const k = readString(r, fieldPos(r, t, 0, 4));
    const v = readString(r, fieldPos(r, t, 1, 4));
    if (!k.ok || !v.ok || k.value === null) {
      state.failed = true;
      return null;
    }
    out.push(new KeyVal(changetype<string>(k.value), v.value === null ? '' : changetype<string>(v.value)));
  }
  return out;
}

/** Reads a FlatNode buffer; null when it is not a valid one. */
export function decodeFlatNode(ptr: usize, len: i32): NodeInfo | null {
  const r = new Reader(ptr, len);
  if (len < 8) return null;
  const t = readTable(r, <i64>r.u32(0));
  if (t === null) return null;
  const n = new NodeInfo();
  const state = new ReadState();
  const strings = [Slot.Name, Slot.Namespace, Slot.Owner, Slot.WorkloadName, Slot.IstioVersion, Slot.MeshId, Slot.ClusterId];
  for (let i = 0; i < strings.length; i++) {
    const slot = strings[i];
    const s = readString(r, fieldPos(r, t, slot, 4));
    if (!s.ok) return null;
    const v = s.value;
    if (slot == Slot.Name) n.name = v;
    else if (slot == Slot.Namespace) n.namespace_ = v;
    else if (slot == Slot.Owner) n.owner = v;
    else if (slot == Slot.WorkloadName) n.workloadName = v;
    else if (slot == Slot.IstioVersion) n.istioVersion = v;
    else if (slot == Slot.MeshId) n.meshId = v;
    else n.clusterId = v;
  }
  n.labels = readKeyVals(r, fieldPos(r, t, Slot.Labels, 4), state);
  n.platformMetadata = readKeyVals(r, fieldPos(r, t, Slot.PlatformMetadata, 4), state);
  n.appContainers = readStrings(r, fieldPos(r, t, Slot.AppContainers, 4), state);
  n.instanceIps = readStrings(r, fieldPos(r, t, Slot.InstanceIps, 4), state);
  if (state.failed) return null;
  return n;
}

export function decodeFlatNodeBuffer(b: ArrayBuffer): NodeInfo | null {
  return decodeFlatNode(changetype<usize>(b), b.byteLength);
}
