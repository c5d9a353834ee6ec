// Envoy attributes as this host serves them through proxy_get_property and to CEL
// (envoyproxy/envoy source/extensions/filters/common/expr/context.h lists them): a tree of
// plain values, and their serialisation as Envoy's Wasm host does it
// (source/extensions/common/wasm/context.cc serializeValue): strings and bytes raw, integers as
// 8 little-endian bytes (durations and timestamps as int64 nanoseconds), doubles as 8 bytes,
// bools as one byte, maps and lists as pairs.
import { encodePairs } from './pairs.js';

/** An integer attribute that must serialise as 8 bytes (int64, uint64, duration ns, timestamp ns). */
export type PropertyValue = string | bigint | number | boolean | Uint8Array | PropertyValue[] | PropertyMap | undefined;
export interface PropertyMap {
  [key: string]: PropertyValue;
}

export function isPropertyMap(v: PropertyValue): v is PropertyMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

export function serializeProperty(v: PropertyValue): Uint8Array {
  if (v === undefined) return new Uint8Array(0);
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'boolean') return Uint8Array.of(v ? 1 : 0);
  if (typeof v === 'bigint') {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, v));
    return b;
  }
  if (typeof v === 'number') {
    const b = Buffer.alloc(8);
    if (Number.isInteger(v)) b.writeBigInt64LE(BigInt(v));
    else b.writeDoubleLE(v);
    return b;
  }
  if (Array.isArray(v)) return encodePairs(v.map((e) => [serializeProperty(e), '']));
  return encodePairs(
    Object.entries(v)
      .filter(([, e]) => e !== undefined)
      .map(([k, e]) => [k, serializeProperty(e)]),
  );
}

/** Walks `segments` down a value: map keys, list indexes (decimal). Undefined when absent. */
export function navigate(v: PropertyValue, segments: string[]): PropertyValue {
  let cur = v;
  for (const s of segments) {
    if (Array.isArray(cur)) {
      if (!/^(0|[1-9][0-9]*)$/.test(s)) return undefined;
      cur = cur[Number(s)];
    } else if (isPropertyMap(cur)) {
      cur = Object.hasOwn(cur, s) ? cur[s] : undefined;
    } else {
      return undefined;
    }
    if (cur === undefined) return undefined;
  }
  return cur;
}

/**
 * Splits a proxy_get_property path: segments separated by NUL, as the C++ SDK writes them
 * (every segment followed by NUL, so a single trailing NUL ends the path). Null for an empty
 * path or an empty segment inside it.
 */
const pathCache = new Map<string, string[] | null>();

export function splitPropertyPath(path: Uint8Array): string[] | null {
  const key = Buffer.from(path.buffer, path.byteOffset, path.byteLength).toString('latin1');
  let parts = pathCache.get(key);
  if (parts === undefined) {
    parts = splitUncached(path);
    if (pathCache.size < 10000) pathCache.set(key, parts);
  }
  return parts;
}

function splitUncached(path: Uint8Array): string[] | null {
  let p = Buffer.from(path.buffer, path.byteOffset, path.byteLength);
  if (p.length > 0 && p[p.length - 1] === 0) p = p.subarray(0, p.length - 1);
  if (p.length === 0) return null;
  const parts = p.toString('utf8').split('\0');
  return parts.some((s) => s.length === 0) ? null : parts;
}
