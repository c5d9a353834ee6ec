// Counting Envoy's active downstream connections for EXIT_ON_ZERO_ACTIVE_CONNECTIONS (Istio's
// activeProxyConnections in pkg/envoy/agent.go): the sum of `listener.*.downstream_cx_active`
// over the listeners that carry application traffic, leaving out Istio's own listeners (health,
// Prometheus, admin), per-worker duplicates and Envoy internal listeners.

export interface KnownListenerPorts {
  /** ENVOY_STATUS_PORT (15021) */
  statusPort: number;
  /** ENVOY_PROMETHEUS_PORT (15090) */
  prometheusPort: number;
  /** ENVOY_SECURE_METRICS_PORT / ENVOY_SECURE_MERGED_METRICS_PORT, when non-zero */
  secureMetricsPorts?: readonly number[];
}

/**
 * Stat names of Istio's own listeners. Istio lists only the IPv4 wildcard names; an IPv6 pod's
 * listeners are named `[__]_<port>` (Envoy replaces `:` in stat names), and kubelet probes on
 * 15021 would otherwise keep a drain waiting — so both spellings are known here (a fix).
 */
export function knownIstioListeners(p: KnownListenerPorts): Set<string> {
  const ports = [p.statusPort, p.prometheusPort, ...(p.secureMetricsPorts ?? []).filter((n) => n > 0)];
  const names = new Set(['listener.admin.downstream_cx_active', 'listener.admin.main_thread.downstream_cx_active']);
  for (const port of ports) {
    names.add(`listener.0.0.0.0_${port}.downstream_cx_active`);
    names.add(`listener.[__]_${port}.downstream_cx_active`);
  }
  return names;
}

export interface ActiveConnections {
  /** the sum, or -1 when Envoy returned no stats at all (stats not available) */
  count: number;
  /** lines that were not `name: value` or whose value did not parse (Istio warns about each) */
  skipped: string[];
}

/** Sums the relevant `downstream_cx_active` gauges of a `/stats` text body. */
export function countActiveConnections(body: string, known: ReadonlySet<string>): ActiveConnections {
  if (body.length === 0) return { count: -1, skipped: [] };
  let count = 0;
  const skipped: string[] = [];
  for (const line of body.split('\n')) {
    if (line.trim() === '') continue;
    const parts = line.split(':');
    if (parts.length !== 2) {
      skipped.push(line);
      continue;
    }
    const name = parts[0]!.trim();
    if (!name.startsWith('listener.') || name.includes('worker_') || name.startsWith('listener.envoy_internal_') || known.has(name)) continue;
    const value = parts[1]!.trim();
    if (!/^\d+$/.test(value)) {
      skipped.push(line);
      continue;
    }
    count += Number(value);
  }
  return { count, skipped };
}
