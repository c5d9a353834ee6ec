// The part of Envoy's v3 API that Istio's bootstrap uses, as TypeScript types. Field names are
// the proto field names (snake_case), which is what Istio's template writes and what Envoy's JSON
// reader accepts; the test suite parses every rendered bootstrap strictly against Envoy's own
// protos (test/support/envoy-schema.ts), so a typo here fails a test rather than Envoy's start.

/** `type.googleapis.com/<name>`: the `@type` of an Any. */
export const typeUrl = (name: string) => `type.googleapis.com/${name}`;

export const TYPES = {
  typedStruct: 'udpa.type.v1.TypedStruct',
  internalListener: 'envoy.extensions.bootstrap.internal_listener.v3.InternalListener',
  istioBootstrapExtension: 'istio.workload.BootstrapExtension',
  fileAccessLog: 'envoy.extensions.access_loggers.file.v3.FileAccessLog',
  httpProtocolOptions: 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
  httpConnectionManager: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  router: 'envoy.extensions.filters.http.router.v3.Router',
  compressor: 'envoy.extensions.filters.http.compressor.v3.Compressor',
  brotli: 'envoy.extensions.compression.brotli.compressor.v3.Brotli',
  zstd: 'envoy.extensions.compression.zstd.compressor.v3.Zstd',
  gzip: 'envoy.extensions.compression.gzip.compressor.v3.Gzip',
  tlsInspector: 'envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
  proxyProtocol: 'envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol',
  downstreamTlsContext: 'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  upstreamTlsContext: 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  downstreamConnections: 'envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig',
  zipkin: 'envoy.config.trace.v3.ZipkinConfig',
  lightstep: 'envoy.config.trace.v3.LightstepConfig',
  datadog: 'envoy.config.trace.v3.DatadogConfig',
  metricsService: 'envoy.config.metrics.v3.MetricsServiceConfig',
  statsdSink: 'envoy.config.metrics.v3.StatsdSink',
  leastRequest: 'envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest',
} as const;

/** An Any in ProtoJSON form: `@type` plus the message's own fields. */
export interface TypedConfig {
  '@type': string;
  [field: string]: unknown;
}

export interface SocketAddress {
  protocol?: 'TCP' | 'UDP';
  address: string;
  port_value: number;
}

export type Address = { socket_address: SocketAddress } | { pipe: { path: string } };

export interface Locality {
  region?: string;
  zone?: string;
  sub_zone?: string;
}

export interface Node {
  id: string;
  cluster: string;
  locality: Locality;
  metadata: Record<string, unknown>;
}

export interface ApiConfigSource {
  api_type: 'GRPC' | 'DELTA_GRPC';
  set_node_on_first_message_only?: boolean;
  transport_api_version: 'V3';
  grpc_services: { envoy_grpc: { cluster_name: string } }[];
}

export interface ConfigSource {
  ads?: Record<string, never>;
  api_config_source?: ApiConfigSource;
  initial_fetch_timeout?: string;
  resource_api_version: 'V3';
}

export interface SdsSecretConfig {
  name: string;
  sds_config: ConfigSource;
}

export interface StringMatcher {
  exact?: string;
  prefix?: string;
  suffix?: string;
  safe_regex?: { regex: string };
}

export interface CommonTlsContext {
  alpn_protocols?: string[];
  tls_certificate_sds_secret_configs?: SdsSecretConfig[];
  combined_validation_context?: {
    default_validation_context: { match_subject_alt_names?: StringMatcher[] };
    validation_context_sds_secret_config?: SdsSecretConfig;
  };
}

export interface TransportSocket {
  name: 'envoy.transport_sockets.tls';
  typed_config: TypedConfig;
}

export interface TcpKeepalive {
  keepalive_probes?: number;
  keepalive_time?: number;
  keepalive_interval?: number;
}

export interface UpstreamConnectionOptions {
  tcp_keepalive: TcpKeepalive;
}

export interface LbEndpoints {
  lb_endpoints: { endpoint: { address: Address } }[];
}

export interface Cluster {
  name: string;
  alt_stat_name: string;
  type: 'STATIC' | 'STRICT_DNS' | 'EDS';
  connect_timeout: string;
  lb_policy?: 'ROUND_ROBIN';
  load_assignment?: { cluster_name: string; endpoints: LbEndpoints[] };
  typed_extension_protocol_options?: Record<string, TypedConfig>;
  transport_socket?: TransportSocket;
  upstream_connection_options?: UpstreamConnectionOptions;
  respect_dns_ttl?: boolean;
  dns_lookup_family?: DnsLookupFamily;
  dns_refresh_rate?: string;
  circuit_breakers?: {
    thresholds: { priority: 'DEFAULT' | 'HIGH'; max_connections: number; max_pending_requests: number; max_requests: number }[];
  };
  max_requests_per_connection?: number;
  eds_cluster_config?: { eds_config: ConfigSource; service_name: string };
  load_balancing_policy?: { policies: { typed_extension_config: { name: string; typed_config: TypedConfig } }[] };
}

export type DnsLookupFamily = 'V4_ONLY' | 'V6_ONLY' | 'ALL';

export interface NamedTypedConfig {
  name: string;
  typed_config: TypedConfig;
}

export interface FilterChain {
  filter_chain_match?: { transport_protocol: string };
  transport_socket?: TransportSocket;
  filters: NamedTypedConfig[];
}

export interface Listener {
  name: string;
  address: { socket_address: SocketAddress };
  /**
   * Istio's template spells this one field in lowerCamel; Envoy's JSON reader accepts both
   * spellings, so we keep the template's for byte-level familiarity.
   */
  additionalAddresses?: { address: { socket_address: SocketAddress } }[];
  ignore_global_conn_limit: boolean;
  bypass_overload_manager: boolean;
  listener_filters?: NamedTypedConfig[];
  filter_chains: FilterChain[];
}

export interface StatsTag {
  tag_name: string;
  regex: string;
}

export interface HistogramBucketSetting {
  match: { prefix: string };
  buckets: number[];
}

export interface StatsConfig {
  use_all_default_tags: boolean;
  stats_tags: StatsTag[];
  histogram_bucket_settings?: HistogramBucketSetting[];
  stats_matcher: { inclusion_list: { patterns: StringMatcher[] } };
}

export type RuntimeValue = string | boolean;

export interface Bootstrap {
  application_log_config: { log_format: { text_format: string } | { json_format: Record<string, string> } };
  node: Node;
  layered_runtime: {
    layers: [{ name: 'global config'; static_layer: Record<string, RuntimeValue> }, { name: 'admin'; admin_layer: Record<string, never> }];
  };
  bootstrap_extensions: NamedTypedConfig[];
  stats_flush_interval?: string;
  /** Envoy ≥ 1.35 (absent from older API copies; see test/support/envoy-schema.ts). */
  stats_eviction_interval?: string;
  stats_config: StatsConfig;
  admin: {
    access_log: NamedTypedConfig[];
    profile_path: string;
    address: { socket_address: SocketAddress };
  };
  dynamic_resources: {
    lds_config: ConfigSource;
    cds_config: ConfigSource;
    ads_config: ApiConfigSource;
  };
  static_resources: { clusters: Cluster[]; listeners: Listener[] };
  overload_manager: { resource_monitors: NamedTypedConfig[] };
  tracing?: { http: NamedTypedConfig };
  stats_sinks?: NamedTypedConfig[];
  cluster_manager?: {
    local_cluster_name?: string;
    outlier_detection?: { event_log_path: string };
    load_stats_config?: Record<string, unknown>;
    enable_deferred_cluster_creation: true;
  };
  deferred_stat_options: { enable_deferred_creation_stats: true };
}
