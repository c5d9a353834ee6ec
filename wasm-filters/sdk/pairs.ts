// The proxy-wasm pairs encoding, used by Envoy for header maps and for map-typed properties
// such as `node.metadata.LABELS`: u32 count, count x (u32 key size, u32 value size), then each
// key and value followed by a NUL byte (proxy-wasm-cpp-host src/pairs_util.cc).

export class Pair {
  constructor(
    public key: string,
    public value: string,
  ) {}
}

/** Decodes a pairs blob; null when it is malformed. An empty blob is an empty map. */
export function decodePairs(data: ArrayBuffer): Pair[] | null {
  const out = new Array<Pair>(0);
  const len = <u64>data.byteLength;
  if (len == 0) return out;
  const p = changetype<usize>(data);
  if (len < 4) return len == 1 && load<u8>(p) == 0 ? out : null;
  const count = <u64>load<u32>(p);
  let sizes: u64 = 4;
  if (sizes + count * 8 > len) return null;
  let at = sizes + count * 8;
  for (let i: u64 = 0; i < count; i++) {
    const ks = <u64>load<u32>(p + <usize>(4 + i * 8));
    const vs = <u64>load<u32>(p + <usize>(8 + i * 8));
    if (at + ks + 1 + vs + 1 > len) return null;
    const key = String.UTF8.decodeUnsafe(p + <usize>at, <usize>ks);
    at += ks + 1;
    const value = String.UTF8.decodeUnsafe(p + <usize>at, <usize>vs);
    at += vs + 1;
    out.push(new Pair(key, value));
  }
  return out;
}
