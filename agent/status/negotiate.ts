// Content negotiation of the merged metrics (Istio's negotiateMetricsFormat and
// allowedContentTypes in pilot/cmd/pilot-agent/status/server.go, and its gzhttp wrapper): which
// exposition format the merged answer has, the Accept header each source is asked with (no
// protobuf: bodies are concatenated as text), and which compression the client gets. Pure.

export const FMT_TEXT = 'text/plain; version=0.0.4; charset=utf-8';
export const FMT_OPENMETRICS_0_0_1 = 'application/openmetrics-text; version=0.0.1; charset=utf-8';
export const FMT_OPENMETRICS_1_0_0 = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
export type MetricsFormat = typeof FMT_TEXT | typeof FMT_OPENMETRICS_0_0_1 | typeof FMT_OPENMETRICS_1_0_0;

export const isOpenMetrics = (f: MetricsFormat): boolean => f !== FMT_TEXT;

interface MediaType {
  type: string;
  params: [string, string][];
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Go's mime.ParseMediaType, reduced to what negotiation needs. Undefined where Go errors. */
export function parseMediaType(v: string): MediaType | undefined {
  const parts = v.split(';');
  const type = parts[0]!.trim().toLowerCase();
  const slash = type.indexOf('/');
  if (slash < 0 ? !TOKEN.test(type) : !TOKEN.test(type.slice(0, slash)) || !TOKEN.test(type.slice(slash + 1))) return undefined;
  const params: [string, string][] = [];
  for (const p of parts.slice(1)) {
    const s = p.trim();
    if (s === '') continue;
    const eq = s.indexOf('=');
    if (eq < 0) return undefined;
    const k = s.slice(0, eq).trim().toLowerCase();
    let val = s.slice(eq + 1).trim();
    if (!TOKEN.test(k)) return undefined;
    if (val.startsWith('"') && val.endsWith('"') && val.length >= 2) val = val.slice(1, -1).replace(/\\(.)/g, '$1');
    else if (!TOKEN.test(val)) return undefined;
    params.push([k, val]);
  }
  return { type, params };
}

/** The merged answer's format from an application's Content-Type (Istio's negotiateMetricsFormat). */
export function negotiateMetricsFormat(contentType: string | undefined): MetricsFormat {
  const m = parseMediaType(contentType ?? '');
  if (m?.type === 'application/openmetrics-text') {
    const version = m.params.find(([k]) => k === 'version')?.[1] ?? '';
    if (version === '1.0.0') return FMT_OPENMETRICS_1_0_0;
    if (version === '0.0.1' || version === '') return FMT_OPENMETRICS_0_0_1;
  }
  return FMT_TEXT;
}

/** Media types each source may be asked for. */
export const ENVOY_ACCEPTS: ReadonlySet<string> = new Set(['text/*', 'text/plain']);
export const APP_ACCEPTS: ReadonlySet<string> = new Set(['text/*', 'text/plain', 'application/openmetrics-text']);

const DEFAULT_ACCEPT = 'text/plain;version=0.0.4';

/**
 * Rewrites a scraper's Accept header for one source: wildcards expand to the text or
 * OpenMetrics format, media types the source may not be asked for (protobuf) are dropped, `q`
 * is replaced so the original order is the preference order. Nothing left, or an unparsable
 * header, asks for the text format.
 */
export function rewriteAccept(accept: string | undefined, allowed: ReadonlySet<string>): string {
  if (accept === undefined || accept.trim() === '') return DEFAULT_ACCEPT;
  const kept: string[] = [];
  for (const entry of accept.split(',')) {
    if (entry.trim() === '') continue;
    const m = parseMediaType(entry);
    if (!m) return DEFAULT_ACCEPT;
    const params = m.params.filter(([k]) => k !== 'q');
    let text: string | undefined;
    let type = m.type;
    if (type === '*/*' || type === '*') {
      text = DEFAULT_ACCEPT;
      type = 'text/plain';
    } else if (type === 'application/*') {
      text = 'application/openmetrics-text;version=0.0.1';
      type = 'application/openmetrics-text';
    } else {
      text = [type, ...params.map(([k, v]) => `${k}=${v}`)].join(';');
    }
    if (allowed.has(type) && !kept.includes(text)) kept.push(text);
  }
  if (kept.length === 0) return DEFAULT_ACCEPT;
  const digits = String(kept.length).length;
  return kept.map((t, i) => `${t};q=0.${String(kept.length - i).padStart(digits, '0')}`).join(',');
}

export type ContentEncoding = 'gzip' | 'zstd';

/**
 * The response compression for an Accept-Encoding header: the supported coding with the highest
 * q, zstd on a tie; unknown codings (`br`, `lz4`) are ignored. `zstdAvailable` is false on Node
 * versions without zlib zstd (before 22.15).
 */
export function negotiateEncoding(acceptEncoding: string | undefined, zstdAvailable: boolean): ContentEncoding | undefined {
  if (!acceptEncoding) return undefined;
  let best: { enc: ContentEncoding; q: number } | undefined;
  for (const entry of acceptEncoding.split(',')) {
    const [name, ...params] = entry.split(';').map((s) => s.trim());
    const coding = name!.toLowerCase();
    let q = 1;
    for (const p of params) {
      const [k, v] = p.split('=').map((s) => s.trim());
      if (k?.toLowerCase() === 'q') q = Number(v);
    }
    if (!Number.isFinite(q) || q <= 0) continue;
    let enc: ContentEncoding | undefined;
    if (coding === 'gzip' || coding === 'x-gzip') enc = 'gzip';
    else if (coding === 'zstd' && zstdAvailable) enc = 'zstd';
    if (!enc) continue;
    if (!best || q > best.q || (q === best.q && enc === 'zstd')) best = { enc, q };
  }
  return best?.enc;
}
