// The agent's own metrics, the first part of every merged scrape (Istio's handleStats in
// pilot/cmd/pilot-agent/status/server.go), with Istio's `istio_agent_*` names
// (pilot/cmd/pilot-agent/metrics/metrics.go). prom-client keeps the process/runtime collectors
// and the scrape counters; it is imported on the first scrape, never on the way to Envoy's exec.
// Other subsystems' values are pulled at scrape time from MetricsSources.

/**
 * A subsystem that exposes Istio's istio_agent_* metrics. `metrics()` is called at every scrape
 * and returns current values by name *without* the `istio_agent_` prefix (e.g.
 * `num_outgoing_requests`, `xds_proxy_requests`); `undefined` leaves a metric out of this scrape.
 * Types, help texts and constant labels come from KNOWN_SOURCE_METRICS; a name not listed there is
 * exported untyped. When several sources report the same name, counters are added up and the
 * first gauge wins.
 */
export interface MetricsSource {
  metrics(): Record<string, number | undefined>;
}

export interface SourceMetricInfo {
  type: 'counter' | 'gauge';
  help: string;
  /** constant labels Istio puts on this series */
  labels?: Record<string, string>;
}

/**
 * Istio's names and shapes for the values subsystems report
 * (security/pkg/nodeagent/cache/monitoring.go, pkg/istio-agent/metrics/metrics.go).
 */
export const KNOWN_SOURCE_METRICS: Readonly<Record<string, SourceMetricInfo>> = {
  cert_expiry_seconds: {
    type: 'gauge',
    help: 'The time remaining, in seconds, before the certificate chain will expire. A negative value indicates the cert is expired.',
    labels: { resource_name: 'default' },
  },
  outgoing_latency: { type: 'counter', help: 'The latency of outgoing requests (e.g. to a token exchange server, CA, etc.) in milliseconds.', labels: { request_type: 'csr' } },
  num_outgoing_requests: { type: 'counter', help: 'Number of total outgoing requests (e.g. to a token exchange server, CA, etc.)', labels: { request_type: 'csr' } },
  num_failed_outgoing_requests: { type: 'counter', help: 'Number of failed outgoing requests (e.g. to a token exchange server, CA, etc.)', labels: { request_type: 'csr' } },
  num_outgoing_retries: { type: 'counter', help: 'Number of outgoing retry requests (e.g. to a token exchange server, CA, etc.)', labels: { request_type: 'csr' } },
  num_file_watcher_failures_total: { type: 'counter', help: 'Number of times file watcher failed to add watchers' },
  num_file_secret_failures_total: { type: 'counter', help: 'Number of times secret generation failed for files' },
  pilot_xds_expired_nonce: { type: 'counter', help: 'Total number of XDS requests with an expired nonce.', labels: { type: 'sds' } },
  pilot_total_xds_rejects: { type: 'counter', help: 'Total number of XDS responses from pilot rejected by proxy.', labels: { type: 'sds' } },
  xds_proxy_requests: { type: 'counter', help: 'The total number of Xds Proxy Requests' },
  xds_proxy_responses: { type: 'counter', help: 'The total number of Xds Proxy Responses' },
  istiod_connection_failures: { type: 'counter', help: 'The total number of connection failures to Istiod' },
  istiod_connection_terminations: { type: 'counter', help: 'The total number of connection errors to Istiod' },
  envoy_connection_terminations: { type: 'counter', help: 'The total number of connection errors from envoy' },
};

export const METRIC_PREFIX = 'istio_agent_';

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const escapeHelp = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

/** The sources' values in the Prometheus text format (0.0.4), prefixed. Pure. */
export function renderSourceMetrics(sources: readonly MetricsSource[], known: Readonly<Record<string, SourceMetricInfo>> = KNOWN_SOURCE_METRICS): string {
  const values = new Map<string, number>();
  for (const s of sources) {
    let m: Record<string, number | undefined>;
    try {
      m = s.metrics();
    } catch {
      continue; // a failing source must not cost the scrape
    }
    for (const [name, v] of Object.entries(m)) {
      if (v === undefined || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) continue;
      const prev = values.get(name);
      if (prev === undefined) values.set(name, v);
      else if (known[name]?.type === 'counter') values.set(name, prev + v);
    }
  }
  let out = '';
  for (const [name, v] of [...values].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const info = known[name];
    const full = METRIC_PREFIX + name;
    if (info) out += `# HELP ${full} ${escapeHelp(info.help)}\n# TYPE ${full} ${info.type}\n`;
    else out += `# TYPE ${full} untyped\n`;
    const labels = info?.labels
      ? `{${Object.entries(info.labels)
          .map(([k, lv]) => `${k}="${escapeLabel(lv)}"`)
          .join(',')}}`
      : '';
    out += `${full}${labels} ${formatValue(v)}\n`;
  }
  return out;
}

export type ScrapeType = 'envoy' | 'application' | 'agent';

type Prom = typeof import('prom-client');

/**
 * Counters the status server keeps from its first request on, and the prom-client registry that
 * renders them with the process/runtime collectors (created on the first render).
 */
export class AgentMetrics {
  scrapes = 0;
  readonly failures: Record<ScrapeType, number> = { envoy: 0, application: 0, agent: 0 };
  /** seconds from process start to the first time Envoy was live (undefined until then) */
  startupSeconds: number | undefined;
  #prom: Promise<{ prom: Prom; registry: import('prom-client').Registry }> | undefined;
  #startupGauge = false;

  constructor(private readonly sources: () => readonly MetricsSource[]) {}

  #init(): Promise<{ prom: Prom; registry: import('prom-client').Registry }> {
    return (this.#prom ??= import('prom-client').then((m: Prom) => {
      const prom = (m as unknown as { default?: Prom }).default ?? m;
      const registry = new prom.Registry();
      prom.collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
      // The counters live in plain fields (they count before prom-client is loaded); prom-client
      // reads them when it renders.
      const scrapes = () => this.scrapes;
      const failures = () => this.failures;
      new prom.Counter({
        name: `${METRIC_PREFIX}scrapes_total`,
        help: 'The total number of scrapes.',
        registers: [registry],
        collect() {
          this.reset();
          this.inc(scrapes());
        },
      });
      new prom.Counter({
        name: `${METRIC_PREFIX}scrape_failures_total`,
        help: 'The total number of failed scrapes.',
        labelNames: ['type'],
        registers: [registry],
        collect() {
          this.reset();
          for (const [type, n] of Object.entries(failures())) if (n > 0) this.inc({ type }, n);
        },
      });
      return { prom, registry };
    }));
  }

  /** The agent's metrics in the Prometheus text format. */
  async render(): Promise<string> {
    const { prom, registry } = await this.#init();
    if (this.startupSeconds !== undefined && !this.#startupGauge) {
      // Registered once there is a value: Istio does not export the gauge before readiness.
      const startup = this.startupSeconds;
      new prom.Gauge({ name: `${METRIC_PREFIX}startup_duration_seconds`, help: 'The time from the process starting to being marked ready.', registers: [registry] }).set(startup);
      this.#startupGauge = true;
    }
    return (await registry.metrics()) + renderSourceMetrics(this.sources());
  }
}
