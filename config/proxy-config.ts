// ProxyConfig (istio.mesh.v1alpha1.ProxyConfig): schema, Istio's defaults, the overlay rule of
// pilot-agent's ConstructProxyConfig, post-processing and validation. Pure: callers pass file
// and environment contents in.
import { splitHostPort } from '../lib/hostport.js';
import { f, formatProtoDuration, parseMessage, ProtoJsonError, s, toProtoJson, type MessageSchema, type ProtoJson } from './proto-json.js';
import { AgentError, errorMessage } from '../lib/errors.js';

const str = (proto: string) => s(proto);
const repeatedString = (proto: string) => f({ t: 'repeated', of: { t: 'string' } }, proto);

const clientTlsSettings: MessageSchema = {
  mode: f({ t: 'enum', values: ['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'] }, 'mode'),
  clientCertificate: str('client_certificate'),
  privateKey: str('private_key'),
  caCertificates: str('ca_certificates'),
  credentialName: str('credential_name'),
  subjectAltNames: repeatedString('subject_alt_names'),
  sni: str('sni'),
  insecureSkipVerify: f({ t: 'wrapper', of: 'bool' }, 'insecure_skip_verify'),
  caCrl: str('ca_crl'),
};

const tcpKeepalive: MessageSchema = {
  probes: f({ t: 'uint32' }, 'probes'),
  time: f({ t: 'duration' }, 'time'),
  interval: f({ t: 'duration' }, 'interval'),
};

const remoteService: MessageSchema = {
  address: str('address'),
  tlsSettings: f({ t: 'message', schema: clientTlsSettings }, 'tls_settings'),
  tcpKeepalive: f({ t: 'message', schema: tcpKeepalive }, 'tcp_keepalive'),
};

const addressOnly: MessageSchema = { address: str('address') };
const int64Wrapper = { t: 'wrapper', of: 'int64' } as const;

const tracing: MessageSchema = {
  zipkin: f({ t: 'message', schema: addressOnly }, 'zipkin', 'tracer'),
  lightstep: f({ t: 'message', schema: { address: str('address'), accessToken: str('access_token') } }, 'lightstep', 'tracer'),
  datadog: f({ t: 'message', schema: addressOnly }, 'datadog', 'tracer'),
  stackdriver: f(
    {
      t: 'message',
      schema: {
        debug: f({ t: 'bool' }, 'debug'),
        maxNumberOfAttributes: f(int64Wrapper, 'max_number_of_attributes'),
        maxNumberOfAnnotations: f(int64Wrapper, 'max_number_of_annotations'),
        maxNumberOfMessageEvents: f(int64Wrapper, 'max_number_of_message_events'),
      },
    },
    'stackdriver',
    'tracer',
  ),
  openCensusAgent: f(
    {
      t: 'message',
      schema: {
        address: str('address'),
        context: f({ t: 'repeated', of: { t: 'enum', values: ['UNSPECIFIED', 'W3C_TRACE_CONTEXT', 'GRPC_BIN', 'CLOUD_TRACE_CONTEXT', 'B3'] } }, 'context'),
      },
    },
    'open_census_agent',
    'tracer',
  ),
  customTags: f({ t: 'opaque' }, 'custom_tags'),
  maxPathTagLength: f({ t: 'uint32' }, 'max_path_tag_length'),
  sampling: f({ t: 'double' }, 'sampling'),
  tlsSettings: f({ t: 'message', schema: clientTlsSettings }, 'tls_settings'),
  enableIstioTags: f({ t: 'wrapper', of: 'bool' }, 'enable_istio_tags'),
};

const proxyStatsMatcher: MessageSchema = {
  inclusionPrefixes: repeatedString('inclusion_prefixes'),
  inclusionSuffixes: repeatedString('inclusion_suffixes'),
  inclusionRegexps: repeatedString('inclusion_regexps'),
};

export const AUTH_POLICIES = ['NONE', 'MUTUAL_TLS', 'INHERIT'] as const;
export const TRACING_SERVICE_NAMES = ['APP_LABEL_AND_NAMESPACE', 'CANONICAL_NAME_ONLY', 'CANONICAL_NAME_AND_NAMESPACE'] as const;

/** Every ProxyConfig field, keyed by its JSON name. */
export const proxyConfigSchema: MessageSchema = {
  configPath: str('config_path'),
  binaryPath: str('binary_path'),
  serviceCluster: s('service_cluster', 'cluster_name'),
  tracingServiceName: f({ t: 'enum', values: TRACING_SERVICE_NAMES }, 'tracing_service_name', 'cluster_name'),
  drainDuration: f({ t: 'duration' }, 'drain_duration'),
  parentShutdownDuration: f({ t: 'duration' }, 'parent_shutdown_duration'),
  discoveryAddress: str('discovery_address'),
  discoveryRefreshDelay: f({ t: 'duration' }, 'discovery_refresh_delay'),
  zipkinAddress: str('zipkin_address'),
  statsdUdpAddress: str('statsd_udp_address'),
  envoyMetricsServiceAddress: str('envoy_metrics_service_address'),
  proxyAdminPort: f({ t: 'int32' }, 'proxy_admin_port'),
  availabilityZone: str('availability_zone'),
  controlPlaneAuthPolicy: f({ t: 'enum', values: AUTH_POLICIES, numbers: { NONE: 0, MUTUAL_TLS: 1, INHERIT: 1000 } }, 'control_plane_auth_policy'),
  customConfigFile: str('custom_config_file'),
  statNameLength: f({ t: 'int32' }, 'stat_name_length'),
  concurrency: f({ t: 'wrapper', of: 'int32' }, 'concurrency'),
  proxyBootstrapTemplatePath: str('proxy_bootstrap_template_path'),
  interceptionMode: f({ t: 'enum', values: ['REDIRECT', 'TPROXY', 'NONE'] }, 'interception_mode'),
  tracing: f({ t: 'message', schema: tracing }, 'tracing'),
  sds: f({ t: 'opaque' }, 'sds'),
  envoyAccessLogService: f({ t: 'message', schema: remoteService }, 'envoy_access_log_service'),
  envoyMetricsService: f({ t: 'message', schema: remoteService }, 'envoy_metrics_service'),
  proxyMetadata: f({ t: 'map', of: 'string' }, 'proxy_metadata'),
  runtimeValues: f({ t: 'map', of: 'string' }, 'runtime_values'),
  statusPort: f({ t: 'int32' }, 'status_port'),
  extraStatTags: repeatedString('extra_stat_tags'),
  gatewayTopology: f({ t: 'opaque' }, 'gateway_topology'),
  terminationDrainDuration: f({ t: 'duration' }, 'termination_drain_duration'),
  meshId: str('mesh_id'),
  readinessProbe: f({ t: 'opaque' }, 'readiness_probe'),
  proxyStatsMatcher: f({ t: 'message', schema: proxyStatsMatcher }, 'proxy_stats_matcher'),
  holdApplicationUntilProxyStarts: f({ t: 'wrapper', of: 'bool' }, 'hold_application_until_proxy_starts'),
  caCertificatesPem: repeatedString('ca_certificates_pem'),
  image: f({ t: 'opaque' }, 'image'),
  privateKeyProvider: f({ t: 'opaque' }, 'private_key_provider'),
  proxyHeaders: f({ t: 'opaque' }, 'proxy_headers'),
  fileFlushInterval: f({ t: 'duration' }, 'file_flush_interval'),
  fileFlushMinSizeKb: f({ t: 'uint32' }, 'file_flush_min_size_kb'),
  statsCompression: f({ t: 'wrapper', of: 'bool' }, 'stats_compression'),
  connectionSettings: f({ t: 'opaque' }, 'connection_settings'),
};

export interface ClientTlsSettings {
  mode?: 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';
  clientCertificate?: string;
  privateKey?: string;
  caCertificates?: string;
  credentialName?: string;
  subjectAltNames?: string[];
  sni?: string;
  insecureSkipVerify?: boolean;
  caCrl?: string;
}

export interface RemoteService {
  address?: string;
  tlsSettings?: ClientTlsSettings;
  tcpKeepalive?: { probes?: number; time?: number; interval?: number };
}

export interface Tracing {
  zipkin?: { address?: string };
  lightstep?: { address?: string; accessToken?: string };
  datadog?: { address?: string };
  stackdriver?: { debug?: boolean; maxNumberOfAttributes?: string; maxNumberOfAnnotations?: string; maxNumberOfMessageEvents?: string };
  openCensusAgent?: { address?: string; context?: string[] };
  customTags?: Record<string, unknown>;
  maxPathTagLength?: number;
  sampling?: number;
  tlsSettings?: ClientTlsSettings;
  enableIstioTags?: boolean;
}

/**
 * The parsed ProxyConfig. Durations are milliseconds; absent optional fields mean "unset"
 * (as protobuf presence). Fields with Istio defaults are always present after resolution.
 */
export interface ProxyConfig {
  readonly configPath: string;
  readonly binaryPath: string;
  readonly serviceCluster?: string | undefined;
  readonly tracingServiceName?: (typeof TRACING_SERVICE_NAMES)[number];
  readonly drainDuration?: number;
  readonly parentShutdownDuration?: number;
  readonly discoveryAddress: string;
  readonly discoveryRefreshDelay?: number;
  readonly zipkinAddress?: string;
  readonly statsdUdpAddress?: string;
  readonly envoyMetricsServiceAddress?: string;
  readonly proxyAdminPort: number;
  readonly availabilityZone?: string;
  readonly controlPlaneAuthPolicy: (typeof AUTH_POLICIES)[number];
  readonly customConfigFile?: string;
  readonly statNameLength?: number;
  readonly concurrency?: number;
  readonly proxyBootstrapTemplatePath?: string;
  readonly interceptionMode?: 'REDIRECT' | 'TPROXY' | 'NONE';
  readonly tracing?: Tracing;
  readonly sds?: Record<string, unknown>;
  readonly envoyAccessLogService?: RemoteService;
  readonly envoyMetricsService?: RemoteService;
  readonly proxyMetadata: Readonly<Record<string, string>>;
  readonly runtimeValues?: Readonly<Record<string, string>>;
  readonly statusPort: number;
  readonly extraStatTags?: readonly string[];
  readonly gatewayTopology?: Record<string, unknown>;
  readonly terminationDrainDuration?: number;
  readonly meshId?: string;
  readonly readinessProbe?: Record<string, unknown>;
  readonly proxyStatsMatcher?: { inclusionPrefixes?: string[]; inclusionSuffixes?: string[]; inclusionRegexps?: string[] };
  readonly holdApplicationUntilProxyStarts?: boolean;
  readonly caCertificatesPem?: readonly string[];
  readonly image?: Record<string, unknown>;
  readonly privateKeyProvider?: Record<string, unknown>;
  readonly proxyHeaders?: Record<string, unknown>;
  readonly fileFlushInterval?: number;
  readonly fileFlushMinSizeKb?: number;
  readonly statsCompression?: boolean;
  readonly connectionSettings?: Record<string, unknown>;
}

/** Istio's mesh.DefaultProxyConfig(). */
export function defaultProxyConfig(): ProxyConfig {
  return {
    configPath: './etc/istio/proxy',
    binaryPath: '/usr/local/bin/envoy',
    serviceCluster: 'istio-proxy',
    drainDuration: 45_000,
    terminationDrainDuration: 5_000,
    proxyAdminPort: 15000,
    controlPlaneAuthPolicy: 'MUTUAL_TLS',
    discoveryAddress: 'istiod.istio-system.svc:15012',
    statNameLength: 189,
    statusPort: 15020,
    proxyMetadata: {},
  };
}

export class ConfigError extends AgentError {
  static override readonly code: string = 'CONFIG_PROXY_CONFIG';
}

/** Parses ProxyConfig text in YAML or JSON (as PROXY_CONFIG and the annotation allow). */
export type YamlParser = (text: string) => unknown;

/**
 * Parses one ProxyConfig overlay. Returns the fields it sets and the unknown fields it dropped.
 */
export function parseProxyConfigOverlay(text: string, parseYaml: YamlParser, where: string): { fields: ProtoJson; unknown: string[] } {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`failed to unmarshal mesh config from ${where} [${text.trim()}]: ${errorMessage(err).split('\n')[0]}`, { cause: err, appendCause: false });
  }
  return parseOverlayObject(doc, where, text);
}

function parseOverlayObject(doc: unknown, where: string, text: string): { fields: ProtoJson; unknown: string[] } {
  if (doc === null || doc === undefined) return { fields: {}, unknown: [] };
  const unknown: string[] = [];
  try {
    // A null field leaves the previous value alone (protojson merging into the existing message).
    const fields = parseMessage(proxyConfigSchema, doc, 'proxyConfig', unknown);
    return { fields, unknown };
  } catch (err) {
    if (err instanceof ProtoJsonError) {
      throw new ConfigError(`failed to unmarshal mesh config from ${where} [${text.trim()}]`, { cause: err });
    }
    throw err;
  }
}

/**
 * Parses the MeshConfig file and returns its `defaultConfig` as an overlay. Only
 * `defaultConfig` matters to the agent; other MeshConfig fields are accepted and ignored.
 */
export function parseMeshConfigFile(text: string, parseYaml: YamlParser, file: string): { fields: ProtoJson; unknown: string[] } {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`failed to unmarshal mesh config from file [${file}]: ${errorMessage(err).split('\n')[0]}`, { cause: err, appendCause: false });
  }
  if (doc === null || doc === undefined) return { fields: {}, unknown: [] };
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError(`failed to unmarshal mesh config from file [${file}]: expected a MeshConfig object`);
  }
  const dc = (doc as Record<string, unknown>).defaultConfig ?? (doc as Record<string, unknown>).default_config;
  return parseOverlayObject(dc, `file [${file}]`, text);
}

/**
 * Istio's overlay rule: every field present in the overlay replaces the previous value (lists and
 * messages wholesale); `proxyMetadata` alone is merged key by key; setting one member of a oneof
 * clears the other.
 */
export function applyOverlay(base: ProxyConfig, overlay: ProtoJson): ProxyConfig {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(overlay)) {
    const spec = proxyConfigSchema[k];
    if (spec?.oneof) {
      for (const [other, os] of Object.entries(proxyConfigSchema)) if (other !== k && os.oneof === spec.oneof) delete out[other];
    }
    if (k === 'proxyMetadata') {
      out.proxyMetadata = { ...(base.proxyMetadata ?? {}), ...(v as Record<string, string>) };
    } else {
      out[k] = v;
    }
  }
  if (!out.proxyMetadata) out.proxyMetadata = {};
  // Scalars with no value in the message read as proto zero values.
  for (const [k, zero] of [
    ['configPath', ''],
    ['binaryPath', ''],
    ['discoveryAddress', ''],
    ['proxyAdminPort', 0],
    ['statusPort', 0],
    ['controlPlaneAuthPolicy', 'NONE'],
  ] as const) {
    if (out[k] === undefined) out[k] = zero;
  }
  return out as unknown as ProxyConfig;
}

/** Canonical protojson of the ProxyConfig (node metadata PROXY_CONFIG, the effective-config log). */
export function proxyConfigToJson(pc: ProxyConfig): ProtoJson {
  return toProtoJson(proxyConfigSchema, pc as unknown as ProtoJson);
}

// --- validation (Istio's ValidateMeshConfigProxyConfig, the parts that apply to an agent) ---

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/i;

function isIp(host: string): boolean {
  return /^(\d{1,3}\.){3}\d{1,3}$/.test(host) ? host.split('.').every((o) => Number(o) <= 255) : host.includes(':') && /^[0-9a-f:.]+(%.+)?$/i.test(host);
}

function isFqdn(host: string): boolean {
  const h = host.endsWith('.') ? host.slice(0, -1) : host;
  if (h.length === 0 || h.length > 255) return false;
  return h.split('.').every((l) => l.length <= 63 && DNS1123_LABEL.test(l));
}

export function validateProxyAddress(addr: string): string | undefined {
  const hp = splitHostPort(addr);
  if (!hp) return `unable to split ${JSON.stringify(addr)}: missing port in address`;
  if (!/^\d+$/.test(hp.port)) return `port (${hp.port}) is not a number`;
  const port = Number(hp.port);
  if (port < 1 || port > 65535) return `port number ${port} must be in the range 1..65535`;
  if (!isFqdn(hp.host) && !isIp(hp.host)) return `${JSON.stringify(hp.host)} is not a valid hostname or an IP address`;
  return undefined;
}

export function validateProxyConfig(pc: ProxyConfig): string[] {
  const errs: string[] = [];
  if (!pc.configPath) errs.push('config path must be set');
  if (!pc.binaryPath) errs.push('binary path must be set');
  if (pc.serviceCluster !== undefined) {
    if (pc.serviceCluster === '') errs.push('service cluster must be specified');
  } else if (pc.tracingServiceName === undefined) {
    errs.push('oneof service cluster or tracing service name must be specified');
  }
  if (pc.drainDuration === undefined) errs.push('invalid drain duration: duration is not set');
  else if (pc.drainDuration < 1 || !Number.isInteger(pc.drainDuration)) {
    errs.push(`invalid drain duration ${formatProtoDuration(pc.drainDuration)}: must be at least 1ms and whole milliseconds`);
  }
  if (!pc.discoveryAddress) errs.push('discovery address must be set to the proxy discovery service');
  else {
    const e = validateProxyAddress(pc.discoveryAddress);
    if (e) errs.push(`invalid discovery address: ${e}`);
  }
  const t = pc.tracing;
  if (t?.lightstep) {
    const e = t.lightstep.address ? validateProxyAddress(t.lightstep.address) : 'address is required';
    if (e) errs.push(`invalid lightstep config: ${e}`);
    if (!t.lightstep.accessToken) errs.push('invalid lightstep config: access token is required');
  }
  for (const name of ['zipkin', 'datadog'] as const) {
    const tr = t?.[name];
    if (tr) {
      const e = tr.address ? validateProxyAddress(tr.address) : 'address is required';
      if (e) errs.push(`invalid ${name} config: ${e}`);
    }
  }
  if (t?.tlsSettings?.mode === 'MUTUAL' && !t.tlsSettings.credentialName) {
    if (!t.tlsSettings.clientCertificate) errs.push('invalid tracing TLS config: client certificate required for mutual tls');
    if (!t.tlsSettings.privateKey) errs.push('invalid tracing TLS config: private key required for mutual tls');
  }
  const addrs: [string, string | undefined][] = [
    ['statsd udp address', pc.statsdUdpAddress],
    ['envoy metrics service address', pc.envoyMetricsServiceAddress],
    ['envoy metrics service address', pc.envoyMetricsService?.address],
    ['envoy access log service address', pc.envoyAccessLogService?.address],
  ];
  for (const [what, a] of addrs) {
    if (a) {
      const e = validateProxyAddress(a);
      if (e) errs.push(`invalid ${what} ${JSON.stringify(a)}: ${e}`);
    }
  }
  if (pc.proxyAdminPort < 1 || pc.proxyAdminPort > 65535) errs.push(`invalid proxy admin port: port number ${pc.proxyAdminPort} must be in the range 1..65535`);
  if (pc.controlPlaneAuthPolicy !== 'NONE' && pc.controlPlaneAuthPolicy !== 'MUTUAL_TLS') {
    errs.push(`invalid authentication policy: unrecognized control plane auth policy "${pc.controlPlaneAuthPolicy}"`);
  }
  if (pc.statusPort < 1 || pc.statusPort > 65535) errs.push(`invalid status port: port number ${pc.statusPort} must be in the range 1..65535`);
  return errs;
}
