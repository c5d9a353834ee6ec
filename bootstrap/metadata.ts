// Node metadata as Istio assembles it (GetNodeMetaData in pkg/bootstrap/config.go).
// Two views are kept, as Istio does: an untyped map ("raw": ISTIO_META_*, ISTIO_METAJSON_*, …)
// and a typed record with fixed keys that the agent overwrites. node.metadata is the typed record
// (empty values omitted) plus every raw key the typed JSON does not already have.
//
// Behaviours of Istio's that users see and that we keep on purpose:
// - ISTIO_METAJSON_<anything> objects merge at the top level (the variable name is ignored).
// - LABELS and STATIC_LABELS are one map when both come from ISTIO_METAJSON_LABELS, so the
//   locality rewrite shows in both.
// - METADATA_DISCOVERY is always emitted ("false" included).
// - A raw value of the wrong type for a typed key (`ISTIO_META_DNS_CAPTURE=yes`) is an error;
//   keys match typed fields case-insensitively, as Go's JSON decoder matches struct fields.
// - Values Istio's text template would print unescaped are plain data here: the metadata is an
//   object, so quotes, backslashes and non-ASCII in labels or IDs cannot break the JSON.
import { proxyConfigToJson, type ProxyConfig } from '../config/index.js';
import { parseGoBool } from '../lib/goparse.js';
import type { Locality } from './envoy-api.js';
import { BootstrapError } from './errors.js';
import { UNKNOWN_PLATFORM, type Platform } from './platform.js';
import { errorMessage } from '../lib/errors.js';

export const ISTIO_META_PREFIX = 'ISTIO_META_';
export const ISTIO_METAJSON_PREFIX = 'ISTIO_METAJSON_';
export const LOCALITY_LABEL = 'istio-locality';
export const TOPOLOGY_LOCALITY_LABEL = 'topology.istio.io/locality';
const POD_TEMPLATE_HASH = 'pod-template-hash';

type StringMap = Record<string, string>;

/** The typed record, keyed by the JSON names Istio uses in node metadata. */
export interface NodeMetadata {
  PROXY_CONFIG?: Record<string, unknown>;
  ISTIO_VERSION?: string;
  ISTIO_REVISION?: string;
  LABELS?: StringMap;
  STATIC_LABELS?: StringMap;
  ANNOTATIONS?: StringMap;
  INSTANCE_IPS?: string[];
  NAMESPACE?: string;
  NODE_NAME?: string;
  WORKLOAD_NAME?: string;
  INTERCEPTION_MODE?: string;
  SERVICE_ACCOUNT?: string;
  HTTP_PROXY_PORT?: string;
  MESH_ID?: string;
  CLUSTER_ID?: string;
  NETWORK?: string;
  REQUESTED_NETWORK_VIEW?: string[];
  POD_PORTS?: string;
  TLS_SERVER_CERT_CHAIN?: string;
  TLS_SERVER_KEY?: string;
  TLS_SERVER_ROOT_CERT?: string;
  TLS_CLIENT_CERT_CHAIN?: string;
  TLS_CLIENT_KEY?: string;
  TLS_CLIENT_ROOT_CERT?: string;
  BASE?: string;
  IDLE_TIMEOUT?: string;
  HTTP10?: string;
  GENERATOR?: string;
  ENABLE_SELF_DISCOVERY?: boolean;
  DNS_CAPTURE?: boolean;
  DNS_AUTO_ALLOCATE?: boolean;
  DNS_PROXY_ADDR?: string;
  ENABLE_HBONE?: boolean;
  DISABLE_HBONE_SEND?: boolean;
  AUTO_REGISTER_GROUP?: string;
  WORKLOAD_ENTRY?: string;
  UNPRIVILEGED_POD?: string;
  PLATFORM_METADATA?: StringMap;
  STS_PORT?: string;
  ENVOY_STATUS_PORT?: number;
  ENVOY_PROMETHEUS_PORT?: number;
  ENVOY_SECURE_METRICS_PORT?: number;
  ENVOY_SECURE_MERGED_METRICS_PORT?: number;
  EXIT_ON_ZERO_ACTIVE_CONNECTIONS?: boolean;
  INBOUND_LISTENER_EXACT_BALANCE?: boolean;
  OUTBOUND_LISTENER_EXACT_BALANCE?: boolean;
  CLOUDRUN_ADDR?: string;
  /** Optional with presence: emitted as "true"/"false" whenever set. */
  METADATA_DISCOVERY?: boolean | undefined;
  ENVOY_SKIP_DEPRECATED_LOGS?: boolean;
  WORKLOAD_IDENTITY_SOCKET_FILE?: string;
  NAME?: string;
  OWNER?: string;
  PILOT_SAN?: string[];
  OUTLIER_LOG_PATH?: string;
  APP_CONTAINERS?: string;
  ISTIO_PROXY_SHA?: string;
}

/**
 * How each typed key is decoded from raw metadata and encoded into node metadata.
 * `bool` is Istio's StringBool ("true"/"false" strings, omitted when false); `optBool` is the
 * presence-carrying variant; `list` is a comma-joined string.
 */
type Kind = 'string' | 'bool' | 'optBool' | 'list' | 'map' | 'number' | 'strings' | 'object';

const FIELD_KINDS: Readonly<Record<keyof NodeMetadata, Kind>> = {
  PROXY_CONFIG: 'object',
  ISTIO_VERSION: 'string',
  ISTIO_REVISION: 'string',
  LABELS: 'map',
  STATIC_LABELS: 'map',
  ANNOTATIONS: 'map',
  INSTANCE_IPS: 'list',
  NAMESPACE: 'string',
  NODE_NAME: 'string',
  WORKLOAD_NAME: 'string',
  INTERCEPTION_MODE: 'string',
  SERVICE_ACCOUNT: 'string',
  HTTP_PROXY_PORT: 'string',
  MESH_ID: 'string',
  CLUSTER_ID: 'string',
  NETWORK: 'string',
  REQUESTED_NETWORK_VIEW: 'list',
  POD_PORTS: 'string',
  TLS_SERVER_CERT_CHAIN: 'string',
  TLS_SERVER_KEY: 'string',
  TLS_SERVER_ROOT_CERT: 'string',
  TLS_CLIENT_CERT_CHAIN: 'string',
  TLS_CLIENT_KEY: 'string',
  TLS_CLIENT_ROOT_CERT: 'string',
  BASE: 'string',
  IDLE_TIMEOUT: 'string',
  HTTP10: 'string',
  GENERATOR: 'string',
  ENABLE_SELF_DISCOVERY: 'bool',
  DNS_CAPTURE: 'bool',
  DNS_AUTO_ALLOCATE: 'bool',
  DNS_PROXY_ADDR: 'string',
  ENABLE_HBONE: 'bool',
  DISABLE_HBONE_SEND: 'bool',
  AUTO_REGISTER_GROUP: 'string',
  WORKLOAD_ENTRY: 'string',
  UNPRIVILEGED_POD: 'string',
  PLATFORM_METADATA: 'map',
  STS_PORT: 'string',
  ENVOY_STATUS_PORT: 'number',
  ENVOY_PROMETHEUS_PORT: 'number',
  ENVOY_SECURE_METRICS_PORT: 'number',
  ENVOY_SECURE_MERGED_METRICS_PORT: 'number',
  EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'bool',
  INBOUND_LISTENER_EXACT_BALANCE: 'bool',
  OUTBOUND_LISTENER_EXACT_BALANCE: 'bool',
  CLOUDRUN_ADDR: 'string',
  METADATA_DISCOVERY: 'optBool',
  ENVOY_SKIP_DEPRECATED_LOGS: 'bool',
  WORKLOAD_IDENTITY_SOCKET_FILE: 'string',
  NAME: 'string',
  OWNER: 'string',
  PILOT_SAN: 'strings',
  OUTLIER_LOG_PATH: 'string',
  APP_CONTAINERS: 'string',
  ISTIO_PROXY_SHA: 'string',
};

const TYPED_KEYS = Object.keys(FIELD_KINDS) as (keyof NodeMetadata)[];
const TYPED_BY_UPPER = new Map(TYPED_KEYS.map((k) => [k.toUpperCase(), k]));

/** A prototype-free record, so keys such as `__proto__` stay ordinary data. */
export function dict<V>(entries?: Iterable<readonly [string, V]>): Record<string, V> {
  const o = Object.create(null) as Record<string, V>;
  if (entries) for (const [k, v] of entries) o[k] = v;
  return o;
}

export interface MetadataInput {
  proxyConfig: ProxyConfig;
  /** The agent's environment in order (Istio's `Envs`, `NAME=value` split at the first `=`). */
  envs: ReadonlyArray<readonly [string, string]>;
  instanceIps: readonly string[];
  /** `./etc/istio/pod/labels`, parsed; undefined when the file is absent or unreadable. */
  podLabels?: ReadonlyMap<string, string> | undefined;
  /** `./etc/istio/pod/annotations`, parsed; undefined when absent or unreadable. */
  podAnnotations?: ReadonlyMap<string, string> | undefined;
  /** Undefined means Istio's Unknown platform. */
  platform?: Platform | undefined;
  pilotSubjectAltName: readonly string[];
  outlierLogPath: string;
  stsPort: number;
  credentialSocketExists: boolean;
  customCredentialsFileExists: boolean;
  envoyStatusPort: number;
  envoyPrometheusPort: number;
  envoySecureMetricsPort: number;
  envoySecureMergedMetricsPort: number;
  exitOnZeroActiveConnections: boolean;
  /** PEER_METADATA_DISCOVERY when set; undefined lets ENABLE_HBONE decide. */
  metadataDiscovery?: boolean | undefined;
  envoySkipDeprecatedLogs: boolean;
  workloadIdentitySocketFile: string;
  /** Reported when ISTIO_META_ISTIO_VERSION does not set one (buildInfo().Version in the agent). */
  istioVersion: string;
  /** DNS_PROXY_ADDR from the process environment, copied to metadata when non-empty. */
  dnsProxyAddr?: string | undefined;
  /** Receives warnings (Istio logs these and carries on). */
  warn?: ((message: string) => void) | undefined;
}

export interface NodeMetadataResult {
  /** node.metadata as it goes into the bootstrap. */
  json: Record<string, unknown>;
  typed: NodeMetadata;
  raw: Record<string, unknown>;
  locality: Locality;
}

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? `the list ${JSON.stringify(v)}` : `${typeof v} ${JSON.stringify(v)}`;
}

function badValue(key: string, rawKey: string, expected: string, v: unknown): BootstrapError {
  const via = rawKey === key ? key : `${rawKey} (matches ${key})`;
  return new BootstrapError(
    `invalid node metadata ${via}: expected ${expected}, got ${describe(v)}; set by ProxyConfig proxyMetadata ${ISTIO_META_PREFIX}${rawKey}, the environment variable ${ISTIO_META_PREFIX}${rawKey}, or an ${ISTIO_METAJSON_PREFIX}* JSON object`,
  );
}

/** Decodes one raw value into its typed field (Go's json.Unmarshal into BootstrapNodeMetadata). */
function decodeTyped(key: keyof NodeMetadata, rawKey: string, v: unknown): unknown {
  // JSON null leaves Go's field at its zero value.
  if (v === null) return undefined;
  switch (FIELD_KINDS[key]) {
    case 'string':
      if (typeof v !== 'string') throw badValue(key, rawKey, 'a string', v);
      return v;
    case 'bool':
    case 'optBool': {
      const b = typeof v === 'string' ? parseGoBool(v) : undefined;
      if (b === undefined) throw badValue(key, rawKey, 'a boolean string ("true" or "false")', v);
      return b;
    }
    case 'list':
      if (typeof v !== 'string') throw badValue(key, rawKey, 'a comma-separated string', v);
      return v === '' ? [] : v.split(',');
    case 'map': {
      if (typeof v !== 'object' || Array.isArray(v)) throw badValue(key, rawKey, 'an object of strings', v);
      const m = dict<string>();
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (x !== null && typeof x !== 'string') throw badValue(key, rawKey, 'an object of strings', v);
        m[k] = x ?? '';
      }
      return m;
    }
    case 'number':
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw badValue(key, rawKey, 'an integer', v);
      return v;
    case 'strings':
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw badValue(key, rawKey, 'a list of strings', v);
      return [...(v as string[])];
    case 'object':
      if (typeof v !== 'object' || Array.isArray(v)) throw badValue(key, rawKey, 'an object', v);
      return v;
  }
}

/**
 * Typed record → JSON with Go's omitempty rules. Exported for the gRPC xDS bootstrap, whose
 * node metadata is the typed record alone (no untyped ISTIO_META_* extras).
 */
export function encodeTypedMetadata(t: NodeMetadata): Record<string, unknown> {
  const out = dict<unknown>();
  for (const key of TYPED_KEYS) {
    const v = t[key];
    if (v === undefined) continue;
    switch (FIELD_KINDS[key]) {
      case 'string':
        if (v !== '') out[key] = v;
        break;
      case 'bool':
        if (v === true) out[key] = 'true';
        break;
      case 'optBool':
        out[key] = v ? 'true' : 'false';
        break;
      case 'list':
        if ((v as string[]).length) out[key] = (v as string[]).join(',');
        break;
      case 'map':
        if (Object.keys(v as object).length) out[key] = { ...(v as StringMap) };
        break;
      case 'number':
        if (v !== 0) out[key] = v;
        break;
      case 'strings':
        if ((v as string[]).length) out[key] = [...(v as string[])];
        break;
      case 'object':
        out[key] = v;
        break;
    }
  }
  return out;
}

/** A JSON object's own string values; Istio's jsonStringToMap for ISTIO_METAJSON_LABELS. */
function jsonStringMap(name: string, text: string, warn: (m: string) => void): StringMap {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    warn(`Env variable ${name} with value ${JSON.stringify(text)} failed json unmarshal: ${errorMessage(err)}`);
    return dict();
  }
  const m = dict<string>();
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    if (parsed !== null) warn(`Env variable ${name} with value ${JSON.stringify(text)} is not a JSON object of strings`);
    return m;
  }
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof v === 'string' || v === null) m[k] = v ?? '';
    else warn(`Env variable ${name}: label ${JSON.stringify(k)} is not a string; ignored`);
  }
  return m;
}

function dedupe(values: readonly string[]): string[] {
  return [...new Set(values)];
}

/** `a.b.c` → `a/b/c` unless the value already uses `/` (Istio's GetLocalityLabel). */
export function sanitizeLocality(label: string): string {
  return label.includes('/') ? label : label.replaceAll('.', '/');
}

export function localityFromString(s: string): Locality {
  if (s === '') return {};
  const [region = '', zone = '', subZone = ''] = s.split('/');
  const l: Locality = {};
  if (region) l.region = region;
  if (zone) l.zone = zone;
  if (subZone) l.sub_zone = subZone;
  return l;
}

/** Assembles node metadata (Istio's GetNodeMetaData). Pure; throws BootstrapError on bad input. */
export function buildNodeMetadata(input: MetadataInput): NodeMetadataResult {
  const warn = input.warn ?? (() => {});
  const raw = dict<unknown>();

  // 1–2. ISTIO_META_* from proxyMetadata, then from the environment (which wins).
  for (const [k, v] of Object.entries(input.proxyConfig.proxyMetadata ?? {})) {
    if (k.startsWith(ISTIO_META_PREFIX)) raw[k.slice(ISTIO_META_PREFIX.length)] = v;
  }
  for (const [k, v] of input.envs) {
    if (k.startsWith(ISTIO_META_PREFIX)) raw[k.slice(ISTIO_META_PREFIX.length)] = v;
  }
  // 3. ISTIO_METAJSON_*: each object's keys land at the top level.
  for (const [k, v] of input.envs) {
    if (!k.startsWith(ISTIO_METAJSON_PREFIX)) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(v);
    } catch (err) {
      warn(`Env variable ${k.slice(ISTIO_METAJSON_PREFIX.length)} [${v}] failed json unmarshal: ${errorMessage(err)}`);
      continue;
    }
    if (parsed === null) continue;
    if (typeof parsed !== 'object' || Array.isArray(parsed)) {
      warn(`Env variable ${k} [${v}] is not a JSON object; ignored`);
      continue;
    }
    for (const [jk, jv] of Object.entries(parsed)) raw[jk] = jv;
  }
  // 4.
  if (input.dnsProxyAddr) raw.DNS_PROXY_ADDR = input.dnsProxyAddr;

  // 5. Decode into the typed record. Go visits object keys in sorted order and matches fields
  // case-insensitively, so a later key that folds to the same field wins.
  const typed: NodeMetadata = {};
  const typedRecord = typed as Record<string, unknown>;
  for (const rawKey of Object.keys(raw).sort(byBytes)) {
    const key = TYPED_BY_UPPER.get(rawKey.toUpperCase());
    if (key === undefined || !/^[\x20-\x7e]*$/.test(rawKey)) continue;
    typedRecord[key] = decodeTyped(key, rawKey, raw[rawKey]);
  }

  // 6–7. Version, then the values the agent owns.
  if (!typed.ISTIO_VERSION) typed.ISTIO_VERSION = input.istioVersion;
  typed.INSTANCE_IPS = dedupe(input.instanceIps);
  if (input.stsPort !== 0) typed.STS_PORT = String(input.stsPort);
  typed.ENVOY_STATUS_PORT = input.envoyStatusPort;
  typed.ENVOY_PROMETHEUS_PORT = input.envoyPrometheusPort;
  typed.ENVOY_SECURE_METRICS_PORT = input.envoySecureMetricsPort;
  typed.ENVOY_SECURE_MERGED_METRICS_PORT = input.envoySecureMergedMetricsPort;
  typed.EXIT_ON_ZERO_ACTIVE_CONNECTIONS = input.exitOnZeroActiveConnections;
  typed.METADATA_DISCOVERY = input.metadataDiscovery;
  typed.ENVOY_SKIP_DEPRECATED_LOGS = input.envoySkipDeprecatedLogs;
  typed.WORKLOAD_IDENTITY_SOCKET_FILE = input.workloadIdentitySocketFile;
  typed.PROXY_CONFIG = proxyConfigToJson(input.proxyConfig);

  // 8. Attributes from the environment; last occurrence wins.
  for (const [k, v] of input.envs) {
    switch (k) {
      case 'ISTIO_METAJSON_LABELS': {
        const m = jsonStringMap(k, v, warn);
        if (Object.keys(m).length) {
          // Deliberately one object for both (Istio's aliasing; see the header comment).
          typed.LABELS = m;
          typed.STATIC_LABELS = m;
        }
        break;
      }
      case 'POD_NAME':
        typed.NAME = v;
        break;
      case 'POD_NAMESPACE':
        typed.NAMESPACE = v;
        break;
      case 'SERVICE_ACCOUNT':
        typed.SERVICE_ACCOUNT = v;
        break;
    }
  }
  const platform = input.platform ?? UNKNOWN_PLATFORM;
  if (Object.keys(platform.metadata).length) typed.PLATFORM_METADATA = dict(Object.entries(platform.metadata));

  // 9. Instance labels (off Kubernetes), the downward-API files, locality.
  if (!platform.isKubernetes) {
    typed.STATIC_LABELS ??= dict();
    for (const [k, v] of Object.entries(platform.labels)) typed.STATIC_LABELS[k] = v;
  }
  if (input.podLabels) {
    const labels = dict(Object.entries(typed.STATIC_LABELS ?? {}));
    for (const [k, v] of input.podLabels) if (k !== POD_TEMPLATE_HASH) labels[k] = v;
    typed.LABELS = labels;
  }
  if (input.podAnnotations) {
    typed.ANNOTATIONS ??= dict();
    for (const [k, v] of input.podAnnotations) typed.ANNOTATIONS[k] = v;
  }
  const label = typed.LABELS?.[TOPOLOGY_LOCALITY_LABEL] || typed.LABELS?.[LOCALITY_LABEL] || '';
  let locality: Locality;
  if (label === '' && input.platform) {
    const p = input.platform.locality;
    locality = localityFromString('');
    if (p.region) locality.region = p.region;
    if (p.zone) locality.zone = p.zone;
    if (p.subZone) locality.sub_zone = p.subZone;
  } else {
    const sanitized = sanitizeLocality(label);
    if (sanitized !== '') typed.LABELS![LOCALITY_LABEL] = sanitized;
    locality = localityFromString(sanitized);
  }

  // 10.
  typed.PILOT_SAN = [...input.pilotSubjectAltName];
  typed.OUTLIER_LOG_PATH = input.outlierLogPath;
  if (input.credentialSocketExists) raw.credential = 'true';
  if (input.customCredentialsFileExists) raw['file-credential'] = 'true';
  if (typed.METADATA_DISCOVERY === undefined) typed.METADATA_DISCOVERY = typed.ENABLE_HBONE ?? false;

  const json = encodeTypedMetadata(typed);
  for (const [k, v] of Object.entries(raw)) if (!Object.hasOwn(json, k)) json[k] = v;
  return { json, typed, raw, locality };
}

/** Go's string order (bytes of UTF-8), which differs from JS's UTF-16 order outside the BMP. */
export function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export const APP_LABELS = ['app', 'app.kubernetes.io/name', 'service.istio.io/canonical-name'] as const;
const CANONICAL_NAME_LABELS = ['service.istio.io/canonical-name', 'app.kubernetes.io/name', 'app'] as const;

/** node.cluster (Istio's getServiceCluster in pkg/bootstrap/config.go). */
export function serviceCluster(pc: ProxyConfig, meta: NodeMetadata): string {
  const labels = meta.LABELS ?? {};
  const ns = meta.NAMESPACE ?? '';
  const orDefault = (name: string): string => {
    if (name !== '' && name !== 'istio-proxy') return name;
    const app = APP_LABELS.find((l) => Object.hasOwn(labels, l));
    if (app !== undefined) return `${labels[app]}.${ns}`;
    if (meta.WORKLOAD_NAME) return `${meta.WORKLOAD_NAME}.${ns}`;
    if (ns) return `istio-proxy.${ns}`;
    return 'istio-proxy';
  };
  if (pc.serviceCluster !== undefined) return orDefault(pc.serviceCluster);
  if (pc.tracingServiceName !== undefined) {
    const workload = meta.WORKLOAD_NAME || 'istio-proxy';
    const canonicalLabel = CANONICAL_NAME_LABELS.find((l) => labels[l]);
    const canonical = canonicalLabel ? labels[canonicalLabel]! : workload;
    switch (pc.tracingServiceName) {
      case 'CANONICAL_NAME_ONLY':
        return orDefault(canonical);
      case 'CANONICAL_NAME_AND_NAMESPACE':
        return ns ? `${canonical}.${ns}` : orDefault(canonical);
      default:
        return orDefault('istio-proxy');
    }
  }
  return orDefault('istio-proxy');
}
