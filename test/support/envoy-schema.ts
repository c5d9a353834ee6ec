// Envoy's own schema, for tests: parse a JSON config strictly as an Envoy API message (unknown
// fields and bad enum names are errors, every `@type` must resolve) using the Envoy protos that
// ship in @grpc/grpc-js-xds (deps/), then check the protoc-gen-validate rules
// (`(validate.rules)`, `(validate.required)`) on every message reached — including the payloads
// of Any and TypedStruct, which Go's generated Validate() does not enter.
//
// The bundled Envoy API predates two things Istio's bootstrap uses, which are added here at load
// time (and only here — product code never loads protos):
// - Bootstrap.stats_eviction_interval (Envoy ≥ 1.35; a google.protobuf.Duration);
// - istio.workload.BootstrapExtension, the metadata-discovery extension that exists only in
//   Istio's Envoy build (istio/proxy), so its TypedStruct payload can be checked too.
//
// Usage: `const schema = loadEnvoySchema(); const errors = schema.validate(json);` — an empty list
// means Envoy would accept the config as far as its schema and PGV rules can tell.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { isAbsolute, join } from 'node:path';
import protobuf from 'protobufjs';
import { projectRoot } from './paths.js';

const require = createRequire(import.meta.url);
const protojson = require('protobufjs/ext/protojson.js') as {
  fromJson(type: protobuf.Type, json: unknown, options?: { ignoreUnknownFields?: boolean }): protobuf.Message;
  toJson(type: protobuf.Type, message: unknown): unknown;
};

const DEPS = join(projectRoot, 'node_modules/@grpc/grpc-js-xds/deps');
const INCLUDE_DIRS = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(DEPS, d));
const PROTOBUFJS_DIR = join(projectRoot, 'node_modules/protobufjs');

export const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';

/** The bootstrap plus every extension whose `@type` Istio's bootstrap can carry. */
export const BOOTSTRAP_PROTOS = [
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/config/metrics/v3/metrics_service.proto',
  'envoy/config/metrics/v3/stats.proto',
  'envoy/config/trace/v3/datadog.proto',
  'envoy/config/trace/v3/lightstep.proto',
  'envoy/config/trace/v3/zipkin.proto',
  'envoy/extensions/access_loggers/file/v3/file.proto',
  'envoy/extensions/compression/brotli/compressor/v3/brotli.proto',
  'envoy/extensions/compression/gzip/compressor/v3/gzip.proto',
  'envoy/extensions/compression/zstd/compressor/v3/zstd.proto',
  'envoy/extensions/filters/http/compressor/v3/compressor.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/listener/proxy_protocol/v3/proxy_protocol.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/resource_monitors/downstream_connections/v3/downstream_connections.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/bootstrap/internal_listener/v3/internal_listener.proto',
  'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
  'udpa/type/v1/typed_struct.proto',
  'xds/type/v3/typed_struct.proto',
];

export interface EnvoySchema {
  readonly root: protobuf.Root;
  /** Strict ProtoJSON parse; throws with protobufjs's message on the first problem. */
  parse(json: unknown, typeName?: string): protobuf.Message;
  /** Every schema and PGV problem found, each prefixed with its field path; [] when valid. */
  validate(json: unknown, typeName?: string): string[];
}

function newRoot(files: readonly string[]): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (isAbsolute(target)) return target;
    if (target.startsWith('google/protobuf/')) {
      // The well-known types are built into protobufjs; descriptor.proto ships beside them.
      const p = join(PROTOBUFJS_DIR, target);
      return existsSync(p) ? p : target;
    }
    for (const dir of INCLUDE_DIRS) {
      const p = join(dir, target);
      if (existsSync(p)) return p;
    }
    return target;
  };
  root.loadSync([...files]);
  return root;
}

/** A field as protoc would describe it: lowerCamel name, original snake_case name for ProtoJSON. */
function field(name: string, id: number, type: string, protoName: string): protobuf.Field {
  return protobuf.Field.fromJSON(name, { id, type, protoName } as protobuf.IField);
}

/** Adds what the bundled protos lack (see the header comment). */
function addMissing(root: protobuf.Root): void {
  const bootstrap = root.lookupType(BOOTSTRAP_TYPE);
  if (!bootstrap.fields.statsEvictionInterval) {
    // Field number: the next free one in the bundled copy. It does not matter for JSON.
    const next = Math.max(...bootstrap.fieldsArray.map((f) => f.id)) + 1;
    bootstrap.add(field('statsEvictionInterval', next, 'google.protobuf.Duration', 'stats_eviction_interval'));
  }
  if (!root.lookup('istio.workload.BootstrapExtension')) {
    const ns = root.define('istio.workload');
    ns.add(new protobuf.Type('BootstrapExtension').add(field('configSource', 1, 'envoy.config.core.v3.ConfigSource', 'config_source')));
  }
  root.resolveAll();
}

let cached: EnvoySchema | undefined;

/** Loads the protos once per process (~0.2 s) and returns the checker. */
export function loadEnvoySchema(extraProtos: readonly string[] = []): EnvoySchema {
  if (cached && extraProtos.length === 0) return cached;
  const root = newRoot([...BOOTSTRAP_PROTOS, ...extraProtos]);
  addMissing(root);
  const schema: EnvoySchema = {
    root,
    parse: (json, typeName = BOOTSTRAP_TYPE) => protojson.fromJson(root.lookupType(typeName), json),
    validate: (json, typeName = BOOTSTRAP_TYPE) => {
      const type = root.lookupType(typeName);
      let msg: protobuf.Message;
      try {
        msg = protojson.fromJson(type, json);
      } catch (err) {
        return [`schema: ${(err as Error).message}`];
      }
      const errors: string[] = [];
      new Validator(root, errors).message(type, msg as unknown as Msg, typeName.split('.').pop()!);
      return errors;
    },
  };
  if (extraProtos.length === 0) cached = schema;
  return schema;
}

// --- protoc-gen-validate ---------------------------------------------------------------------

type Msg = Record<string, unknown>;
type Rules = Record<string, unknown>;

const WRAPPERS: Record<string, string> = {
  'google.protobuf.DoubleValue': 'double',
  'google.protobuf.FloatValue': 'float',
  'google.protobuf.Int64Value': 'int64',
  'google.protobuf.UInt64Value': 'uint64',
  'google.protobuf.Int32Value': 'int32',
  'google.protobuf.UInt32Value': 'uint32',
  'google.protobuf.BoolValue': 'bool',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'bytes',
};

/** Deep-merges every `(validate.rules)` entry of a field's parsed options. */
function rulesOf(obj: protobuf.ReflectionObject, option = '(validate.rules)'): Rules | undefined {
  let out: Rules | undefined;
  for (const po of (obj as { parsedOptions?: Record<string, unknown>[] }).parsedOptions ?? []) {
    if (option in po) out = merge(out ?? {}, po[option] as Rules);
  }
  return out;
}

function merge(a: Rules, b: Rules): Rules {
  const out: Rules = { ...a };
  for (const [k, v] of Object.entries(b)) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object' ? merge(out[k] as Rules, v as Rules) : v;
  }
  return out;
}

function optionTrue(obj: protobuf.ReflectionObject, name: string): boolean {
  return obj.options?.[name] === true || (obj as { parsedOptions?: Record<string, unknown>[] }).parsedOptions?.some((p) => p[name] === true) === true;
}

function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return Number(v);
  if (v && typeof v === 'object' && 'low' in v) return Number(String(v)); // Long
  return NaN;
}

/** Duration/Timestamp (message or rule literal) → nanoseconds. */
function nanos(v: unknown): bigint {
  const o = (v ?? {}) as { seconds?: unknown; nanos?: unknown };
  return BigInt(Math.trunc(num(o.seconds ?? 0) || 0)) * 1_000_000_000n + BigInt(Math.trunc(num(o.nanos ?? 0) || 0));
}

const asList = (v: unknown): unknown[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

const HEADER_NAME = /^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$/;
// eslint-disable-next-line no-control-regex
const HEADER_VALUE = /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/;
// eslint-disable-next-line no-control-regex
const HEADER_LOOSE = /^[^\u0000\u000A\u000D]*$/;

function isHostname(s: string): boolean {
  const h = s.endsWith('.') ? s.slice(0, -1) : s;
  return h.length > 0 && h.length <= 253 && h.split('.').every((l) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(l));
}

/** A number comparison with PGV's range semantics (gt/lt may describe an exclusive outer range). */
function rangeErrors(v: number | bigint, r: Rules, show: (x: unknown) => string, toCmp: (x: unknown) => number | bigint): string[] {
  const errs: string[] = [];
  const has = (k: string) => r[k] !== undefined;
  const c = (k: string) => toCmp(r[k]);
  if (has('const') && v !== c('const')) errs.push(`must equal ${show(r.const)}`);
  const lower = has('gt') ? { v: c('gt'), incl: false } : has('gte') ? { v: c('gte'), incl: true } : undefined;
  const upper = has('lt') ? { v: c('lt'), incl: false } : has('lte') ? { v: c('lte'), incl: true } : undefined;
  const above = (b: { v: number | bigint; incl: boolean }) => (b.incl ? v >= b.v : v > b.v);
  const below = (b: { v: number | bigint; incl: boolean }) => (b.incl ? v <= b.v : v < b.v);
  if (lower && upper) {
    const ok = upper.v > lower.v ? above(lower) && below(upper) : above(lower) || below(upper);
    if (!ok) errs.push(`must be in range ${JSON.stringify(r)}`);
  } else if (lower && !above(lower)) errs.push(`must be ${lower.incl ? '>=' : '>'} ${String(lower.v)}`);
  else if (upper && !below(upper)) errs.push(`must be ${upper.incl ? '<=' : '<'} ${String(upper.v)}`);
  if (has('in') && !asList(r.in).some((x) => toCmp(x) === v)) errs.push(`must be one of ${JSON.stringify(r.in)}`);
  if (has('not_in') && asList(r.not_in).some((x) => toCmp(x) === v)) errs.push(`must not be one of ${JSON.stringify(r.not_in)}`);
  return errs;
}

class Validator {
  constructor(
    private readonly root: protobuf.Root,
    private readonly errors: string[],
  ) {}

  private fail(path: string, what: string): void {
    this.errors.push(`${path}: ${what}`);
  }

  message(type: protobuf.Type, msg: Msg, path: string): void {
    if (optionTrue(type, '(validate.disabled)') || optionTrue(type, '(validate.ignored)')) return;
    if (type.fullName === '.google.protobuf.Any') return this.any(msg, path);
    if (type.fullName === '.udpa.type.v1.TypedStruct' || type.fullName === '.xds.type.v3.TypedStruct') this.typedStruct(type, msg, path);
    for (const oneof of type.oneofsArray) {
      if (optionTrue(oneof, '(validate.required)') && !oneof.fieldsArray.some((f) => present(msg, f))) {
        this.fail(path, `exactly one of ${oneof.fieldsArray.map((f) => f.name).join(', ')} is required`);
      }
    }
    for (const field of type.fieldsArray) {
      field.resolve();
      const value = msg[field.name];
      const p = `${path}.${field.name}`;
      const rules = rulesOf(field);
      if (field.partOf && !present(msg, field)) continue; // unset oneof members carry no rules
      if (field.map) this.mapField(field, value as Record<string, unknown>, rules, p);
      else if (field.repeated) this.repeatedField(field, (value as unknown[]) ?? [], rules, p);
      else this.single(field, value, rules, p);
    }
  }

  private mapField(field: protobuf.Field, m: Record<string, unknown>, rules: Rules | undefined, p: string): void {
    const entries = Object.entries(m ?? {});
    const r = (rules?.map ?? {}) as Rules;
    if (r.ignore_empty && entries.length === 0) return;
    if (r.min_pairs !== undefined && entries.length < num(r.min_pairs)) this.fail(p, `needs at least ${String(r.min_pairs)} entries`);
    if (r.max_pairs !== undefined && entries.length > num(r.max_pairs)) this.fail(p, `allows at most ${String(r.max_pairs)} entries`);
    for (const [k, v] of entries) {
      if (r.keys) this.scalar((field as unknown as protobuf.MapField).keyType, k, r.keys as Rules, `${p}[${JSON.stringify(k)}] (key)`);
      if (r.no_sparse && (v === null || v === undefined)) this.fail(`${p}[${JSON.stringify(k)}]`, 'sparse map entry');
      this.value(field, v, r.values as Rules | undefined, `${p}[${JSON.stringify(k)}]`);
    }
  }

  private repeatedField(field: protobuf.Field, items: unknown[], rules: Rules | undefined, p: string): void {
    const r = (rules?.repeated ?? {}) as Rules;
    if (r.ignore_empty && items.length === 0) return;
    if (r.min_items !== undefined && items.length < num(r.min_items)) this.fail(p, `needs at least ${String(r.min_items)} items`);
    if (r.max_items !== undefined && items.length > num(r.max_items)) this.fail(p, `allows at most ${String(r.max_items)} items`);
    if (r.unique) {
      const seen = new Set(items.map((x) => JSON.stringify(x)));
      if (seen.size !== items.length) this.fail(p, 'items must be unique');
    }
    items.forEach((v, i) => this.value(field, v, r.items as Rules | undefined, `${p}[${i}]`));
  }

  private single(field: protobuf.Field, v: unknown, rules: Rules | undefined, p: string): void {
    this.value(field, v, rules, p);
  }

  /** One value (a singular field, a repeated item or a map value) under its rules. */
  private value(field: protobuf.Field, v: unknown, rules: Rules | undefined, p: string): void {
    const rt = field.resolvedType;
    if (rt instanceof protobuf.Type) {
      const set = v !== undefined && v !== null;
      const mr = (rules?.message ?? {}) as Rules;
      if (!set) {
        if (mr.required || (rules?.duration as Rules)?.required || (rules?.timestamp as Rules)?.required || (rules?.any as Rules)?.required) {
          this.fail(p, 'is required');
        }
        return;
      }
      const name = rt.fullName.slice(1);
      const wrapped = WRAPPERS[name];
      if (wrapped && rules && rules[wrapped]) this.scalar(wrapped, (v as Msg).value, rules[wrapped] as Rules, p, true);
      if (name === 'google.protobuf.Duration' && rules?.duration) this.timeRules(v, rules.duration as Rules, p);
      if (name === 'google.protobuf.Timestamp' && rules?.timestamp) this.timeRules(v, rules.timestamp as Rules, p);
      if (name === 'google.protobuf.Any' && rules?.any) {
        const url = String((v as Msg).type_url ?? (v as Msg).typeUrl ?? '');
        const ar = rules.any as Rules;
        if (ar.in !== undefined && !asList(ar.in).includes(url)) this.fail(p, `type ${url} not allowed`);
        if (ar.not_in !== undefined && asList(ar.not_in).includes(url)) this.fail(p, `type ${url} not allowed`);
      }
      if (mr.skip) return;
      this.message(rt, v as Msg, p);
      return;
    }
    if (rt instanceof protobuf.Enum) {
      const r = (rules?.enum ?? {}) as Rules;
      const n = num(v ?? 0);
      if (r.defined_only && !Object.values(rt.values).includes(n)) this.fail(p, `undefined enum value ${n}`);
      const toNum = (x: unknown) => (typeof x === 'string' ? (rt.values[x] ?? NaN) : num(x));
      if (r.const !== undefined && n !== toNum(r.const)) this.fail(p, `must equal ${String(r.const)}`);
      if (r.in !== undefined && !asList(r.in).map(toNum).includes(n)) this.fail(p, `must be one of ${JSON.stringify(r.in)}`);
      if (r.not_in !== undefined && asList(r.not_in).map(toNum).includes(n)) this.fail(p, `must not be one of ${JSON.stringify(r.not_in)}`);
      return;
    }
    if (rules) this.scalar(field.type, v, (rules[field.type] ?? rules[kindAlias(field.type)] ?? {}) as Rules, p);
  }

  private scalar(type: string, v: unknown, r: Rules, p: string, present = false): void {
    const kind = kindAlias(type);
    if (kind === 'string') return this.stringRules(String(v ?? ''), r, p, present);
    if (kind === 'bytes') {
      const b = v instanceof Uint8Array ? v : new Uint8Array();
      if (r.ignore_empty && b.length === 0) return;
      if (r.min_len !== undefined && b.length < num(r.min_len)) this.fail(p, `needs at least ${String(r.min_len)} bytes`);
      if (r.max_len !== undefined && b.length > num(r.max_len)) this.fail(p, `allows at most ${String(r.max_len)} bytes`);
      return;
    }
    if (kind === 'bool') {
      if (r.const !== undefined && Boolean(v) !== r.const) this.fail(p, `must be ${String(r.const)}`);
      return;
    }
    const n = num(v ?? 0);
    if (r.ignore_empty && n === 0 && !present) return;
    for (const e of rangeErrors(n, r, String, num)) this.fail(p, e);
  }

  private stringRules(s: string, r: Rules, p: string, present: boolean): void {
    if (r.ignore_empty && s === '' && !present) return;
    const runes = [...s].length;
    const bytes = Buffer.byteLength(s);
    if (r.const !== undefined && s !== r.const) this.fail(p, `must equal ${JSON.stringify(r.const)}`);
    if (r.len !== undefined && runes !== num(r.len)) this.fail(p, `must be ${String(r.len)} characters`);
    if (r.min_len !== undefined && runes < num(r.min_len)) this.fail(p, `needs at least ${String(r.min_len)} characters, got ${JSON.stringify(s)}`);
    if (r.max_len !== undefined && runes > num(r.max_len)) this.fail(p, `allows at most ${String(r.max_len)} characters`);
    if (r.len_bytes !== undefined && bytes !== num(r.len_bytes)) this.fail(p, `must be ${String(r.len_bytes)} bytes`);
    if (r.min_bytes !== undefined && bytes < num(r.min_bytes)) this.fail(p, `needs at least ${String(r.min_bytes)} bytes`);
    if (r.max_bytes !== undefined && bytes > num(r.max_bytes)) this.fail(p, `allows at most ${String(r.max_bytes)} bytes`);
    if (r.prefix !== undefined && !s.startsWith(String(r.prefix))) this.fail(p, `must start with ${JSON.stringify(r.prefix)}`);
    if (r.suffix !== undefined && !s.endsWith(String(r.suffix))) this.fail(p, `must end with ${JSON.stringify(r.suffix)}`);
    if (r.contains !== undefined && !s.includes(String(r.contains))) this.fail(p, `must contain ${JSON.stringify(r.contains)}`);
    if (r.not_contains !== undefined && s.includes(String(r.not_contains))) this.fail(p, `must not contain ${JSON.stringify(r.not_contains)}`);
    if (r.in !== undefined && !asList(r.in).includes(s)) this.fail(p, `must be one of ${JSON.stringify(r.in)}`);
    if (r.not_in !== undefined && asList(r.not_in).includes(s)) this.fail(p, `must not be one of ${JSON.stringify(r.not_in)}`);
    if (r.pattern !== undefined) {
      let re: RegExp | undefined;
      try {
        re = new RegExp(String(r.pattern), 'u');
      } catch {
        re = undefined; // an RE2-only construct: not checkable in JavaScript
      }
      if (re && !re.test(s)) this.fail(p, `${JSON.stringify(s)} does not match ${String(r.pattern)}`);
    }
    const wk = r.well_known_regex;
    if (wk !== undefined) {
      const strict = r.strict !== false;
      const name = wk === 1 || wk === 'HTTP_HEADER_NAME' ? 'name' : wk === 2 || wk === 'HTTP_HEADER_VALUE' ? 'value' : undefined;
      const re = !strict ? HEADER_LOOSE : name === 'name' ? HEADER_NAME : name === 'value' ? HEADER_VALUE : undefined;
      if (re && !re.test(s)) this.fail(p, `${JSON.stringify(s)} is not a valid HTTP header ${name}`);
    }
    if (r.hostname && !isHostname(s)) this.fail(p, `${JSON.stringify(s)} is not a hostname`);
    if (r.ip && isIP(s) === 0) this.fail(p, `${JSON.stringify(s)} is not an IP address`);
    if (r.ipv4 && isIP(s) !== 4) this.fail(p, `${JSON.stringify(s)} is not an IPv4 address`);
    if (r.ipv6 && isIP(s) !== 6) this.fail(p, `${JSON.stringify(s)} is not an IPv6 address`);
    if (r.address && isIP(s) === 0 && !isHostname(s)) this.fail(p, `${JSON.stringify(s)} is not a hostname or IP address`);
    if (r.uri && !URL.canParse(s)) this.fail(p, `${JSON.stringify(s)} is not an absolute URI`);
    if (r.uuid && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s)) this.fail(p, `${JSON.stringify(s)} is not a UUID`);
  }

  private timeRules(v: unknown, r: Rules, p: string): void {
    const show = (x: unknown) => `${Number(nanos(x)) / 1e9}s`;
    for (const e of rangeErrors(nanos(v), r, show, nanos)) this.fail(p, e);
  }

  private any(msg: Msg, path: string): void {
    const url = String(msg.type_url ?? msg.typeUrl ?? '');
    const name = url.slice(url.lastIndexOf('/') + 1);
    const t = this.root.lookup(name);
    if (!(t instanceof protobuf.Type)) return this.fail(path, `@type ${url} does not resolve`);
    // An empty payload (Router, TlsInspector, …) has no value bytes at all.
    const value = msg.value instanceof Uint8Array ? msg.value : new Uint8Array();
    this.message(t, t.decode(value), `${path}<${name}>`);
  }

  /** A TypedStruct's payload is checked as the message its type_url names. */
  private typedStruct(type: protobuf.Type, msg: Msg, path: string): void {
    const url = String(msg.typeUrl ?? msg.type_url ?? '');
    const name = url.slice(url.lastIndexOf('/') + 1);
    const t = this.root.lookup(name);
    if (!(t instanceof protobuf.Type)) return this.fail(`${path}.typeUrl`, `${url} does not resolve`);
    const structType = type.fields.value!.resolvedType as protobuf.Type;
    const json = msg.value ? protojson.toJson(structType, msg.value) : {};
    let inner: protobuf.Message;
    try {
      inner = protojson.fromJson(t, json);
    } catch (err) {
      return this.fail(`${path}.value<${name}>`, (err as Error).message);
    }
    this.message(t, inner as unknown as Msg, `${path}.value<${name}>`);
  }
}

/** Explicit presence, as a oneof has it: the parser set the field (even to "" or 0). */
function present(msg: Msg, field: protobuf.Field): boolean {
  return Object.hasOwn(msg, field.name) && msg[field.name] !== undefined && msg[field.name] !== null;
}

function kindAlias(type: string): string {
  switch (type) {
    case 'sint32':
    case 'sfixed32':
      return 'int32';
    case 'fixed32':
      return 'uint32';
    case 'sint64':
    case 'sfixed64':
      return 'int64';
    case 'fixed64':
      return 'uint64';
    default:
      return type;
  }
}
