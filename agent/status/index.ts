// Public surface of agent/status: the status server on statusPort (Istio's
// pilot/cmd/pilot-agent/status) and the pieces other subsystems plug into it — MetricsSource
// (istio_agent_* values pulled at scrape time) and ReadinessProbe (extra readiness checks, e.g.
// the DNS proxy's).
export { AgentMetrics, KNOWN_SOURCE_METRICS, METRIC_PREFIX, renderSourceMetrics, type MetricsSource, type ScrapeType, type SourceMetricInfo } from './agent-metrics.js';
export { APP_PROBER_PATTERN, AppProbersError, parseAppProbers, type AppProber, type AppProbers } from './app-probers.js';
export { MAX_PROBE_BODY_BYTES } from './app-probe.js';
export { MAX_APP_BODY_BYTES, multiTargetFormat, scrapeTimeoutMs, stripOpenMetricsEof } from './merge.js';
export {
  APP_ACCEPTS,
  ENVOY_ACCEPTS,
  FMT_OPENMETRICS_0_0_1,
  FMT_OPENMETRICS_1_0_0,
  FMT_TEXT,
  negotiateEncoding,
  negotiateMetricsFormat,
  parseMediaType,
  rewriteAccept,
  type ContentEncoding,
  type MetricsFormat,
} from './negotiate.js';
export { checkAll, dnsReadinessProbe, EnvoyReadinessProbe, fileWatcherPaths, GrpcBootstrapProbe, parseEnvoyStats, type EnvoyProbeOptions, type ReadinessProbe } from './ready.js';
export { MIN_COMPRESS_BYTES, ZSTD_AVAILABLE } from './respond.js';
export { istioReservedPortReason, normalizeScrapeConfig, parseScrapeTargets, ScrapeConfigError, type ScrapeConfig, type ScrapeTarget } from './scrape-config.js';
export { envoyAdminHost, isLoopback, probesUseIpv6, StatusConfigError, StatusServer, statusServerOptions, type Lifecycle, type StatusServerDeps, type StatusServerOptions } from './server.js';
