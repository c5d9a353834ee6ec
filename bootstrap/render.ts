// renderBootstrap: every section of Istio's stock bootstrap template (envoy_bootstrap.json),
// built as typed objects in the template's order (the template is Istio's
// tools/packaging/common/envoy_bootstrap.json, its parameters come from toTemplateParams in
// pkg/bootstrap/config.go). Pure: the inputs Istio reads from the process environment and the
// filesystem arrive in BootstrapInput, so the same function serves the agent, the conformance
// corpus and the property tests.
import { ipFamily as addrFamily } from '../lib/netip.js';
import { posix } from 'node:path';
import { parseGoInt } from '../lib/goparse.js';
import { TYPES, typeUrl, type Address, type Bootstrap, type Cluster, type DnsLookupFamily, type Listener, type NamedTypedConfig, type RuntimeValue, type SocketAddress } from './envoy-api.js';
import { FILES_SDS_CLUSTER, FILES_SDS_SOCKET_PATH, SDS_CLUSTER, WORKLOAD_SDS_DIR, XDS_CLUSTER, xdsSocketIn } from '../config/paths.js';
import { BootstrapError } from './errors.js';
import { buildNodeMetadata, dict, serviceCluster, type MetadataInput, type NodeMetadata } from './metadata.js';
import { statsConfig, statsIntervals } from './stats.js';
import { h2ProtocolOptions, istioDownstreamTls, LIGHTSTEP_TOKEN_FILE, upstreams } from './upstreams.js';

export const DEFAULT_GLOBAL_DOWNSTREAM_MAX_CONNECTIONS = 2147483647;
const FIPS_140_2 = 'fips-140-2';

export interface BootstrapInput extends MetadataInput {
  /** Envoy node.id: `<type>~<ip>~<pod>.<namespace>~<domain>`. */
  nodeId: string;
  compliancePolicy: string;
  /** `--log_as_json`: Envoy's own log lines in JSON too. */
  logAsJson: boolean;
  /** XDS_ROOT_CA; Istio passes it along but the stock template never prints it. */
  xdsRootCert?: string | undefined;
  /** Values Istio reads straight from the process environment. */
  process: {
    /** ISTIO_DELTA_XDS */
    deltaXds: boolean;
    /** ISTIO_DUAL_STACK */
    dualStack: boolean;
    /** ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL */
    statusPortProxyProtocol: boolean;
    /** HTTP_STRIP_FRAGMENT_FROM_PATH_UNSAFE_IF_DISABLED */
    stripFragmentFromPath: boolean;
    /** HOST_IP, substituted for a `$(HOST_IP)` tracer/statsd/metrics host. */
    hostIp: string;
  };
}

interface IpFamily {
  localhost: string;
  wildcard: string;
  dnsLookupFamily: DnsLookupFamily;
  additionalLocalhost?: string;
  additionalWildcard?: string;
}

/**
 * The template's localhost, wildcard and dns_lookup_family from the proxy's IPs (Istio's
 * toTemplateParams). IPv4-mapped IPv6 counts as IPv6; unparsable entries are skipped.
 */
export function ipFamily(ips: readonly string[], dualStack: boolean): IpFamily {
  const fams = ips.map((ip) => addrFamily(ip)).filter((f) => f !== 0);
  const v4: IpFamily = { localhost: '127.0.0.1', wildcard: '0.0.0.0', dnsLookupFamily: 'V4_ONLY' };
  if (fams.every((f) => f === 4)) return v4;
  if (fams.every((f) => f === 6)) return { localhost: '::1', wildcard: '::', dnsLookupFamily: 'V6_ONLY' };
  if (!dualStack) return v4;
  const first = ips.find((ip) => addrFamily(ip) !== 0) ?? '';
  const firstIsV6 = addrFamily(first) === 6 && !/^fe[89ab]/i.test(first);
  return firstIsV6
    ? { localhost: '::1', wildcard: '::', dnsLookupFamily: 'ALL', additionalLocalhost: '127.0.0.1', additionalWildcard: '0.0.0.0' }
    : { localhost: '127.0.0.1', wildcard: '0.0.0.0', dnsLookupFamily: 'ALL', additionalLocalhost: '::1', additionalWildcard: '::' };
}

/**
 * Istio's extractRuntimeFlags (pkg/bootstrap/config.go): defaults, FIPS, the strip-fragment
 * flag, then ProxyConfig runtimeValues.
 */
export function runtimeFlags(runtimeValues: Readonly<Record<string, string>> | undefined, compliancePolicy: string, stripFragmentFromPath: boolean): Record<string, RuntimeValue> {
  const flags = dict<RuntimeValue>([
    ['re2.max_program_size.error_level', '32768'],
    ['envoy.deprecated_features:envoy.config.listener.v3.Listener.hidden_envoy_deprecated_use_original_dst', true],
    ['envoy.reloadable_features.http_reject_path_with_fragment', false],
    ['envoy.reloadable_features.fixed_heap_use_allocated', true],
    ['envoy.reloadable_features.coalesce_lb_rebuilds_on_batch_update', false],
  ]);
  // Only 140-2 caps gRPC at TLS 1.2 (Istio's behaviour; 140-3 allows TLS 1.3).
  if (compliancePolicy === FIPS_140_2) flags['envoy.reloadable_features.google_grpc_disable_tls_13'] = true;
  // Istio's condition reads backwards and its value is the string "false"; both are kept
  // because Envoy's behaviour for existing users depends on them.
  if (!stripFragmentFromPath) flags['envoy.reloadable_features.http_strip_fragment_from_path_unsafe_if_disabled'] = 'false';
  for (const [k, v] of Object.entries(runtimeValues ?? {})) {
    if (v === '') delete flags[k];
    else flags[k] = v === 'true' ? true : v === 'false' ? false : v;
  }
  return flags;
}

function positiveInt(text: string, setting: string): number {
  const n = parseGoInt(text);
  if (n === undefined || n <= 0) throw new BootstrapError(`invalid ${setting} ${JSON.stringify(text)}: want a positive integer`);
  return n;
}

/**
 * Istio's precedence (getNodeMetadataOptions in pkg/bootstrap/config.go): connectionSettings →
 * proxyMetadata → runtimeValues → unlimited.
 */
export function globalDownstreamMaxConnections(pc: BootstrapInput['proxyConfig']): number {
  const cs = pc.connectionSettings;
  const limit = cs?.globalDownstreamConnectionLimit ?? cs?.global_downstream_connection_limit;
  if (limit !== undefined && limit !== null) {
    const n = typeof limit === 'number' ? limit : typeof limit === 'string' && /^-?\d+$/.test(limit) ? Number(limit) : NaN;
    if (!Number.isInteger(n) || n < -2147483648 || n > 2147483647) {
      throw new BootstrapError(`invalid ProxyConfig connectionSettings.globalDownstreamConnectionLimit ${JSON.stringify(limit)}: want a 32-bit integer`);
    }
    if (n > 0) return n;
  }
  const meta = pc.proxyMetadata?.ISTIO_META_GLOBAL_DOWNSTREAM_MAX_CONNECTIONS;
  if (meta !== undefined && meta !== '') return positiveInt(meta, 'ProxyConfig proxyMetadata ISTIO_META_GLOBAL_DOWNSTREAM_MAX_CONNECTIONS');
  const rt = pc.runtimeValues?.['overload.global_downstream_max_connections'];
  if (rt !== undefined && rt !== '') return positiveInt(rt, 'ProxyConfig runtimeValues overload.global_downstream_max_connections');
  return DEFAULT_GLOBAL_DOWNSTREAM_MAX_CONNECTIONS;
}

const tcp = (address: string, port: number): SocketAddress => ({ protocol: 'TCP', address, port_value: port });

function staticCluster(name: string, connectTimeout: string, address: Address): Cluster {
  return {
    name,
    alt_stat_name: `${name};`,
    type: 'STATIC',
    connect_timeout: connectTimeout,
    lb_policy: 'ROUND_ROBIN',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address } }] }] },
  };
}

function pipeCluster(name: string, path: string): Cluster {
  return { ...staticCluster(name, '1s', { pipe: { path } }), typed_extension_protocol_options: h2ProtocolOptions() };
}

const router = (): NamedTypedConfig => ({ name: 'envoy.filters.http.router', typed_config: { '@type': typeUrl(TYPES.router) } });

function compressor(algo: 'brotli' | 'zstd' | 'gzip'): NamedTypedConfig {
  return {
    name: `envoy.filters.http.compressor.${algo}`,
    typed_config: {
      '@type': typeUrl(TYPES.compressor),
      compressor_library: { name: `stats_${algo}`, typed_config: { '@type': typeUrl(TYPES[algo]) } },
      response_direction_config: {
        common_config: { content_type: ['text/plain', 'application/vnd.google.protobuf', 'application/openmetrics-text', 'application/openmetrics-protobuf'] },
      },
    },
  };
}

function httpListener(o: {
  address: string;
  additional?: string | undefined;
  port: number;
  statPrefix: string;
  routes: [prefix: string, cluster: string][];
  httpFilters?: NamedTypedConfig[];
  tls?: boolean;
  proxyProtocol?: boolean;
}): Listener {
  const l: Listener = {
    name: `${o.address}_${o.port}`,
    address: { socket_address: tcp(o.address, o.port) },
    ignore_global_conn_limit: true,
    bypass_overload_manager: true,
    filter_chains: [],
  };
  if (o.additional) l.additionalAddresses = [{ address: { socket_address: tcp(o.additional, o.port) } }];
  if (o.tls) l.listener_filters = [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': typeUrl(TYPES.tlsInspector) } }];
  if (o.proxyProtocol) {
    l.listener_filters = [{ name: 'envoy.listener.proxy_protocol', typed_config: { '@type': typeUrl(TYPES.proxyProtocol), allow_requests_without_proxy_protocol: true } }];
  }
  l.filter_chains.push({
    ...(o.tls ? { filter_chain_match: { transport_protocol: 'tls' }, transport_socket: istioDownstreamTls() } : {}),
    filters: [
      {
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': typeUrl(TYPES.httpConnectionManager),
          codec_type: 'AUTO',
          stat_prefix: o.statPrefix,
          route_config: {
            virtual_hosts: [{ name: 'backend', domains: ['*'], routes: o.routes.map(([prefix, cluster]) => ({ match: { prefix }, route: { cluster } })) }],
          },
          http_filters: [...(o.httpFilters ?? []), router()],
        },
      },
    ],
  });
  return l;
}

function metadataDiscoveryExtension(): NamedTypedConfig {
  return {
    name: 'metadata_discovery',
    typed_config: {
      '@type': typeUrl(TYPES.typedStruct),
      // Implemented only by Istio's Envoy build (istio-proxy), hence the TypedStruct wrapper.
      type_url: typeUrl(TYPES.istioBootstrapExtension),
      value: { config_source: { ads: {} } },
    },
  };
}

function logFormat(json: boolean): Bootstrap['application_log_config']['log_format'] {
  return json
    ? { json_format: { time: '%Y-%m-%dT%T.%fZ', level: '%l', scope: 'envoy %n', msg: '%j', caller: '%g:%#', thread: '%t' } }
    : { text_format: '%Y-%m-%dT%T.%fZ\t%l\tenvoy %n %g:%#\t%v\tthread=%t' };
}

function loadStatsConfig(raw: Record<string, unknown>, warn: (m: string) => void): Record<string, unknown> | undefined {
  const v = raw.LOAD_STATS_CONFIG_JSON;
  if (v === undefined) return undefined;
  if (typeof v !== 'string') {
    warn('Ignoring node metadata LOAD_STATS_CONFIG_JSON: want a JSON object encoded as a string');
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(v);
  } catch (err) {
    throw new BootstrapError(`invalid ISTIO_META_LOAD_STATS_CONFIG_JSON ${JSON.stringify(v)}`, { cause: err });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new BootstrapError(`invalid ISTIO_META_LOAD_STATS_CONFIG_JSON ${JSON.stringify(v)}: want a JSON object (an Envoy ApiConfigSource)`);
  }
  return parsed as Record<string, unknown>;
}

/** `<configPath>/lightstep_access_token.txt`, cleaned as Go's path.Join does. */
export function lightstepTokenPath(configPath: string): string {
  return posix.join(configPath, LIGHTSTEP_TOKEN_FILE);
}

/** Builds the bootstrap. Pure; throws BootstrapError on inputs Envoy could not use. */
export function renderBootstrap(input: BootstrapInput): Bootstrap {
  const warn = input.warn ?? (() => {});
  const pc = input.proxyConfig;
  const node = buildNodeMetadata(input);
  const meta: NodeMetadata = node.typed;
  const ips = meta.INSTANCE_IPS ?? [];

  let xdsType: 'GRPC' | 'DELTA_GRPC' = input.process.deltaXds ? 'DELTA_GRPC' : 'GRPC';
  let metadataDiscovery = meta.METADATA_DISCOVERY === true;
  if (input.nodeId.startsWith('waypoint~')) {
    xdsType = 'DELTA_GRPC';
    metadataDiscovery = true;
  }
  if (metadataDiscovery && xdsType === 'GRPC') {
    warn('disabling metadata discovery; not supported on SotW XDS');
    metadataDiscovery = false;
  }

  const fam = ipFamily(ips, input.process.dualStack);
  const cluster = serviceCluster(pc, meta);
  const annotations = meta.ANNOTATIONS ?? {};
  const stats = statsConfig({
    proxyConfig: pc,
    annotations,
    instanceIps: ips,
    metadataDiscovery,
    exitOnZeroActiveConnections: input.exitOnZeroActiveConnections,
    warn,
  });
  const intervals = statsIntervals(annotations, warn);
  const ups = upstreams({
    proxyConfig: pc,
    meta,
    cluster,
    dnsLookupFamily: fam.dnsLookupFamily,
    hostIp: input.process.hostIp,
    lightstepTokenPath: lightstepTokenPath(pc.configPath),
  });
  const maxConnections = globalDownstreamMaxConnections(pc);
  const lrs = loadStatsConfig(node.raw, warn);

  const clusters: Cluster[] = [
    staticCluster('prometheus_stats', '0.250s', { socket_address: tcp(fam.localhost, pc.proxyAdminPort) }),
    staticCluster('agent', '0.250s', { socket_address: tcp(fam.localhost, pc.statusPort) }),
    pipeCluster(SDS_CLUSTER, `${WORKLOAD_SDS_DIR}/${input.workloadIdentitySocketFile}`),
  ];
  if (Object.hasOwn(node.raw, 'file-credential')) clusters.push(pipeCluster(FILES_SDS_CLUSTER, FILES_SDS_SOCKET_PATH));
  clusters.push({
    ...staticCluster(XDS_CLUSTER, '1s', { pipe: { path: xdsSocketIn(pc.configPath) } }),
    circuit_breakers: {
      thresholds: (['DEFAULT', 'HIGH'] as const).map((priority) => ({ priority, max_connections: 100000, max_pending_requests: 100000, max_requests: 100000 })),
    },
    upstream_connection_options: { tcp_keepalive: { keepalive_time: 300 } },
    max_requests_per_connection: 1,
    typed_extension_protocol_options: h2ProtocolOptions(),
  });
  clusters.push(...ups.clusters);
  const selfDiscovery = meta.ENABLE_SELF_DISCOVERY === true;
  if (selfDiscovery) {
    clusters.push({
      name: 'local_cluster',
      alt_stat_name: 'local_cluster;',
      type: 'EDS',
      connect_timeout: '1s',
      eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: 'local_cluster' },
      load_balancing_policy: {
        policies: [
          {
            typed_extension_config: {
              name: 'envoy.load_balancing_policies.least_request',
              typed_config: { '@type': typeUrl(TYPES.leastRequest), locality_lb_config: { zone_aware_lb_config: { min_cluster_size: '1' } } },
            },
          },
        ],
      },
    });
  }

  const localhostOnly = pc.proxyMetadata?.METRICS_LOCALHOST_ACCESS_ONLY === 'true';
  const compression = pc.statsCompression ?? true;
  const listeners: Listener[] = [
    httpListener({
      address: localhostOnly ? fam.localhost : fam.wildcard,
      additional: localhostOnly ? fam.additionalLocalhost : fam.additionalWildcard,
      port: input.envoyPrometheusPort,
      statPrefix: 'stats',
      routes: [['/stats/prometheus', 'prometheus_stats']],
      httpFilters: compression ? [compressor('brotli'), compressor('zstd'), compressor('gzip')] : [],
    }),
  ];
  if (input.envoySecureMetricsPort) {
    listeners.push(
      httpListener({
        address: fam.wildcard,
        additional: fam.additionalWildcard,
        port: input.envoySecureMetricsPort,
        statPrefix: 'secure_stats',
        routes: [['/stats/prometheus', 'prometheus_stats']],
        tls: true,
      }),
    );
  }
  if (input.envoySecureMergedMetricsPort) {
    listeners.push(
      httpListener({
        address: fam.wildcard,
        additional: fam.additionalWildcard,
        port: input.envoySecureMergedMetricsPort,
        statPrefix: 'secure_merged_stats',
        routes: [
          ['/stats/prometheus', 'agent'],
          ['/metrics', 'agent'],
        ],
        tls: true,
      }),
    );
  }
  listeners.push(
    httpListener({
      address: fam.wildcard,
      additional: fam.additionalWildcard,
      port: input.envoyStatusPort,
      statPrefix: 'agent',
      routes: [['/healthz/ready', 'agent']],
      proxyProtocol: input.process.statusPortProxyProtocol,
    }),
  );

  const clusterManager: Bootstrap['cluster_manager'] =
    input.outlierLogPath || lrs || selfDiscovery
      ? {
          ...(selfDiscovery ? { local_cluster_name: 'local_cluster' } : {}),
          ...(input.outlierLogPath ? { outlier_detection: { event_log_path: input.outlierLogPath } } : {}),
          ...(lrs ? { load_stats_config: lrs } : {}),
          enable_deferred_cluster_creation: true,
        }
      : undefined;

  // Key order follows the template, so the written file reads like Istio's.
  return {
    application_log_config: { log_format: logFormat(input.logAsJson) },
    node: { id: input.nodeId, cluster, locality: node.locality, metadata: node.json },
    layered_runtime: {
      layers: [
        { name: 'global config', static_layer: runtimeFlags(pc.runtimeValues, input.compliancePolicy, input.process.stripFragmentFromPath) },
        { name: 'admin', admin_layer: {} },
      ],
    },
    bootstrap_extensions: [
      ...(metadataDiscovery ? [metadataDiscoveryExtension()] : []),
      {
        name: 'envoy.bootstrap.internal_listener',
        typed_config: { '@type': typeUrl(TYPES.typedStruct), type_url: typeUrl(TYPES.internalListener), value: { buffer_size_kb: 64 } },
      },
    ],
    ...intervals,
    stats_config: stats,
    admin: {
      access_log: [{ name: 'envoy.access_loggers.file', typed_config: { '@type': typeUrl(TYPES.fileAccessLog), path: '/dev/null' } }],
      profile_path: '/var/lib/istio/data/envoy.prof',
      address: { socket_address: { address: fam.localhost, port_value: pc.proxyAdminPort } },
    },
    dynamic_resources: {
      lds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' },
      cds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' },
      ads_config: {
        api_type: xdsType,
        set_node_on_first_message_only: true,
        transport_api_version: 'V3',
        grpc_services: [{ envoy_grpc: { cluster_name: XDS_CLUSTER } }],
      },
    },
    static_resources: { clusters, listeners },
    overload_manager: {
      resource_monitors: [
        {
          name: 'envoy.resource_monitors.global_downstream_max_connections',
          typed_config: { '@type': typeUrl(TYPES.downstreamConnections), max_active_downstream_connections: maxConnections },
        },
      ],
    },
    ...(ups.tracing ? { tracing: ups.tracing } : {}),
    ...(ups.statsSinks.length ? { stats_sinks: ups.statsSinks } : {}),
    ...(clusterManager ? { cluster_manager: clusterManager } : {}),
    deferred_stat_options: { enable_deferred_creation_stats: true },
  };
}
