// Base64 (standard alphabet) as Envoy's common/common/base64.cc does it for the peer metadata
// header: `encode` pads with '='; `decodeWithoutPadding` accepts padded and unpadded input and
// returns an empty result for anything malformed (a bad character, a length of 4n+1, or
// non-zero bits left over in the last character), never an error.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export function base64Encode(data: ArrayBuffer): ArrayBuffer {
  const n = data.byteLength;
  const out = new ArrayBuffer(((n + 2) / 3) * 4);
  const src = changetype<usize>(data);
  const dst = changetype<usize>(out);
  const alpha = changetype<usize>(ALPHABET);
  let o: usize = 0;
  let i = 0;
  for (; i + 2 < n; i += 3) {
    const v = ((<u32>load<u8>(src + i)) << 16) | ((<u32>load<u8>(src + i + 1)) << 8) | (<u32>load<u8>(src + i + 2));
    store<u8>(dst + o, <u8>load<u16>(alpha + (((v >> 18) & 63) << 1)));
    store<u8>(dst + o + 1, <u8>load<u16>(alpha + (((v >> 12) & 63) << 1)));
    store<u8>(dst + o + 2, <u8>load<u16>(alpha + (((v >> 6) & 63) << 1)));
    store<u8>(dst + o + 3, <u8>load<u16>(alpha + ((v & 63) << 1)));
    o += 4;
  }
  const rest = n - i;
  if (rest > 0) {
    let v = (<u32>load<u8>(src + i)) << 16;
    if (rest == 2) v |= (<u32>load<u8>(src + i + 1)) << 8;
    store<u8>(dst + o, <u8>load<u16>(alpha + (((v >> 18) & 63) << 1)));
    store<u8>(dst + o + 1, <u8>load<u16>(alpha + (((v >> 12) & 63) << 1)));
    store<u8>(dst + o + 2, rest == 2 ? <u8>load<u16>(alpha + (((v >> 6) & 63) << 1)) : 0x3d);
    store<u8>(dst + o + 3, 0x3d);
  }
  return out;
}

function decodeChar(c: u32): i32 {
  if (c >= 0x41 && c <= 0x5a) return <i32>(c - 0x41);
  if (c >= 0x61 && c <= 0x7a) return <i32>(c - 0x61 + 26);
  if (c >= 0x30 && c <= 0x39) return <i32>(c - 0x30 + 52);
  if (c == 0x2b) return 62;
  if (c == 0x2f) return 63;
  return -1;
}

/** Decodes `len` bytes at `ptr`; up to two trailing '=' are ignored. Empty result on any error. */
export function base64DecodeWithoutPadding(ptr: usize, len: i32): ArrayBuffer {
  let n = len;
  if (n > 0 && load<u8>(ptr + n - 1) == 0x3d) {
    n--;
    if (n > 0 && load<u8>(ptr + n - 1) == 0x3d) n--;
  }
  if (n == 0 || n % 4 == 1) return new ArrayBuffer(0);
  const outLen = (n / 4) * 3 + (n % 4 == 0 ? 0 : (n % 4) - 1);
  const out = new ArrayBuffer(outLen);
  const dst = changetype<usize>(out);
  let o: usize = 0;
  let acc: u32 = 0;
  let bits = 0;
  for (let i = 0; i < n; i++) {
    const d = decodeChar(<u32>load<u8>(ptr + i));
    if (d < 0) return new ArrayBuffer(0);
    acc = (acc << 6) | (<u32>d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      store<u8>(dst + o, <u8>((acc >> bits) & 0xff));
      o++;
    }
  }
  // Leftover bits of the last character must be zero, or the input was not canonical.
  if (bits > 0 && (acc & ((1 << bits) - 1)) != 0) return new ArrayBuffer(0);
  return out;
}
