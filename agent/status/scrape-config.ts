// ISTIO_PROMETHEUS_ANNOTATIONS (Istio's PrometheusScrapeConfiguration in
// pilot/cmd/pilot-agent/status/server.go): which application endpoints the merged
// `/stats/prometheus` scrapes. The injector copies the pod's prometheus.io annotations here and
// points Prometheus at the agent instead. Normalised once at start; every error is fatal there,
// because a bad target would otherwise fail (or loop) on every scrape. Pure.
import { AgentError } from '../../lib/errors.js';

export interface ScrapeTarget {
  port: string;
  path: string;
}

/** The normalised configuration; `targets` is what is scraped, in this order. */
export interface ScrapeConfig {
  scrape: string;
  /** the legacy single-target fields, normalised as Istio does (reported, not used to scrape) */
  port: string;
  path: string;
  targets: ScrapeTarget[];
}

export class ScrapeConfigError extends AgentError {
  static override readonly code: string = 'STATUS_SCRAPE_CONFIG';
}

const RESERVED: Record<string, string> = {
  '15000': 'Envoy admin port',
  '15001': 'Envoy outbound capture port',
  '15004': 'former agent XDS debug port (still reserved)',
  '15006': 'Envoy inbound capture port',
  '15008': 'HBONE tunnel port',
  '15020': 'agent status port (merged metrics)',
  '15021': 'Envoy health check port',
  '15053': 'agent DNS proxy port',
  '15090': 'Envoy Prometheus port',
};

/** Why an Istio port may not be a scrape target (string match on the canonical decimal, as Istio). */
export function istioReservedPortReason(port: string): string | undefined {
  return Object.prototype.hasOwnProperty.call(RESERVED, port) ? RESERVED[port] : undefined;
}

/**
 * A comma list of `port[:path]` targets (Istio's ParseScrapeTargets): empty path ⇒ `/metrics`,
 * whitespace trimmed, empty entries skipped, an empty port is an error, the path kept verbatim
 * (query included), duplicates kept.
 */
export function parseScrapeTargets(list: string): ScrapeTarget[] | undefined {
  const out: ScrapeTarget[] = [];
  for (const raw of list.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const i = item.indexOf(':');
    const port = (i < 0 ? item : item.slice(0, i)).trim();
    const path = i < 0 ? '' : item.slice(i + 1).trim();
    if (port === '') throw new ScrapeConfigError(`invalid scrape target ${JSON.stringify(item)}: empty port`);
    out.push({ port, path: path === '' ? '/metrics' : path });
  }
  return out.length === 0 ? undefined : out;
}

type Json = Record<string, unknown>;

/** Go's case-insensitive struct field match. */
function field(o: Json, name: string): unknown {
  if (name in o) return o[name];
  for (const [k, v] of Object.entries(o)) if (k.toLowerCase() === name) return v;
  return undefined;
}

function str(o: Json, name: string, where: string): string {
  const v = field(o, name);
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new ScrapeConfigError(`json: cannot unmarshal ${Array.isArray(v) ? 'array' : typeof v} into Go struct field ${where}.${name} of type string`);
  return v;
}

function portNumber(port: string): number | undefined {
  if (!/^\d+$/.test(port)) return undefined;
  const n = Number(port);
  return n >= 1 && n <= 65535 ? n : undefined;
}

function recursionError(statusPort: number): ScrapeConfigError {
  return new ScrapeConfigError(
    'invalid prometheus scrape configuration: application port is the same as agent port, which may lead to a recursive loop. ' +
      `Ensure pod does not have prometheus.io/port=${statusPort} label, or that injection is not happening multiple times`,
  );
}

/**
 * Decodes and normalises the variable's value. Returns undefined when scraping is off
 * (`"scrape": "false"`). Throws ScrapeConfigError naming the problem.
 *
 * Deviation from Istio (handleStats): the scrape uses the normalised targets, so
 * `{"targets":[{"port":"9100"}]}` scrapes `/metrics` (Istio: `/`), and with one target the
 * target is scraped rather than a different legacy top-level port.
 */
export function normalizeScrapeConfig(value: string, statusPort: number): ScrapeConfig | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(value);
  } catch (err) {
    throw new ScrapeConfigError(`failed to unmarshal ISTIO_PROMETHEUS_ANNOTATIONS`, { cause: err });
  }
  if (raw === null) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw new ScrapeConfigError(
      `failed to unmarshal ISTIO_PROMETHEUS_ANNOTATIONS: json: cannot unmarshal ${Array.isArray(raw) ? 'array' : typeof raw} into Go value of type status.PrometheusScrapeConfiguration`,
    );
  const o = raw as Json;
  const scrape = str(o, 'scrape', 'PrometheusScrapeConfiguration');
  let port = str(o, 'port', 'PrometheusScrapeConfiguration');
  let path = str(o, 'path', 'PrometheusScrapeConfiguration');
  const rawTargets = field(o, 'targets');
  if (rawTargets !== undefined && rawTargets !== null && !Array.isArray(rawTargets))
    throw new ScrapeConfigError(`failed to unmarshal ISTIO_PROMETHEUS_ANNOTATIONS: json: cannot unmarshal ${typeof rawTargets} into Go struct field PrometheusScrapeConfiguration.targets`);
  const targets: ScrapeTarget[] = ((rawTargets as unknown[] | undefined) ?? []).map((t) => {
    if (t === null || typeof t !== 'object' || Array.isArray(t)) throw new ScrapeConfigError('failed to unmarshal ISTIO_PROMETHEUS_ANNOTATIONS: targets entries must be objects');
    return { port: str(t as Json, 'port', 'ScrapeTarget'), path: str(t as Json, 'path', 'ScrapeTarget') };
  });
  if (scrape === 'false') return undefined;

  if (targets.length === 0) {
    // The legacy single-target form. Only Istio's own check (no recursion into the agent) plus
    // a valid port: Istio's reserved-port list applies to explicit targets only, so existing
    // pods keep starting.
    if (path === '') path = '/metrics';
    if (port === '') port = '80';
    const n = portNumber(port);
    if (n === undefined) throw new ScrapeConfigError(`invalid prometheus scrape configuration: port ${JSON.stringify(port)} is not a port number (1-65535)`);
    if (n === statusPort) throw recursionError(statusPort);
    return { scrape, port, path, targets: [{ port, path }] };
  }
  // The top-level fields follow targets[0] before its path is defaulted (Istio's order).
  if (port === '') port = targets[0]!.port;
  if (path === '') path = targets[0]!.path;
  for (const t of targets) {
    if (t.path === '') t.path = '/metrics';
    const n = portNumber(t.port);
    if (n === undefined) throw new ScrapeConfigError(`invalid prometheus scrape configuration: target port ${JSON.stringify(t.port)} is not a port number (1-65535)`);
    if (n === statusPort) throw recursionError(statusPort);
    const reason = istioReservedPortReason(String(n));
    if (reason) throw new ScrapeConfigError(`invalid prometheus scrape configuration: target port ${t.port} is reserved by Istio (${reason})`);
  }
  return { scrape, port, path, targets };
}
