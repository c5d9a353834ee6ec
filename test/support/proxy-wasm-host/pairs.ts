// The proxy-wasm pairs format (proxy-wasm-cpp-host src/pairs_util.cc): u32 count, then
// (u32 key size, u32 value size) per pair, then each key and value followed by a NUL byte.

export type Pairs = [string | Uint8Array, string | Uint8Array][];

function bytes(v: string | Uint8Array): Uint8Array {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}

export function encodePairs(pairs: Pairs): Uint8Array {
  const encoded = pairs.map(([k, v]) => [bytes(k), bytes(v)] as const);
  const size = 4 + encoded.length * 8 + encoded.reduce((n, [k, v]) => n + k.length + v.length + 2, 0);
  const out = Buffer.alloc(size);
  out.writeUInt32LE(encoded.length, 0);
  let at = 4;
  for (const [k, v] of encoded) {
    out.writeUInt32LE(k.length, at);
    out.writeUInt32LE(v.length, at + 4);
    at += 8;
  }
  for (const [k, v] of encoded) {
    out.set(k, at);
    at += k.length + 1;
    out.set(v, at);
    at += v.length + 1;
  }
  return out;
}

export function decodePairs(data: Uint8Array): [string, string][] {
  if (data.length === 0) return [];
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const count = b.readUInt32LE(0);
  const sizes: [number, number][] = [];
  for (let i = 0; i < count; i++) sizes.push([b.readUInt32LE(4 + 8 * i), b.readUInt32LE(8 + 8 * i)]);
  let at = 4 + 8 * count;
  const out: [string, string][] = [];
  for (const [ks, vs] of sizes) {
    const k = b.toString('utf8', at, at + ks);
    at += ks + 1;
    const v = b.toString('utf8', at, at + vs);
    at += vs + 1;
    out.push([k, v]);
  }
  if (at !== b.length) throw new Error(`pairs: ${b.length - at} trailing bytes`);
  return out;
}
