// The slice of protobuf the filters need: a bounds-checked reader (for google.protobuf.Struct
// from the `x-envoy-peer-metadata` header, which is attacker-controlled on inbound listeners)
// and a writer. Parsing follows the C++ runtime's rules as far as they decide acceptance:
// unknown fields are skipped, a known field with another wire type is treated as unknown,
// proto3 strings must be valid UTF-8, nesting deeper than 100 messages fails (the default
// recursion limit), and the last value of a oneof or of a repeated map key wins.
import { ByteWriter, compareCodePoints, isValidUtf8 } from './bytes';

const RECURSION_LIMIT = 100;

export class ProtoReader {
  pos: i32;
  failed: bool = false;

  constructor(
    public readonly ptr: usize,
    public readonly end: i32,
    start: i32 = 0,
  ) {
    this.pos = start;
  }

  get done(): bool {
    return this.pos >= this.end || this.failed;
  }

  fail(): u64 {
    this.failed = true;
    return 0;
  }

  varint(): u64 {
    let result: u64 = 0;
    for (let shift: u64 = 0; shift < 70; shift += 7) {
      if (this.pos >= this.end) return this.fail();
      const b = <u64>load<u8>(this.ptr + this.pos);
      this.pos++;
      if (shift == 63 && b > 1) return this.fail();
      result |= (b & 0x7f) << shift;
      if ((b & 0x80) == 0) return result;
    }
    return this.fail();
  }

  /** Reads a length prefix and returns the start of the payload, or -1 (and fails) if it overruns. */
  lengthDelimited(): i32 {
    const len = this.varint();
    if (this.failed) return -1;
    if (len > <u64>(this.end - this.pos)) {
      this.fail();
      return -1;
    }
    const start = this.pos;
    this.pos += <i32>len;
    return start;
  }

  skip(wireType: u32, fieldNumber: u32, depth: i32): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        if (this.end - this.pos < 8) this.fail();
        else this.pos += 8;
        return;
      case 2:
        this.lengthDelimited();
        return;
      case 3: {
        // A group: skip fields until the matching end-group tag.
        if (depth >= RECURSION_LIMIT) {
          this.fail();
          return;
        }
        while (!this.failed) {
          if (this.pos >= this.end) {
            this.fail();
            return;
          }
          const tag = this.varint();
          if (this.failed) return;
          const wt = <u32>(tag & 7);
          const fn = <u32>(tag >> 3);
          if (fn == 0) {
            this.fail();
            return;
          }
          if (wt == 4) {
            if (fn != fieldNumber) this.fail();
            return;
          }
          this.skip(wt, fn, depth + 1);
        }
        return;
      }
      case 5:
        if (this.end - this.pos < 4) this.fail();
        else this.pos += 4;
        return;
      default:
        this.fail();
    }
  }
}

/** google.protobuf.Value, reduced to the kinds node metadata uses; other kinds are validated and kept as KIND_OTHER. */
export namespace ValueKind {
  export const NotSet: i32 = 0;
  export const Other: i32 = 1;
  export const String: i32 = 3;
  export const Struct: i32 = 5;
}

export class PbValue {
  kind: i32 = ValueKind.NotSet;
  str: string = '';
  struct: PbStruct | null = null;

  static ofString(s: string): PbValue {
    const v = new PbValue();
    v.kind = ValueKind.String;
    v.str = s;
    return v;
  }

  static ofStruct(s: PbStruct): PbValue {
    const v = new PbValue();
    v.kind = ValueKind.Struct;
    v.struct = s;
    return v;
  }

  /** `string_value()` of the C++ API: "" unless the kind is string. */
  stringValue(): string {
    return this.kind == ValueKind.String ? this.str : '';
  }

  /** `struct_value()`: an empty struct unless the kind is struct. */
  structValue(): PbStruct {
    const s = this.struct;
    return this.kind == ValueKind.Struct && s !== null ? s : new PbStruct();
  }
}

export class PbStruct {
  readonly fields: Map<string, PbValue> = new Map<string, PbValue>();

  set(key: string, value: PbValue): void {
    this.fields.set(key, value);
  }

  sortedKeys(): string[] {
    const keys = this.fields.keys();
    keys.sort(compareCodePoints);
    return keys;
  }
}

function readUtf8(r: ProtoReader): string | null {
  const start = r.lengthDelimited();
  if (start < 0) return null;
  const len = r.pos - start;
  if (!isValidUtf8(r.ptr + start, len)) {
    r.fail();
    return null;
  }
  return String.UTF8.decodeUnsafe(r.ptr + start, len);
}

function parseStructAt(r: ProtoReader, end: i32, depth: i32): PbStruct | null {
  if (depth > RECURSION_LIMIT) return null;
  const out = new PbStruct();
  const sub = new ProtoReader(r.ptr, end, r.pos);
  while (!sub.done) {
    const tag = sub.varint();
    if (sub.failed) break;
    const fn = <u32>(tag >> 3);
    const wt = <u32>(tag & 7);
    if (fn == 0) {
      sub.fail();
      break;
    }
    if (fn == 1 && wt == 2) {
      const start = sub.lengthDelimited();
      if (start < 0) break;
      if (!parseEntry(sub.ptr, start, sub.pos, depth + 1, out)) {
        sub.fail();
        break;
      }
    } else {
      sub.skip(wt, fn, depth);
    }
  }
  if (sub.failed) return null;
  r.pos = end;
  return out;
}

/** One `map<string, Value>` entry: key = 1, value = 2. */
function parseEntry(ptr: usize, start: i32, end: i32, depth: i32, into: PbStruct): bool {
  if (depth > RECURSION_LIMIT) return false;
  const r = new ProtoReader(ptr, end, start);
  let key = '';
  let value = new PbValue();
  while (!r.done) {
    const tag = r.varint();
    if (r.failed) break;
    const fn = <u32>(tag >> 3);
    const wt = <u32>(tag & 7);
    if (fn == 0) return false;
    if (fn == 1 && wt == 2) {
      const k = readUtf8(r);
      if (k === null) return false;
      key = k;
    } else if (fn == 2 && wt == 2) {
      const vs = r.lengthDelimited();
      if (vs < 0) return false;
      const v = parseValue(ptr, vs, r.pos, depth + 1);
      if (v === null) return false;
      value = v;
    } else {
      r.skip(wt, fn, depth);
    }
  }
  if (r.failed) return false;
  into.set(key, value);
  return true;
}

function parseValue(ptr: usize, start: i32, end: i32, depth: i32): PbValue | null {
  if (depth > RECURSION_LIMIT) return null;
  const r = new ProtoReader(ptr, end, start);
  const v = new PbValue();
  while (!r.done) {
    const tag = r.varint();
    if (r.failed) break;
    const fn = <u32>(tag >> 3);
    const wt = <u32>(tag & 7);
    if (fn == 0) return null;
    if ((fn == 1 || fn == 4) && wt == 0) {
      r.varint(); // null_value / bool_value
      v.kind = ValueKind.Other;
      v.struct = null;
    } else if (fn == 2 && wt == 1) {
      r.skip(1, fn, depth); // number_value
      v.kind = ValueKind.Other;
      v.struct = null;
    } else if (fn == 3 && wt == 2) {
      const s = readUtf8(r);
      if (s === null) return null;
      v.kind = ValueKind.String;
      v.str = s;
      v.struct = null;
    } else if (fn == 5 && wt == 2) {
      const ss = r.lengthDelimited();
      if (ss < 0) return null;
      const inner = new ProtoReader(ptr, r.pos, ss);
      const s = parseStructAt(inner, r.pos, depth + 1);
      if (s === null) return null;
      v.kind = ValueKind.Struct;
      v.struct = s;
    } else if (fn == 6 && wt == 2) {
      const ls = r.lengthDelimited();
      if (ls < 0) return null;
      if (!validateList(ptr, ls, r.pos, depth + 1)) return null;
      v.kind = ValueKind.Other;
      v.struct = null;
    } else {
      r.skip(wt, fn, depth);
    }
  }
  if (r.failed) return null;
  return v;
}

/** google.protobuf.ListValue: repeated Value values = 1. Kept only as "other", but validated. */
function validateList(ptr: usize, start: i32, end: i32, depth: i32): bool {
  if (depth > RECURSION_LIMIT) return false;
  const r = new ProtoReader(ptr, end, start);
  while (!r.done) {
    const tag = r.varint();
    if (r.failed) break;
    const fn = <u32>(tag >> 3);
    const wt = <u32>(tag & 7);
    if (fn == 0) return false;
    if (fn == 1 && wt == 2) {
      const vs = r.lengthDelimited();
      if (vs < 0) return false;
      if (parseValue(ptr, vs, r.pos, depth + 1) === null) return false;
    } else {
      r.skip(wt, fn, depth);
    }
  }
  return !r.failed;
}

/** Parses a serialized google.protobuf.Struct; null if it is not one (`ParseFromString` false). */
export function parseStruct(ptr: usize, len: i32): PbStruct | null {
  const r = new ProtoReader(ptr, len, 0);
  return parseStructAt(r, len, 0);
}

function writeString(w: ByteWriter, tag: u32, s: string): void {
  const b = String.UTF8.encode(s);
  w.u8(tag);
  w.varint(<u64>b.byteLength);
  w.bytes(b);
}

function writeMessage(w: ByteWriter, tag: u32, body: ByteWriter): void {
  w.u8(tag);
  w.varint(<u64>body.length);
  w.bytes(body.toArrayBuffer());
}

function encodeValue(v: PbValue): ByteWriter {
  const w = new ByteWriter(16);
  if (v.kind == ValueKind.String) {
    writeString(w, 0x1a, v.str);
  } else if (v.kind == ValueKind.Struct) {
    writeMessage(w, 0x2a, encodeStructBody(v.structValue()));
  }
  return w;
}

function encodeStructBody(s: PbStruct): ByteWriter {
  const w = new ByteWriter(64);
  const keys = s.sortedKeys();
  for (let i = 0; i < keys.length; i++) {
    const entry = new ByteWriter(32);
    writeString(entry, 0x0a, keys[i]);
    writeMessage(entry, 0x12, encodeValue(s.fields.get(keys[i])));
    writeMessage(w, 0x0a, entry);
  }
  return w;
}

/**
 * Serializes a Struct deterministically (map keys sorted bytewise at every level), as
 * istio/proxy extensions/common/proto_util.cc serializeToStringDeterministic does. Only string
 * and struct values are written: those are the only kinds a node's exchanged metadata holds.
 */
export function encodeStruct(s: PbStruct): ArrayBuffer {
  return encodeStructBody(s).toArrayBuffer();
}
