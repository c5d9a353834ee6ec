// Public surface of agent/xds: the XDS proxy between Envoy (or a proxyless gRPC application) and
// istiod, and the proxyless gRPC bootstrap file. The subsystem, the bootstrap and the type URLs
// load nothing heavy; the relay itself (proxy.ts, stream.ts, wire.ts) is imported by the
// subsystem once Envoy runs.
export { XdsSubsystem, dnsProxyEnabled, xdsSocketPath, type XdsSubsystemDeps } from './subsystem.js';
export { grpcBootstrap, serializeGrpcBootstrap, writeGrpcBootstrap, SERVER_LISTENER_NAME_TEMPLATE, type GrpcBootstrap, type GrpcBootstrapInput } from './grpc-bootstrap.js';
export { XdsProxyMetrics, classifyTermination, type Termination } from './metrics.js';
export { checkXdsRoot, jwtExpiry, xdsUpstreamConfig, XdsConfigError, type XdsUpstreamConfig } from './upstream.js';
export {
  CLUSTER_TYPE,
  ENDPOINT_TYPE,
  EXTENSION_CONFIG_TYPE,
  HEALTH_INFO_TYPE,
  LISTENER_TYPE,
  NAME_TABLE_TYPE,
  PROXY_CONFIG_TYPE,
  ROUTE_TYPE,
  WORKLOAD_TYPE,
  forwardedToEnvoy,
  isEnvoyType,
  shortType,
} from './types.js';
export type { HealthEvent, ResourceHandler } from './stream.js';
export type { NameInfo, NameTable } from './nds-pcds.js';
