// Clusters and sections for the services Envoy itself talks to outside the mesh: the tracer
// (zipkin / lightstep / datadog), the metrics service, the access log service and statsd
// (Istio's getProxyConfigOptions in pkg/bootstrap/config.go, and the converters of
// pkg/bootstrap/option/convert.go).
import { splitHostPort } from '../lib/hostport.js';
import type { ClientTlsSettings, ProxyConfig, RemoteService } from '../config/index.js';
import {
  TYPES,
  typeUrl,
  type Cluster,
  type CommonTlsContext,
  type DnsLookupFamily,
  type NamedTypedConfig,
  type SdsSecretConfig,
  type SocketAddress,
  type TransportSocket,
  type TypedConfig,
  type UpstreamConnectionOptions,
} from './envoy-api.js';
import { BootstrapError } from './errors.js';
import type { NodeMetadata } from './metadata.js';

export const LIGHTSTEP_TOKEN_FILE = 'lightstep_access_token.txt';
/** Tracers ProxyConfig can name (istio.mesh.v1alpha1.Tracing oneof `tracer`). */
export const KNOWN_TRACERS = ['zipkin', 'lightstep', 'datadog', 'stackdriver', 'openCensusAgent'] as const;
const TRACING_FIELDS = new Set<string>([...KNOWN_TRACERS, 'customTags', 'maxPathTagLength', 'sampling', 'tlsSettings', 'enableIstioTags']);

export const h2ProtocolOptions = (): Record<string, TypedConfig> => ({
  [TYPES.httpProtocolOptions]: {
    '@type': typeUrl(TYPES.httpProtocolOptions),
    explicit_http_config: { http2_protocol_options: {} },
  },
});

/**
 * `host:port` → socket address, with Go's SplitHostPort rules (IPv6 hosts bracketed). A host of
 * exactly `$(HOST_IP)` becomes HOST_IP when set, as Kubernetes would have expanded it. Istio
 * pastes the port in as text, so `host:` or `host:abc` produce invalid JSON there; here they are
 * an error naming the setting.
 */
export function socketAddress(setting: string, addr: string, hostIp: string): SocketAddress {
  const hp = splitHostPort(addr);
  if (!hp) throw new BootstrapError(`unable to parse ${setting} address ${JSON.stringify(addr)}: want host:port (IPv6 hosts in brackets)`);
  if (!/^\d+$/.test(hp.port) || Number(hp.port) > 65535) {
    throw new BootstrapError(`unable to parse ${setting} address ${JSON.stringify(addr)}: port ${JSON.stringify(hp.port)} is not a number from 0 to 65535`);
  }
  const host = hp.host === '$(HOST_IP)' && hostIp !== '' ? hostIp : hp.host;
  if (host === '') throw new BootstrapError(`unable to parse ${setting} address ${JSON.stringify(addr)}: empty host`);
  return { address: host, port_value: Number(hp.port) };
}

function sdsConfig(name: string, istioResource: boolean): SdsSecretConfig {
  return {
    name,
    sds_config: {
      api_config_source: {
        api_type: 'GRPC',
        grpc_services: [{ envoy_grpc: { cluster_name: 'sds-grpc' } }],
        set_node_on_first_message_only: true,
        transport_api_version: 'V3',
      },
      // The workload certificate and root come from our own SDS server and may take a moment;
      // file-backed resources are immediate.
      ...(istioResource ? { initial_fetch_timeout: '0s' } : {}),
      resource_api_version: 'V3',
    },
  };
}

/** The downstream mTLS context of the secure metrics listeners (workload cert + ROOTCA). */
export function istioDownstreamTls(): TransportSocket {
  const shared = (name: string) => sdsConfig(name, false);
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': typeUrl(TYPES.downstreamTlsContext),
      require_client_certificate: true,
      common_tls_context: {
        tls_certificate_sds_secret_configs: [shared('default')],
        combined_validation_context: { default_validation_context: {}, validation_context_sds_secret_config: shared('ROOTCA') },
      },
    },
  };
}

/**
 * ClientTLSSettings → upstream TLS transport socket (Istio's tlsContextConvert in
 * pkg/bootstrap/option/convert.go), or undefined for no TLS. `sniName` is the default SNI for
 * ISTIO_MUTUAL; ALPN is kept only for HTTP/2 upstreams.
 */
export function upstreamTls(setting: string, tls: ClientTlsSettings | undefined, sniName: string, meta: NodeMetadata, isH2: boolean): TransportSocket | undefined {
  if (!tls) return undefined;
  const sans = tls.subjectAltNames ?? [];
  const defaultValidation = sans.length ? { match_subject_alt_names: sans.map((exact) => ({ exact })) } : {};
  const ctx: CommonTlsContext = {};
  let sni: string | undefined;
  const ca = meta.TLS_CLIENT_ROOT_CERT || tls.caCertificates || '';
  switch (tls.mode) {
    case 'SIMPLE':
    case 'MUTUAL': {
      if (tls.mode === 'MUTUAL') {
        const cert = meta.TLS_CLIENT_CERT_CHAIN || tls.clientCertificate || '';
        const key = meta.TLS_CLIENT_KEY || tls.privateKey || '';
        if (cert && key) ctx.tls_certificate_sds_secret_configs = [sdsConfig(`file-cert:${cert}~${key}`, false)];
      }
      // Istio leaves the validation SDS config out when no CA is known, which Envoy rejects
      // (the combined context requires it); a clear error beats an Envoy that will not start.
      if (!ca) {
        throw new BootstrapError(`${setting} TLS mode ${tls.mode} needs a CA: set caCertificates (or ISTIO_META_TLS_CLIENT_ROOT_CERT), or use ISTIO_MUTUAL`);
      }
      ctx.combined_validation_context = { default_validation_context: defaultValidation, validation_context_sds_secret_config: sdsConfig(`file-root:${ca}`, false) };
      ctx.alpn_protocols = ['h2'];
      sni = tls.sni;
      break;
    }
    case 'ISTIO_MUTUAL':
      ctx.tls_certificate_sds_secret_configs = [sdsConfig('default', true)];
      ctx.combined_validation_context = { default_validation_context: defaultValidation, validation_context_sds_secret_config: sdsConfig('ROOTCA', true) };
      ctx.alpn_protocols = ['istio', 'h2'];
      sni = tls.sni || sniName;
      break;
    default:
      return undefined;
  }
  if (!isH2) delete ctx.alpn_protocols;
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: { '@type': typeUrl(TYPES.upstreamTlsContext), common_tls_context: ctx, ...(sni ? { sni } : {}) },
  };
}

/**
 * TCP keepalive for the metrics/access-log clusters. Istio writes each value as `{"value": N}`,
 * which a strict ProtoJSON reader rejects (UInt32Value is a bare number); we write numbers.
 */
export function keepalive(k: RemoteService['tcpKeepalive']): UpstreamConnectionOptions | undefined {
  if (!k) return undefined;
  const ka: UpstreamConnectionOptions['tcp_keepalive'] = {};
  if ((k.probes ?? 0) > 0) ka.keepalive_probes = k.probes!;
  const secs = (ms: number | undefined) => Math.trunc((ms ?? 0) / 1000);
  if (secs(k.time) > 0) ka.keepalive_time = secs(k.time);
  if (secs(k.interval) > 0) ka.keepalive_interval = secs(k.interval);
  return { tcp_keepalive: ka };
}

function dnsCluster(name: string, address: SocketAddress, family: DnsLookupFamily): Cluster {
  return {
    name,
    alt_stat_name: `${name};`,
    type: 'STRICT_DNS',
    respect_dns_ttl: true,
    dns_lookup_family: family,
    connect_timeout: '1s',
    lb_policy: 'ROUND_ROBIN',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: address } } }] }] },
  };
}

export interface UpstreamsInput {
  proxyConfig: ProxyConfig;
  meta: NodeMetadata;
  /** node.cluster: the Datadog service name. */
  cluster: string;
  dnsLookupFamily: DnsLookupFamily;
  hostIp: string;
  /** Path of the Lightstep token file Envoy reads (written by the I/O shell). */
  lightstepTokenPath: string;
}

export interface Upstreams {
  clusters: Cluster[];
  tracing?: { http: NamedTypedConfig };
  statsSinks: NamedTypedConfig[];
}

function checkTracing(pc: ProxyConfig): void {
  const t = pc.tracing as Record<string, unknown> | undefined;
  if (!t) return;
  const unknown = Object.keys(t).filter((k) => !TRACING_FIELDS.has(k));
  if (unknown.length) {
    throw new BootstrapError(`unknown tracer ${unknown.map((u) => JSON.stringify(u)).join(', ')} in ProxyConfig tracing; supported tracers: ${KNOWN_TRACERS.join(', ')}`);
  }
}

export function upstreams(i: UpstreamsInput): Upstreams {
  const pc = i.proxyConfig;
  const out: Upstreams = { clusters: [], statsSinks: [] };
  checkTracing(pc);
  const t = pc.tracing;
  if (t) {
    // One tracer at most: ProxyConfig's `tracer` is a oneof, so at most one of these is set.
    if (t.zipkin) {
      const c = dnsCluster('zipkin', socketAddress('zipkin tracer', t.zipkin.address ?? '', i.hostIp), i.dnsLookupFamily);
      c.dns_refresh_rate = '30s';
      withTransport(c, upstreamTls('ProxyConfig tracing.tlsSettings', t.tlsSettings, 'tracer', i.meta, false));
      out.clusters.push(c);
      out.tracing = {
        http: {
          name: 'envoy.tracers.zipkin',
          typed_config: {
            '@type': typeUrl(TYPES.zipkin),
            collector_cluster: 'zipkin',
            collector_endpoint: '/api/v2/spans',
            collector_endpoint_version: 'HTTP_JSON',
            trace_id_128bit: true,
            shared_span_context: false,
          },
        },
      };
    } else if (t.lightstep) {
      const c = dnsCluster('lightstep', socketAddress('lightstep tracer', t.lightstep.address ?? '', i.hostIp), i.dnsLookupFamily);
      c.typed_extension_protocol_options = h2ProtocolOptions();
      withTransport(c, upstreamTls('ProxyConfig tracing.tlsSettings', t.tlsSettings, 'tracer', i.meta, true));
      out.clusters.push(c);
      out.tracing = {
        http: {
          name: 'envoy.tracers.lightstep',
          typed_config: { '@type': typeUrl(TYPES.lightstep), collector_cluster: 'lightstep', access_token_file: i.lightstepTokenPath },
        },
      };
    } else if (t.datadog) {
      const c = dnsCluster('datadog_agent', socketAddress('datadog tracer', t.datadog.address ?? '', i.hostIp), i.dnsLookupFamily);
      withTransport(c, upstreamTls('ProxyConfig tracing.tlsSettings', t.tlsSettings, 'tracer', i.meta, false));
      out.clusters.push(c);
      out.tracing = {
        http: { name: 'envoy.tracers.datadog', typed_config: { '@type': typeUrl(TYPES.datadog), collector_cluster: 'datadog_agent', service_name: i.cluster } },
      };
    } else if (t.stackdriver) {
      // Istio insists on a GCP project but no longer emits a bootstrap tracer for Stackdriver
      // (Envoy dropped OpenCensus); tracing is configured over xDS instead.
      if (!i.meta.PLATFORM_METADATA?.gcp_project) {
        throw new BootstrapError('unable to process Stackdriver tracer: missing GCP Project (platform metadata gcp_project; set GCP_METADATA or run on GCP)');
      }
    }
    // openCensusAgent: configured over xDS by istiod; nothing in the bootstrap (as Istio).
  }

  const ms = pc.envoyMetricsService;
  if (ms?.address) {
    out.clusters.push(remoteServiceCluster('envoy_metrics_service', 'envoyMetricsService', ms, i));
    out.statsSinks.push({
      name: 'envoy.stat_sinks.metrics_service',
      typed_config: { '@type': typeUrl(TYPES.metricsService), transport_api_version: 'V3', grpc_service: { envoy_grpc: { cluster_name: 'envoy_metrics_service' } } },
    });
  }
  // The deprecated envoyMetricsServiceAddress crashes Istio's agent when set alone (it reads the
  // message's address instead); it is ignored here, with the message form the one that works.
  const als = pc.envoyAccessLogService;
  if (als?.address) out.clusters.push(remoteServiceCluster('envoy_accesslog_service', 'envoyAccessLogService', als, i));
  if (pc.statsdUdpAddress) {
    out.statsSinks.push({
      name: 'envoy.stat_sinks.statsd',
      typed_config: { '@type': typeUrl(TYPES.statsdSink), address: { socket_address: socketAddress('statsd', pc.statsdUdpAddress, i.hostIp) } },
    });
  }
  return out;
}

function withTransport(c: Cluster, ts: TransportSocket | undefined): void {
  if (ts) c.transport_socket = ts;
}

function remoteServiceCluster(name: string, field: 'envoyMetricsService' | 'envoyAccessLogService', rs: RemoteService, i: UpstreamsInput): Cluster {
  const c = dnsCluster(name, socketAddress(`ProxyConfig ${field}`, rs.address!, i.hostIp), i.dnsLookupFamily);
  withTransport(c, upstreamTls(`ProxyConfig ${field}.tlsSettings`, rs.tlsSettings, name, i.meta, true));
  const ka = keepalive(rs.tcpKeepalive);
  if (ka) c.upstream_connection_options = ka;
  c.typed_extension_protocol_options = h2ProtocolOptions();
  return c;
}
