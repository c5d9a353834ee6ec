// stats_config (tag extraction, inclusion matcher, histogram buckets) and the stats flush and
// eviction intervals, from ProxyConfig and the sidecar.istio.io/* pod annotations (Istio's
// getStatsOptions in pkg/bootstrap/config.go).
import { formatProtoDuration, type ProxyConfig } from '../config/index.js';
import { parseGoDuration } from '../lib/goparse.js';
import type { HistogramBucketSetting, StatsConfig, StatsTag, StringMatcher } from './envoy-api.js';
import { byBytes } from './metadata.js';
import { errorMessage } from '../lib/errors.js';

export const ANNOTATION_EXTRA_STAT_TAGS = 'sidecar.istio.io/extraStatTags';
export const ANNOTATION_STATS_PREFIXES = 'sidecar.istio.io/statsInclusionPrefixes';
export const ANNOTATION_STATS_SUFFIXES = 'sidecar.istio.io/statsInclusionSuffixes';
export const ANNOTATION_STATS_REGEXPS = 'sidecar.istio.io/statsInclusionRegexps';
export const ANNOTATION_HISTOGRAM_BUCKETS = 'sidecar.istio.io/statsHistogramBuckets';
export const ANNOTATION_FLUSH_INTERVAL = 'sidecar.istio.io/statsFlushInterval';
export const ANNOTATION_EVICTION_INTERVAL = 'sidecar.istio.io/statsEvictionInterval';

/** Needed by the agent's readiness check and Istio's dashboards. */
const REQUIRED_PREFIXES = ['cluster_manager', 'listener_manager', 'server', 'cluster.xds-grpc', 'wasm'];
const RBAC_SUFFIXES = ['rbac.allowed', 'rbac.denied', 'shadow_allowed', 'shadow_denied'];
/** The exit-on-zero-connections drain watches this one. */
const DRAIN_SUFFIX = 'downstream_cx_active';
const REQUIRED_REGEXPS = ['vhost\\..*\\.route\\..*'];

const DEFAULT_FLUSH_MS = 5_000;
/** Envoy's own bounds on stats_flush_interval: at least 1 ms, less than 5 minutes. */
const MAX_FLUSH_MS = 300_000;

const tag = (tag_name: string, regex: string): StatsTag => ({ tag_name, regex });

/** Istio's tags that come before the extra tags. */
const LEADING_TAGS: readonly StatsTag[] = [
  tag('cluster_name', '^cluster(\\.(.+);)'),
  tag('http_conn_manager_prefix', '^http\\.(((?:[_.[:digit:]\\w]*|[_\\[\\]aAbBcCdDeEfF[:digit:]\\w\\:]*));\\.)'),
  tag('thread_name', '^server(\\.(.+))\\.watchdog'),
  tag('tcp_prefix', '^tcp\\.((.*?)\\.)\\w+?$'),
  tag('response_code', '_rq(_(\\d{3}))$'),
  tag('response_code_class', '_rq(_(\\dxx))$'),
  tag('http_conn_manager_listener_prefix', '^listener(?=\\.).*?\\.http\\.(((?:[_.[:digit:]]*|[_\\[\\]aAbBcCdDeEfF[:digit:]]*))\\.)'),
  tag('listener_address', '^listener\\.(((?:[_.[:digit:]]*|[_\\[\\]aAbBcCdDeEfF[:digit:]]*))\\.)'),
  tag('mongo_prefix', '^mongo\\.(.+?)\\.(collection|cmd|cx_|op_|delays_|decoding_)(.*?)$'),
];

const TRAILING_TAGS: readonly StatsTag[] = [
  tag('cache', '(cache\\.(.+?)\\.)'),
  tag('component', '(component\\.(.+?)\\.)'),
  tag('tag', '(tag\\.(.+?);\\.)'),
  tag('wasm_filter', '(wasm_filter\\.(.+?)\\.)'),
  tag('authz_enforce_result', 'rbac(\\.(allowed|denied))'),
  tag('authz_dry_run_action', '(\\.istio_dry_run_(allow|deny)_)'),
  tag('authz_dry_run_result', '(\\.shadow_(allowed|denied))'),
];

/** Regex metacharacters, escaped so an extra tag name is matched literally. */
function escapeRegex(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

export interface StatsInput {
  proxyConfig: ProxyConfig;
  /** From the annotations file (ANNOTATIONS metadata), never from ISTIO_METAJSON_*. */
  annotations: Readonly<Record<string, string>>;
  /** De-duplicated instance IPs, for `{pod_ip}`. */
  instanceIps: readonly string[];
  metadataDiscovery: boolean;
  exitOnZeroActiveConnections: boolean;
  warn: (message: string) => void;
}

/**
 * The user list (annotation if non-empty, else ProxyConfig) plus the required entries, with
 * `{pod_ip}` expanded once per instance IP. Empty items are dropped: Istio would emit an empty
 * prefix, which Envoy rejects (StringMatcher needs a non-empty pattern) — a fix, not a port.
 */
function inclusionList(annotation: string | undefined, fromProxyConfig: readonly string[] | undefined, required: readonly string[], ips: readonly string[]): string[] {
  const user = annotation ? annotation.split(',') : (fromProxyConfig ?? []);
  const out: string[] = [];
  for (const item of [...user, ...required]) {
    if (item === '') continue;
    if (item.includes('{pod_ip}')) for (const ip of ips) out.push(item.replaceAll('{pod_ip}', ip));
    else out.push(item);
  }
  return out;
}

function extraStatTags(pc: ProxyConfig, annotation: string | undefined): string[] {
  const tags = [...(pc.extraStatTags ?? []), ...(annotation ?? '').split(',')].filter((t) => t !== '');
  return [...new Set(tags)];
}

function histogramBuckets(annotation: string | undefined, warn: (m: string) => void): HistogramBucketSetting[] | undefined {
  if (annotation === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(annotation);
  } catch (err) {
    warn(`Failed to unmarshal histogram buckets ${annotation}: ${errorMessage(err)}`);
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    warn(`Failed to unmarshal histogram buckets ${annotation}: want an object of prefix → list of numbers`);
    return undefined;
  }
  const out: HistogramBucketSetting[] = [];
  for (const [prefix, buckets] of Object.entries(parsed)) {
    // Envoy requires a non-empty list of distinct positive bounds; anything else would stop
    // Envoy from starting, so it is dropped here with a warning instead.
    const ok = prefix !== '' && Array.isArray(buckets) && buckets.length > 0 && buckets.every((b) => typeof b === 'number' && b > 0) && new Set(buckets).size === buckets.length;
    if (!ok) {
      warn(`Ignoring histogram buckets for prefix ${JSON.stringify(prefix)} in ${ANNOTATION_HISTOGRAM_BUCKETS}: want a non-empty list of distinct positive numbers`);
      continue;
    }
    out.push({ match: { prefix }, buckets: [...(buckets as number[])] });
  }
  out.sort((a, b) => byBytes(a.match.prefix, b.match.prefix));
  return out.length ? out : undefined;
}

export function statsConfig(i: StatsInput): StatsConfig {
  const a = i.annotations;
  const sm = i.proxyConfig.proxyStatsMatcher;
  const patterns: StringMatcher[] = [{ prefix: 'reporter=' }];
  if (i.metadataDiscovery) patterns.push({ prefix: 'workload_discovery' });
  for (const p of inclusionList(a[ANNOTATION_STATS_PREFIXES], sm?.inclusionPrefixes, REQUIRED_PREFIXES, i.instanceIps)) patterns.push({ prefix: p });
  const suffixes = i.exitOnZeroActiveConnections ? [...RBAC_SUFFIXES, DRAIN_SUFFIX] : RBAC_SUFFIXES;
  for (const s of inclusionList(a[ANNOTATION_STATS_SUFFIXES], sm?.inclusionSuffixes, suffixes, i.instanceIps)) patterns.push({ suffix: s });
  for (const r of inclusionList(a[ANNOTATION_STATS_REGEXPS], sm?.inclusionRegexps, REQUIRED_REGEXPS, i.instanceIps)) patterns.push({ safe_regex: { regex: r } });
  patterns.push({ prefix: 'component' }, { prefix: 'istio' });

  // Istio prints the tag name into the regex unescaped; escaping keeps a name such as `a.b`
  // from matching `aXb` and a stray `(` from breaking Envoy's start (names Istio documents are
  // plain identifiers, for which both spellings are identical).
  const extra = extraStatTags(i.proxyConfig, a[ANNOTATION_EXTRA_STAT_TAGS]).map((t) => tag(t, `(${escapeRegex(t)}=\\.=(.*?);\\.;)`));
  const cfg: StatsConfig = {
    use_all_default_tags: false,
    stats_tags: [...LEADING_TAGS, ...extra, ...TRAILING_TAGS].map((t) => ({ ...t })),
    stats_matcher: { inclusion_list: { patterns } },
  };
  const buckets = histogramBuckets(a[ANNOTATION_HISTOGRAM_BUCKETS], i.warn);
  if (buckets) cfg.histogram_bucket_settings = buckets;
  return cfg;
}

export interface StatsIntervals {
  stats_flush_interval?: string;
  stats_eviction_interval?: string;
}

/**
 * From the flush/eviction annotations (Go duration syntax). Written as ProtoJSON durations
 * ("10s", "60s", "0.500s"): Istio prints Go's form ("1m0s", "500ms"), which Envoy's JSON reader
 * rejects, and truncates eviction to whole seconds, which can break the multiple-of-flush rule
 * Envoy enforces. Both are fixed here; values Istio accepts in the common "10s" form come out
 * identical.
 */
export function statsIntervals(annotations: Readonly<Record<string, string>>, warn: (m: string) => void): StatsIntervals {
  const out: StatsIntervals = {};
  let flushMs = DEFAULT_FLUSH_MS;
  const flushText = annotations[ANNOTATION_FLUSH_INTERVAL];
  let flushValid = true;
  if (flushText !== undefined) {
    const d = parseGoDuration(flushText);
    if (d === undefined) {
      warn(`Failed to parse stats flush interval ${flushText}: not a duration such as 10s or 1m30s`);
    } else if (d === 0) {
      // Istio leaves the field out for 0; eviction against a 0 flush would divide by zero.
      flushValid = false;
    } else if (d < 1 || d >= MAX_FLUSH_MS) {
      warn(`Ignoring ${ANNOTATION_FLUSH_INTERVAL}=${flushText}: Envoy needs at least 1ms and less than 5m`);
    } else {
      flushMs = d;
      out.stats_flush_interval = formatProtoDuration(d);
    }
  }
  const evictionText = annotations[ANNOTATION_EVICTION_INTERVAL];
  if (evictionText !== undefined) {
    const d = parseGoDuration(evictionText);
    const micros = (ms: number) => Math.round(ms * 1000);
    if (d === undefined) warn(`Failed to parse stats eviction interval ${evictionText}: not a duration such as 10s or 1m30s`);
    else if (!flushValid) warn(`Ignoring ${ANNOTATION_EVICTION_INTERVAL}: the stats flush interval is 0`);
    else if (d <= 0) warn(`Ignoring ${ANNOTATION_EVICTION_INTERVAL}=${evictionText}: must be positive`);
    else if (micros(d) % micros(flushMs) !== 0) warn('StatsEvictionInterval must be a multiple of the StatsFlushInterval');
    else out.stats_eviction_interval = formatProtoDuration(d);
  }
  return out;
}
