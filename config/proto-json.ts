// A schema-driven reader and writer for the proto-JSON form of the few Istio messages the agent
// reads (ProxyConfig and friends). Istio parses these with protojson: camelCase or original
// names, enums by name or number, durations as "1.5s", wrappers as bare values, unknown fields
// dropped (its lenient second pass). Writing produces protojson's canonical output, which is
// what lands in node metadata PROXY_CONFIG and what istiod sees.
import { AgentError } from '../lib/errors.js';

export type FieldKind =
  | { t: 'string' }
  | { t: 'bool' }
  | { t: 'int32' }
  | { t: 'uint32' }
  | { t: 'int64' }
  | { t: 'double' }
  | { t: 'duration' }
  | { t: 'enum'; values: readonly string[]; numbers?: Readonly<Record<string, number>> }
  | { t: 'wrapper'; of: 'int32' | 'uint32' | 'int64' | 'bool' | 'double' | 'string' }
  | { t: 'map'; of: 'string' }
  | { t: 'repeated'; of: FieldKind }
  | { t: 'message'; schema: MessageSchema }
  /** A message we carry verbatim (we never read inside it). */
  | { t: 'opaque' };

export interface FieldSpec {
  kind: FieldKind;
  /** proto field name (snake_case); the JSON name is derived */
  proto: string;
  /** oneof group name; setting one member clears the others */
  oneof?: string;
}

export type MessageSchema = Readonly<Record<string, FieldSpec>>; // keyed by JSON (camelCase) name

export type ProtoJson = { [k: string]: unknown };

export class ProtoJsonError extends AgentError {
  static override readonly code: string = 'CONFIG_PROTO_JSON';
}

export const s = (proto: string, oneof?: string): FieldSpec => ({ kind: { t: 'string' }, proto, ...(oneof ? { oneof } : {}) });
export const f = (kind: FieldKind, proto: string, oneof?: string): FieldSpec => ({ kind, proto, ...(oneof ? { oneof } : {}) });

const camelToSnake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function lookupField(schema: MessageSchema, key: string): [string, FieldSpec] | undefined {
  const direct = schema[key];
  if (direct) return [key, direct];
  for (const [json, spec] of Object.entries(schema)) {
    if (spec.proto === key || camelToSnake(json) === key) return [json, spec];
  }
  return undefined;
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

const DURATION_RE = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;

/** Parses protojson's Duration string form to milliseconds. */
export function parseProtoDuration(v: string): number | undefined {
  const m = DURATION_RE.exec(v);
  if (!m) return undefined;
  const secs = Number(m[2]);
  const nanos = Number((m[3] ?? '').padEnd(9, '0'));
  if (secs > 315576000000) return undefined;
  const ms = secs * 1000 + nanos / 1e6;
  return m[1] ? -ms : ms;
}

/** Formats milliseconds the way protojson does: 0, 3, 6 or 9 fractional digits. */
export function formatProtoDuration(ms: number): string {
  const neg = ms < 0;
  const totalNanos = Math.round(Math.abs(ms) * 1e6);
  const secs = Math.floor(totalNanos / 1e9);
  const nanos = totalNanos - secs * 1e9;
  let frac = '';
  if (nanos !== 0) {
    const nine = String(nanos).padStart(9, '0');
    frac = nine.endsWith('000000') ? `.${nine.slice(0, 3)}` : nine.endsWith('000') ? `.${nine.slice(0, 6)}` : `.${nine}`;
  }
  return `${neg ? '-' : ''}${secs}${frac}s`;
}

function parseInteger(v: unknown, bits: 'int32' | 'uint32' | 'int64', path: string): number | string {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && /^-?\d+(\.0*)?$/.test(v.trim()) && v.trim() === v) n = Number(v);
  else throw new ProtoJsonError(`${path}: invalid value ${JSON.stringify(v)} for ${bits} field`);
  if (!Number.isInteger(n)) throw new ProtoJsonError(`${path}: invalid value ${JSON.stringify(v)} for ${bits} field (not an integer)`);
  const [lo, hi] = bits === 'int32' ? [-2147483648, 2147483647] : bits === 'uint32' ? [0, 4294967295] : [-(2 ** 63), 2 ** 63]; /* ±(2^63 - 1) rounds to ±2^63 in a double */
  if (n < lo || n > hi) throw new ProtoJsonError(`${path}: value ${JSON.stringify(v)} out of range for ${bits} field`);
  // int64 is a string in protojson output.
  return bits === 'int64' ? String(n) : n;
}

function parseScalar(kind: FieldKind, v: unknown, path: string): unknown {
  switch (kind.t) {
    case 'string':
      if (typeof v !== 'string') throw new ProtoJsonError(`${path}: invalid value ${JSON.stringify(v)} for string field (got ${typeName(v)})`);
      return v;
    case 'bool':
      if (typeof v !== 'boolean') throw new ProtoJsonError(`${path}: invalid value ${JSON.stringify(v)} for bool field`);
      return v;
    case 'int32':
    case 'uint32':
    case 'int64':
      return parseInteger(v, kind.t, path);
    case 'double':
      if (typeof v === 'number') return v;
      if (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v))) return Number(v);
      throw new ProtoJsonError(`${path}: invalid value ${JSON.stringify(v)} for double field`);
    case 'duration': {
      if (typeof v !== 'string') throw new ProtoJsonError(`${path}: invalid value ${JSON.stringify(v)} for Duration field (want a string such as "45s")`);
      const ms = parseProtoDuration(v);
      if (ms === undefined) throw new ProtoJsonError(`${path}: invalid Duration ${JSON.stringify(v)} (want seconds with an "s" suffix, such as "45s" or "1.5s")`);
      return ms;
    }
    case 'enum': {
      if (typeof v === 'string' && kind.values.includes(v)) return v;
      if (typeof v === 'number') {
        const byNumber = Object.entries(kind.numbers ?? {}).find(([, n]) => n === v)?.[0] ?? (kind.numbers ? undefined : kind.values[v]);
        if (byNumber !== undefined) return byNumber;
      }
      throw new ProtoJsonError(`${path}: invalid enum value ${JSON.stringify(v)} (want one of ${kind.values.join(', ')})`);
    }
    case 'wrapper':
      return parseScalar({ t: kind.of }, v, path);
    default:
      throw new ProtoJsonError(`${path}: unsupported scalar`);
  }
}

/**
 * Parses a proto-JSON object against `schema`. Values are validated and normalised (durations
 * become milliseconds, enums names, keys camelCase); unknown keys are dropped and reported
 * through `unknown` (Istio's lenient pass drops them silently).
 */
export function parseMessage(schema: MessageSchema, input: unknown, path: string, unknown: string[] = []): ProtoJson {
  if (input === null || input === undefined) return {};
  if (typeof input !== 'object' || Array.isArray(input)) {
    throw new ProtoJsonError(`${path}: expected an object, got ${typeName(input)}`);
  }
  const out: ProtoJson = {};
  for (const [key, value] of Object.entries(input as Record<string, unknown>)) {
    const hit = lookupField(schema, key);
    if (!hit) {
      unknown.push(`${path}.${key}`);
      continue;
    }
    const [json, spec] = hit;
    const p = `${path}.${json}`;
    if (value === null) continue; // null means "unset" in protojson
    if (spec.oneof) {
      for (const [other, os] of Object.entries(schema)) if (other !== json && os.oneof === spec.oneof) delete out[other];
    }
    out[json] = parseValue(spec.kind, value, p, unknown);
  }
  return out;
}

function parseValue(kind: FieldKind, value: unknown, p: string, unknown: string[]): unknown {
  switch (kind.t) {
    case 'message':
      return parseMessage(kind.schema, value, p, unknown);
    case 'opaque':
      if (typeof value !== 'object' || Array.isArray(value)) throw new ProtoJsonError(`${p}: expected an object, got ${typeName(value)}`);
      return value;
    case 'map': {
      if (typeof value !== 'object' || Array.isArray(value)) throw new ProtoJsonError(`${p}: expected an object (map), got ${typeName(value)}`);
      const m: Record<string, string> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new ProtoJsonError(`${p}.${k}: invalid value ${JSON.stringify(v)} for string map entry`);
        m[k] = v;
      }
      return m;
    }
    case 'repeated': {
      if (!Array.isArray(value)) throw new ProtoJsonError(`${p}: expected a list, got ${typeName(value)}`);
      return value.map((item, i) => parseValue(kind.of, item, `${p}[${i}]`, unknown));
    }
    default:
      return parseScalar(kind, value, p);
  }
}

/** Canonical protojson output for a parsed message (defaults omitted except presence fields). */
export function toProtoJson(schema: MessageSchema, msg: ProtoJson): ProtoJson {
  const out: ProtoJson = {};
  for (const [json, spec] of Object.entries(schema)) {
    if (!(json in msg)) continue;
    const v = writeValue(spec.kind, msg[json], spec.oneof !== undefined);
    if (v !== undefined) out[json] = v;
  }
  return out;
}

function writeValue(kind: FieldKind, v: unknown, presence: boolean): unknown {
  switch (kind.t) {
    case 'message':
      return toProtoJson(kind.schema, v as ProtoJson);
    case 'opaque':
      return v;
    case 'map':
      return Object.keys(v as object).length ? v : undefined;
    case 'repeated': {
      const list = v as unknown[];
      return list.length ? list.map((item) => writeValue(kind.of, item, true)) : undefined;
    }
    case 'duration':
      return formatProtoDuration(v as number);
    case 'wrapper':
      return v; // wrappers have presence: emitted even when zero/false
    case 'enum':
      // values[0] is always the enum's zero value, which protojson omits unless it has presence.
      return presence || v !== kind.values[0] ? v : undefined;
    default:
      return presence || (v !== '' && v !== 0 && v !== false && v !== '0') ? v : undefined;
  }
}
