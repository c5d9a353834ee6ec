// The merged `/stats/prometheus` (Istio's handleStats and scrapeMultipleApps in
// pilot/cmd/pilot-agent/status/server.go): the agent's own metrics, then Envoy's
// `:15090/stats/prometheus`, then the application's, concatenated as text. Unlike Istio, which
// holds each source's body in memory, Envoy's and a single application's bodies are streamed
// straight through to the scraper with backpressure, read into a few reused buffers (source.ts),
// so the agent's memory stays flat however many series Envoy has. Several application targets
// are fetched concurrently with Istio's 10 MiB cap each (a body over the cap must be dropped
// whole, so those are held until complete). A source that fails or is slow is counted and
// skipped; the answer is always 200.
import { once } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import { scope } from '../../lib/log.js';
import type { AgentMetrics } from './agent-metrics.js';
import { APP_ACCEPTS, ENVOY_ACCEPTS, FMT_TEXT, isOpenMetrics, negotiateMetricsFormat, rewriteAccept, type MetricsFormat } from './negotiate.js';
import type { ResponseBody } from './respond.js';
import type { ScrapeTarget } from './scrape-config.js';
import { getSource, type SourceResponse } from './source.js';
import { AgentError, errorMessage } from '../../lib/errors.js';

/** A merged scrape that cannot go on (the scraper left, a source's connection broke). */
export class ScrapeError extends AgentError {
  static override readonly code: string = 'STATUS_SCRAPE';
}

const log = scope('default');

/** Istio's cap on each body of a multi-target scrape. */
export const MAX_APP_BODY_BYTES = 10 * 1024 * 1024;

// With a scrape timeout T, applications get until this fraction of T to answer, so that a hung
// application still leaves time to stream the agent's and Envoy's metrics before the scraper gives
// up (Istio waits the whole T for the application, and then Envoy's copy fails too).
const APP_HEADER_BUDGET = 0.8;

/** Removes a trailing `# EOF` (CRLF and whitespace tolerated) and ensures the body ends with a newline (multi-target merge). */
export function stripOpenMetricsEof(body: Buffer): Buffer {
  // Only the tail can hold the trailer; looking at 64 bytes keeps this O(1) for large bodies.
  const tailStart = Math.max(0, body.length - 64);
  const tail = body.subarray(tailStart).toString('latin1');
  // At the start of the window only if the window is the whole body (else it may be mid-line).
  const m = (tailStart === 0 ? /(^|\n)# EOF[ \t\r]*\n?\s*$/ : /(\n)# EOF[ \t\r]*\n?\s*$/).exec(tail);
  let out = m ? body.subarray(0, tailStart + m.index + m[1]!.length) : body;
  if (out.length > 0 && out[out.length - 1] !== 0x0a) out = Buffer.concat([out, Buffer.from('\n')]);
  return out;
}

/**
 * The format of a multi-target answer: the first successful target's, downgraded to text when
 * another successful target differs; text when none succeeded.
 */
export function multiTargetFormat(formats: readonly (MetricsFormat | undefined)[]): MetricsFormat {
  const ok = formats.filter((f): f is MetricsFormat => f !== undefined);
  if (ok.length === 0) return FMT_TEXT;
  return ok.every((f) => f === ok[0]) ? ok[0]! : FMT_TEXT;
}

export interface ScrapeSettings {
  envoyPort: number;
  /** false with DISABLE_ENVOY or PILOT_AGENT_MERGE_ENVOY_STATS=false */
  mergeEnvoy: boolean;
  targets: readonly ScrapeTarget[];
  maxAppBodyBytes: number;
}

/**
 * What has been written last, for the newline between sources and the OpenMetrics trailer: the
 * last two chunks are kept, and their text is looked at only when needed (not per chunk).
 */
class Tail {
  // The chunks are views into reused read buffers: their last bytes are copied, no reference kept.
  readonly #buf = Buffer.alloc(32);
  #len = 0;
  note(chunk: Buffer): void {
    const n = Math.min(32, chunk.length);
    if (n === 0) return;
    const keep = Math.min(this.#len, 32 - n);
    this.#buf.copy(this.#buf, 0, this.#len - keep, this.#len);
    chunk.copy(this.#buf, keep, chunk.length - n);
    this.#len = keep + n;
  }
  /** The last byte written (a newline before anything was). */
  get last(): number {
    return this.#len === 0 ? 0x0a : this.#buf[this.#len - 1]!;
  }
  /** The last (up to) 32 bytes written, as text. */
  get text(): string {
    return this.#buf.toString('latin1', 0, this.#len);
  }
}

async function write(out: ResponseBody, tail: Tail, chunk: Buffer, gone: AbortSignal): Promise<void> {
  tail.note(chunk);
  if (!out.write(chunk)) await once(out, 'drain', { signal: gone });
}

/**
 * Streams a source body into the answer as it arrives. Each chunk is a view into the source's
 * reused read buffer, so the next read waits until the answer has taken the chunk. Resolves
 * false if the source failed midway; rejects when the scraper has gone.
 */
function pipeSource(src: SourceResponse, out: ResponseBody, tail: Tail, gone: AbortSignal): Promise<boolean> {
  if (gone.aborted) return Promise.reject(new ScrapeError('scraper disconnected'));
  return new Promise((resolve, reject) => {
    const onGone = () => {
      src.destroy();
      reject(new ScrapeError('scraper disconnected'));
    };
    gone.addEventListener('abort', onGone, { once: true });
    src
      .pipe((chunk, done) => {
        tail.note(chunk);
        out.write(chunk, done);
      })
      .then(
        (ok) => {
          gone.removeEventListener('abort', onGone);
          if (gone.aborted) reject(new ScrapeError('scraper disconnected'));
          else resolve(ok);
        },
        (err: unknown) => {
          gone.removeEventListener('abort', onGone);
          reject(err instanceof Error ? err : new ScrapeError(String(err)));
        },
      );
  });
}

function forwarded(h: IncomingHttpHeaders, accept: string): Record<string, string> {
  const o: Record<string, string> = { Accept: accept };
  if (h['user-agent']) o['User-Agent'] = h['user-agent'];
  const timeout = h['x-prometheus-scrape-timeout-seconds'];
  if (typeof timeout === 'string') o['X-Prometheus-Scrape-Timeout-Seconds'] = timeout;
  return o;
}

/** Prometheus' scrape timeout header as milliseconds; undefined (no deadline) when absent or unparsable. */
export function scrapeTimeoutMs(v: string | undefined): number | undefined {
  if (v === undefined || v.trim() === '') return undefined;
  const s = Number(v.trim());
  if (!Number.isFinite(s) || s <= 0 || !/^[+]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(v.trim())) {
    log.warn(`Failed to parse timeout header ${v}`);
    return undefined;
  }
  return s * 1000;
}

export interface MergeRequest {
  headers: IncomingHttpHeaders;
  /** the raw query of the incoming request (passed on to Envoy) */
  rawQuery: string;
}

/**
 * Serves one merged scrape. `open` creates the response body once the format is known; `gone`
 * aborts when the scraper disconnects (every source request is cancelled with it).
 */
export async function serveMergedMetrics(r: MergeRequest, s: ScrapeSettings, metrics: AgentMetrics, open: (format: MetricsFormat) => ResponseBody, gone: AbortSignal): Promise<void> {
  metrics.scrapes++;
  const timeoutMs = scrapeTimeoutMs(r.headers['x-prometheus-scrape-timeout-seconds'] as string | undefined);
  const signals = [gone];
  if (timeoutMs !== undefined) signals.push(AbortSignal.timeout(timeoutMs));
  const deadline = signals.length === 1 ? gone : AbortSignal.any(signals);
  const appDeadline = timeoutMs === undefined ? deadline : AbortSignal.any([deadline, AbortSignal.timeout(timeoutMs * APP_HEADER_BUDGET)]);
  const fail = (type: 'envoy' | 'application', err: unknown) => {
    metrics.failures[type]++;
    log.error(`failed scraping ${type} metrics: ${errorMessage(err)}`);
  };

  // Every source starts at once; bodies are read in the output's order.
  const envoy = s.mergeEnvoy
    ? getSource(s.envoyPort, `/stats/prometheus${r.rawQuery ? `?${r.rawQuery}` : ''}`, forwarded(r.headers, rewriteAccept(r.headers.accept, ENVOY_ACCEPTS)), deadline)
    : undefined;
  envoy?.catch(() => {}); // reported when its turn comes
  const appHeaders = forwarded(r.headers, rewriteAccept(r.headers.accept, APP_ACCEPTS));
  const agentText = metrics.render().catch((err: Error) => {
    metrics.failures.agent++;
    log.error(`failed scraping and writing agent metrics: ${err.message}`);
    return '';
  });

  let format: MetricsFormat = FMT_TEXT;
  let single: SourceResponse | undefined;
  let multi: (Buffer | undefined)[] = [];
  if (s.targets.length === 1) {
    const t = s.targets[0]!;
    try {
      single = await getSource(t.port, t.path, appHeaders, appDeadline);
      format = negotiateMetricsFormat(single.headers['content-type']);
    } catch (err) {
      fail('application', err);
    }
  } else if (s.targets.length > 1) {
    const results = await Promise.all(
      s.targets.map(async (t) => {
        try {
          const res = await getSource(t.port, t.path, appHeaders, appDeadline);
          const body = await res.readAll(s.maxAppBodyBytes);
          return { body, format: negotiateMetricsFormat(res.headers['content-type']) };
        } catch (err) {
          fail('application', err);
          return undefined;
        }
      }),
    );
    format = multiTargetFormat(results.map((x) => x?.format));
    multi = results.map((x) => x?.body);
  }

  const out = open(format);
  const tail = new Tail();
  const newlineIfNeeded = async () => {
    if (tail.last !== 0x0a) await write(out, tail, Buffer.from('\n'), gone);
  };
  try {
    await write(out, tail, Buffer.from(await agentText), gone);
    if (envoy) {
      try {
        const res = await envoy;
        await newlineIfNeeded();
        if (!(await pipeSource(res, out, tail, gone))) fail('envoy', new ScrapeError('connection to Envoy lost while streaming its metrics'));
      } catch (err) {
        if (gone.aborted) throw err;
        fail('envoy', err);
      }
    }
    if (single) {
      await newlineIfNeeded();
      if (!(await pipeSource(single, out, tail, gone))) fail('application', new ScrapeError('connection to the application lost while streaming its metrics'));
      // An OpenMetrics answer must end with exactly one `# EOF`, even if the application's
      // body lacked it or was cut short.
      if (isOpenMetrics(format) && !/\n# EOF[ \t\r]*\n?$/.test(tail.text)) {
        await newlineIfNeeded();
        await write(out, tail, Buffer.from('# EOF\n'), gone);
      }
    } else if (multi.length > 0) {
      for (const body of multi) {
        if (!body) continue;
        await newlineIfNeeded();
        await write(out, tail, stripOpenMetricsEof(body), gone);
      }
      if (isOpenMetrics(format)) await write(out, tail, Buffer.from('# EOF\n'), gone);
    }
    out.end();
  } catch {
    // The scraper went away: nothing more can be written; sources are cancelled by `gone`.
    out.destroy();
  } finally {
    single?.destroy();
    void envoy?.then(
      (res) => res.destroy(),
      () => {},
    );
  }
}
