// Envoy's command line exactly as pilot-agent builds it (args in Istio's pkg/envoy/proxy.go).
// Pure: the bootstrap path and the already-converted `--config-yaml` text are inputs, so the
// argv is a function of the configuration alone.
import { is4In6, is6, parseAddr } from '../lib/netip.js';

export interface EnvoyArgsOptions {
  /** `-c`: the bootstrap file (generated path or ProxyConfig customConfigFile), passed as-is */
  configPath: string;
  /** ProxyConfig drainDuration, milliseconds */
  drainDurationMs: number;
  /** the proxy's IP addresses; `--local-address-ip-version v6` iff all are IPv6 */
  nodeIps: readonly string[];
  /** ProxyConfig fileFlushInterval, milliseconds (unset or 0 → Istio's 1000) */
  fileFlushIntervalMs?: number | undefined;
  /** ProxyConfig fileFlushMinSizeKb (only passed when > 0) */
  fileFlushMinSizeKb?: number | undefined;
  /** `--proxyLogLevel`: a level, possibly with `component:level` items */
  logLevel: string;
  /** `--proxyComponentLogLevel`: used only when logLevel has no component items */
  componentLogLevel: string;
  /** ENVOY_SKIP_DEPRECATED_LOGS */
  skipDeprecatedLogs: boolean;
  /** ISTIO_ENVOY_ENABLE_CORE_DUMP */
  enableCoreDump: boolean;
  /** the ISTIO_BOOTSTRAP_OVERRIDE file as JSON, when it could be read and converted */
  configYaml?: string | undefined;
  /** effective ProxyConfig concurrency (only passed when > 0) */
  concurrency?: number | undefined;
}

export interface ComponentLogSplit {
  /** the last bare level; '' when there is none (or the last bare item was empty) */
  level: string;
  /** `component:level` items in order */
  components: string[];
  /** items with two or more `:`, which Istio drops with a warning */
  dropped: string[];
}

/**
 * Splits `--proxyLogLevel` into Envoy's `-l` and `--component-log-level`, as Istio does: the
 * last item without `:` is the level (so `info,warn` gives `warn`), items with one `:` are
 * component levels, anything else is dropped.
 */
export function splitComponentLog(level: string): ComponentLogSplit {
  let logLevel = '';
  const components: string[] = [];
  const dropped: string[] = [];
  for (const item of level.split(',')) {
    const colons = item.split(':').length - 1;
    if (colons === 0) logLevel = item;
    else if (colons === 1) components.push(item);
    else dropped.push(item);
  }
  return { level: logLevel, components, dropped };
}

/** Go's net.ParseIP(ip) != nil && To4() == nil: IPv6 and not an IPv4-mapped address. */
function isIpv6Only(ip: string): boolean {
  try {
    const a = parseAddr(ip);
    // net.ParseIP rejects zoned addresses.
    return is6(a) && a.zone === '' && !is4In6(a);
  } catch {
    return false;
  }
}

/** Go's network.AllIPv6: true when every address is IPv6 (vacuously true for an empty list). */
export function allIpv6(ips: readonly string[]): boolean {
  return ips.every(isIpv6Only);
}

/** The argv (without the binary) pilot-agent starts Envoy with, in Istio's order. */
export function envoyArgs(o: EnvoyArgsOptions): string[] {
  const flushMs = o.fileFlushIntervalMs !== undefined && o.fileFlushIntervalMs > 0 ? Math.trunc(o.fileFlushIntervalMs) : 1000;
  const args = [
    '-c',
    o.configPath,
    // Go's int(d.Seconds()) truncates toward zero.
    '--drain-time-s',
    String(Math.trunc(o.drainDurationMs / 1000)),
    '--drain-strategy',
    'immediate',
    '--local-address-ip-version',
    allIpv6(o.nodeIps) ? 'v6' : 'v4',
    '--file-flush-interval-msec',
    String(flushMs),
    '--disable-hot-restart',
    '--allow-unknown-static-fields',
  ];
  if (o.fileFlushMinSizeKb !== undefined && o.fileFlushMinSizeKb > 0) args.push('--file-flush-min-size-kb', String(o.fileFlushMinSizeKb));
  const split = splitComponentLog(o.logLevel);
  if (split.level !== '') args.push('-l', split.level);
  if (split.components.length > 0) args.push('--component-log-level', split.components.join(','));
  else if (o.componentLogLevel !== '') args.push('--component-log-level', o.componentLogLevel);
  if (o.skipDeprecatedLogs) args.push('--skip-deprecated-logs');
  if (o.enableCoreDump) args.push('--enable-core-dump');
  if (o.configYaml !== undefined) args.push('--config-yaml', o.configYaml);
  if (o.concurrency !== undefined && o.concurrency > 0) args.push('--concurrency', String(o.concurrency));
  return args;
}
