// Byte-level helpers shared by the codecs (base64, protobuf, flatbuffers). Nothing here may
// trap on hostile input: every read is bounds-checked by its caller or here.

/** A growable little-endian byte buffer. */
export class ByteWriter {
  private buf: Uint8Array;
  length: i32 = 0;

  constructor(capacity: i32 = 64) {
    this.buf = new Uint8Array(capacity < 16 ? 16 : capacity);
  }

  private ensure(extra: i32): void {
    const need = this.length + extra;
    if (need <= this.buf.length) return;
    let cap = this.buf.length << 1;
    while (cap < need) cap <<= 1;
    const next = new Uint8Array(cap);
    memory.copy(next.dataStart, this.buf.dataStart, this.length);
    this.buf = next;
  }

  u8(v: u32): void {
    this.ensure(1);
    store<u8>(this.buf.dataStart + this.length, <u8>v);
    this.length += 1;
  }

  u16(v: u32): void {
    this.ensure(2);
    store<u16>(this.buf.dataStart + this.length, <u16>v);
    this.length += 2;
  }

  u32(v: u32): void {
    this.ensure(4);
    store<u32>(this.buf.dataStart + this.length, v);
    this.length += 4;
  }

  i64(v: i64): void {
    this.ensure(8);
    store<i64>(this.buf.dataStart + this.length, v);
    this.length += 8;
  }

  varint(v: u64): void {
    while (v >= 0x80) {
      this.u8((<u32>(v & 0x7f)) | 0x80);
      v >>= 7;
    }
    this.u8(<u32>v);
  }

  raw(ptr: usize, size: i32): void {
    if (size <= 0) return;
    this.ensure(size);
    memory.copy(this.buf.dataStart + this.length, ptr, size);
    this.length += size;
  }

  bytes(b: ArrayBuffer): void {
    this.raw(changetype<usize>(b), b.byteLength);
  }

  /** Pads with zero bytes up to a multiple of `align`. */
  align(align: i32): void {
    while (this.length % align != 0) this.u8(0);
  }

  /** Overwrites a u32 already written at `at`. */
  patchU32(at: i32, v: u32): void {
    store<u32>(this.buf.dataStart + at, v);
  }

  patchU16(at: i32, v: u32): void {
    store<u16>(this.buf.dataStart + at, <u16>v);
  }

  toArrayBuffer(): ArrayBuffer {
    const out = new ArrayBuffer(this.length);
    memory.copy(changetype<usize>(out), this.buf.dataStart, this.length);
    return out;
  }
}

export function utf8(s: string): ArrayBuffer {
  return String.UTF8.encode(s);
}

/**
 * A string whose UTF-16 code units are the bytes, one per unit: a lossless map key for byte
 * strings that need not be UTF-8 (a peer id header).
 */
export function bytesKey(b: ArrayBuffer): string {
  const n = b.byteLength;
  const s = changetype<string>(__new(n << 1, idof<string>()));
  const src = changetype<usize>(b);
  const dst = changetype<usize>(s);
  for (let i = 0; i < n; i++) store<u16>(dst + ((<usize>i) << 1), load<u8>(src + i));
  return s;
}

/** Whether `len` bytes at `ptr` are well-formed UTF-8 (what proto3 requires of string fields). */
export function isValidUtf8(ptr: usize, len: i32): bool {
  let i = 0;
  while (i < len) {
    const c = <u32>load<u8>(ptr + i);
    if (c < 0x80) {
      i++;
      continue;
    }
    let need = 0;
    let min: u32 = 0;
    let cp: u32 = 0;
    if ((c & 0xe0) == 0xc0) {
      need = 1;
      min = 0x80;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      need = 2;
      min = 0x800;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      need = 3;
      min = 0x10000;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + need >= len) return false;
    for (let k = 1; k <= need; k++) {
      const cc = <u32>load<u8>(ptr + i + k);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += need + 1;
  }
  return true;
}

/** Orders strings by their UTF-8 bytes (= by code point), as flatbuffers' sorted vectors and protobuf's deterministic maps do. */
export function compareCodePoints(a: string, b: string): i32 {
  const ea = String.UTF8.encode(a);
  const eb = String.UTF8.encode(b);
  const n = ea.byteLength < eb.byteLength ? ea.byteLength : eb.byteLength;
  const pa = changetype<usize>(ea);
  const pb = changetype<usize>(eb);
  for (let i = 0; i < n; i++) {
    const x = <i32>load<u8>(pa + i);
    const y = <i32>load<u8>(pb + i);
    if (x != y) return x - y;
  }
  return ea.byteLength - eb.byteLength;
}

/** Splits on a single character, keeping empty parts (absl::StrSplit semantics). */
export function splitOn(s: string, sep: string): string[] {
  return s.split(sep);
}
