// Metrics helpers for tests: promtool (the real Prometheus parser, installed by .ci/run), a
// structural OpenMetrics check, an application that negotiates its format from Accept as
// Prometheus client libraries do, and a raw HTTP GET that keeps the body as bytes.
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** `promtool check metrics` on `text`: 0 ok, 3 lint warnings only, 1 parse error. */
export function promtool(text: string): { code: number; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { code: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

/** Parses as Prometheus text (promtool exit 0 or 3). */
export function parsesAsText(text: string): boolean {
  const c = promtool(text).code;
  return c === 0 || c === 3;
}

/**
 * OpenMetrics structure: exactly one `# EOF`, as the last line, and everything before it parses
 * (promtool reads the text format, which OpenMetrics' counters and gauges share).
 */
export function openMetricsProblems(text: string): string[] {
  const problems: string[] = [];
  const eofs = text.split('\n').filter((l) => /^# EOF\s*$/.test(l)).length;
  if (eofs !== 1) problems.push(`${eofs} "# EOF" lines`);
  if (!text.endsWith('# EOF\n')) problems.push(`does not end with "# EOF\\n": ${JSON.stringify(text.slice(-40))}`);
  const body = text.replace(/# EOF\n$/, '');
  const r = promtool(body);
  if (r.code !== 0 && r.code !== 3) problems.push(`promtool: ${r.output}`);
  return problems;
}

export const FMT_TEXT = 'text/plain; version=0.0.4; charset=utf-8';
export const FMT_OM_0_0_1 = 'application/openmetrics-text; version=0.0.1; charset=utf-8';
export const FMT_OM_1_0_0 = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/** The format a Prometheus client library answers for an Accept header (expfmt.NegotiateIncludingOpenMetrics). */
export function negotiateLikeClient(accept: string | undefined): string {
  const entries = (accept ?? '')
    .split(',')
    .map((e, i) => {
      const [type, ...params] = e.split(';').map((s) => s.trim());
      const p = Object.fromEntries(params.map((x) => x.split('=').map((s) => s.trim()) as [string, string]));
      return { type: (type ?? '').toLowerCase(), version: p.version, q: p.q === undefined ? 1 : Number(p.q), i };
    })
    .sort((a, b) => b.q - a.q || a.i - b.i);
  for (const e of entries) {
    if (e.type === 'application/openmetrics-text') return e.version === '1.0.0' ? FMT_OM_1_0_0 : FMT_OM_0_0_1;
    if (e.type === 'text/plain' || e.type === '*/*') return FMT_TEXT;
  }
  return FMT_TEXT;
}

export interface Recorded {
  url: string;
  headers: IncomingHttpHeaders;
}

export interface TestServer {
  port: number;
  seen: Recorded[];
  srv: Server;
  close(): Promise<void>;
}

/** A local HTTP server with a handler; records every request. */
export async function httpServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const seen: Recorded[] = [];
  const srv = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    handler(req, res);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    port: (srv.address() as AddressInfo).port,
    seen,
    srv,
    close: () =>
      new Promise((r) => {
        srv.close(() => r());
        srv.closeAllConnections();
      }),
  };
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** GET with exact headers (no automatic Accept-Encoding or decompression, unlike fetch). */
export function rawGet(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
