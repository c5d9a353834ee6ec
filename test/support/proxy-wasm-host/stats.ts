// Envoy's stats store as the Wasm filters see it: metrics defined by name, values recorded by
// id (counters add, gauges set, histograms observe, Envoy source/extensions/common/wasm/context.cc
// defineMetric / incrementMetric / recordMetric), and the tag extraction Envoy applies to a
// name before the Prometheus endpoint shows it (source/common/stats/tag_extractor_impl.cc): each
// configured regex is matched against the full name, its first group is cut out of the name and
// its second group becomes the tag's value.
import { MetricType, type MetricTypeValue } from './abi.js';

/** Envoy's default histogram bucket bounds (source/common/stats/histogram_impl.h). */
export const DEFAULT_BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];

export interface StatsTag {
  tagName: string;
  regex: string;
}

/** Istio's standard labels, in the order the stats filter emits them. */
export const ISTIO_STANDARD_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_cluster',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
  'response_code',
  'grpc_response_status',
];

/**
 * The `stats_config.stats_tags` Istio's bootstrap carries for the Wasm stats filter: one regex
 * per label (`(<label>=\.=(.*?);\.;)`, plus `extraStatTags`), and the internal metrics' tags.
 */
export function istioStatsTags(extraTags: string[] = []): StatsTag[] {
  const labels = [...ISTIO_STANDARD_LABELS, ...extraTags];
  return [
    ...labels.map((l) => ({ tagName: l, regex: l === 'response_code' ? '(response_code=\\.=(.+?);\\.;)' : `(${l}=\\.=(.*?);\\.;)` })),
    { tagName: 'cache', regex: '(cache\\.(.+?)\\.)' },
    { tagName: 'component', regex: '(component\\.(.+?)\\.)' },
    { tagName: 'tag', regex: '(tag\\.(.+?);\\.)' },
    { tagName: 'wasm_filter', regex: '(wasm_filter\\.(.+?)\\.)' },
  ];
}

export interface HistogramValue {
  count: number;
  sum: number;
  /** Cumulative counts per bucket bound (DEFAULT_BUCKETS order). */
  buckets: number[];
  samples: number[];
}

export class Stat {
  value = 0n;
  readonly histogram: HistogramValue | undefined;

  constructor(
    readonly type: MetricTypeValue,
    readonly name: string,
    readonly bounds: number[],
  ) {
    this.histogram = type === MetricType.Histogram ? { count: 0, sum: 0, buckets: bounds.map(() => 0), samples: [] } : undefined;
  }

  observe(v: bigint): void {
    const h = this.histogram!;
    const n = Number(v);
    h.count++;
    h.sum += n;
    h.samples.push(n);
    this.bounds.forEach((b, i) => {
      if (n <= b) h.buckets[i]!++;
    });
  }
}

export interface Sample {
  /** Prometheus name: tag-extracted, sanitised. */
  name: string;
  labels: Record<string, string>;
  type: 'counter' | 'gauge' | 'histogram';
  value: number;
  histogram?: HistogramValue;
  /** The name the filter defined. */
  fullName: string;
}

export class MetricStore {
  private readonly stats = new Map<string, Stat>();
  private readonly tags: { tagName: string; regex: RegExp }[];

  constructor(
    statsTags: StatsTag[] = istioStatsTags(),
    readonly bounds: number[] = DEFAULT_BUCKETS,
  ) {
    this.tags = statsTags.map((t) => ({ tagName: t.tagName, regex: new RegExp(t.regex) }));
  }

  /** The stat for a name and type, created on first use (one stat per name and type, shared by every VM). */
  stat(type: MetricTypeValue, name: string): Stat {
    const key = `${type}:${name}`;
    let s = this.stats.get(key);
    if (s === undefined) {
      s = new Stat(type, name, this.bounds);
      this.stats.set(key, s);
    }
    return s;
  }

  /** Envoy's tag extraction: every regex against the whole name, matched parts removed. */
  extractTags(name: string): { name: string; labels: Record<string, string> } {
    const labels: Record<string, string> = {};
    const remove = new Array<boolean>(name.length).fill(false);
    for (const t of this.tags) {
      const m = t.regex.exec(name);
      if (m === null || m[1] === undefined) continue;
      const start = m.index + m[0].indexOf(m[1]);
      labels[t.tagName] = m[2] ?? m[1];
      for (let i = start; i < start + m[1].length; i++) remove[i] = true;
    }
    const extracted = [...name].filter((_c, i) => !remove[i]).join('');
    return { name: extracted.replace(/[^a-zA-Z0-9_:]/g, '_'), labels };
  }

  samples(): Sample[] {
    return [...this.stats.values()].map((s) => {
      const { name, labels } = this.extractTags(s.name);
      const type = s.type === MetricType.Counter ? 'counter' : s.type === MetricType.Gauge ? 'gauge' : 'histogram';
      return { name, labels, type, value: s.histogram ? s.histogram.count : Number(s.value), fullName: s.name, ...(s.histogram ? { histogram: s.histogram } : {}) };
    });
  }

  /** Every sample of a Prometheus metric name. */
  family(name: string): Sample[] {
    return this.samples().filter((s) => s.name === name);
  }
}
