// The merged `/stats/prometheus` (Istio's handleStats), black-box over HTTP: the stand-in
// Envoy's `/stats/prometheus` as Envoy's source, local servers as the applications. Ports of
// Istio's TestStats, TestStatsContentType, TestStatsError, TestStatsMultiTarget,
// TestScrapeMultipleAppsBodyCap, TestExcludeProtobufEncoding and TestHTTPCompressionOnStats;
// every merged output is checked with promtool, OpenMetrics output for exactly one trailing
// `# EOF`. Plus what Istio does not do: streaming, a slow source under Prometheus' timeout, a
// scraper that goes away.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { gunzipSync } from 'node:zlib';
import * as zlib from 'node:zlib';
import t from 'tap';
import { ZSTD_AVAILABLE, type MetricsSource, type ScrapeConfig } from '../../../agent/status/index.js';
import { runStandin, type RunningStandin } from '../../support/envoy-standin/index.js';
import { FMT_OM_0_0_1, FMT_OM_1_0_0, FMT_TEXT, httpServer, negotiateLikeClient, openMetricsProblems, parsesAsText, promtool, rawGet, type TestServer } from '../../support/metrics.js';
import { statusServer, type Harness } from './harness.js';

/** What the helpers need of a tap test: somewhere to register cleanup. */
interface TestLike {
  teardown(fn: () => unknown): void;
}

let envoy: RunningStandin;
let envoyFile: string;

t.before(async () => {
  // The stand-in streams this file as /stats/prometheus, re-reading it on every request.
  envoyFile = join(mkdtempSync(join(tmpdir(), 'stats-envoy-')), 'prometheus.txt');
  writeFileSync(envoyFile, '');
  envoy = await runStandin({ prometheusFile: envoyFile });
});
t.teardown(() => envoy.stop());

const setEnvoy = (body: string) => writeFileSync(envoyFile, body);
const scrapeOf = (...apps: TestServer[]): ScrapeConfig => ({
  scrape: 'true',
  port: String(apps[0]?.port ?? ''),
  path: '/metrics',
  targets: apps.map((a) => ({ port: String(a.port), path: '/metrics' })),
});

async function harness(t: TestLike, scrape: ScrapeConfig | undefined, extra: Parameters<typeof statusServer>[0] = {}, deps: Parameters<typeof statusServer>[1] = {}): Promise<Harness> {
  const h = await statusServer({ envoyPrometheusPort: envoy.adminPort, noEnvoy: false, adminPort: envoy.adminPort, scrape, ...extra }, deps);
  t.teardown(() => h.stop());
  return h;
}

async function app(t: TestLike, body: string, contentType?: string, status = 200): Promise<TestServer> {
  const s = await httpServer((_req, res) => {
    res.writeHead(status, contentType ? { 'Content-Type': contentType } : {});
    res.end(body);
  });
  t.teardown(() => s.close());
  return s;
}

const scrape = (h: Harness, headers: Record<string, string> = {}, path = '/stats/prometheus') => rawGet(h.port, path, headers);

t.test('TestStats: Envoy then application, verbatim, agent metrics first', async (t) => {
  const cases: { name: string; envoy: string; app: string; output: string; parseError?: boolean }[] = [
    {
      name: 'envoy metric only',
      envoy: '# TYPE my_metric counter\nmy_metric{} 0\n# TYPE my_other_metric counter\nmy_other_metric{} 0\n',
      app: '',
      output: '# TYPE my_metric counter\nmy_metric{} 0\n# TYPE my_other_metric counter\nmy_other_metric{} 0\n',
    },
    {
      name: 'app metric only',
      envoy: '',
      app: '# TYPE my_metric counter\nmy_metric{} 0\n# TYPE my_other_metric counter\nmy_other_metric{} 0\n',
      output: '# TYPE my_metric counter\nmy_metric{} 0\n# TYPE my_other_metric counter\nmy_other_metric{} 0\n',
    },
    {
      name: 'multiple metric',
      envoy: '# TYPE my_metric counter\nmy_metric{} 0\n',
      app: '# TYPE my_other_metric counter\nmy_other_metric{} 0\n',
      output: '# TYPE my_metric counter\nmy_metric{} 0\n# TYPE my_other_metric counter\nmy_other_metric{} 0\n',
    },
    { name: 'agent metric', envoy: '', app: '', output: '\n# TYPE istio_agent_scrapes_total counter\nistio_agent_scrapes_total' },
    {
      name: 'conflict metric',
      envoy: '# TYPE my_metric counter\nmy_metric{} 0\n# TYPE my_other_metric counter\nmy_other_metric{} 0\n',
      app: '# TYPE my_metric counter\nmy_metric{} 0\n',
      output: '# TYPE my_metric counter\nmy_metric{} 0\n# TYPE my_other_metric counter\nmy_other_metric{} 0\n# TYPE my_metric counter\nmy_metric{} 0\n',
      parseError: true,
    },
    {
      name: 'conflict metric labeled',
      envoy: '# TYPE my_metric counter\nmy_metric{app="foo"} 0\n',
      app: '# TYPE my_metric counter\nmy_metric{app="bar"} 0\n',
      output: '# TYPE my_metric counter\nmy_metric{app="foo"} 0\n# TYPE my_metric counter\nmy_metric{app="bar"} 0\n',
      parseError: true,
    },
  ];
  for (const c of cases) {
    setEnvoy(c.envoy);
    const a = await app(t, c.app);
    const h = await harness(t, scrapeOf(a));
    const r = await scrape(h);
    const body = r.body.toString();
    t.equal(r.status, 200, c.name);
    t.ok(body.includes(c.output), `${c.name}: output contains the expected block`);
    t.ok(body.indexOf('istio_agent_scrapes_total') < Math.max(body.indexOf('my_metric'), 0) || !body.includes('my_metric'), `${c.name}: agent metrics come first`);
    const p = promtool(body);
    if (c.parseError) t.equal(p.code, 1, `${c.name}: promtool reports the duplicate family (no de-duplication, as Istio)`);
    else t.ok(p.code === 0 || p.code === 3, `${c.name}: promtool parses it (${p.code}) ${p.code === 1 ? p.output : ''}`);
    t.equal(r.headers['content-type'], FMT_TEXT);
  }
});

const appOpenMetrics =
  '# TYPE jmx_config_reload_success counter\n# HELP jmx_config_reload_success Number of times configuration have successfully been reloaded.\njmx_config_reload_success_total 0.0\njmx_config_reload_success_created 1.623984612719E9\n# EOF\n';
const appText004 =
  '# HELP jvm_info VM version info\n# TYPE jvm_info gauge\njvm_info{runtime="OpenJDK Runtime Environment",vendor="AdoptOpenJDK",version="16.0.1+9",} 1.0\n# HELP jmx_config_reload_failure_created Number of times configuration have failed to be reloaded.\n# TYPE jmx_config_reload_failure_created gauge\njmx_config_reload_failure_created 1.624025983489E9\n';
const envoyText = '# TYPE my_metric counter\nmy_metric{} 0\n# TYPE my_other_metric counter\nmy_other_metric{} 0\n';

/** An application that answers in the format a client library would pick for the Accept it got. */
async function negotiatingApp(t: TestLike): Promise<TestServer> {
  const s = await httpServer((req, res) => {
    const f = negotiateLikeClient(req.headers.accept);
    res.writeHead(200, { 'Content-Type': f });
    res.end(f === FMT_TEXT ? appText004 : appOpenMetrics);
  });
  t.teardown(() => s.close());
  return s;
}

t.test('TestStatsContentType: the application negotiates, the merged body parses in its format', async (t) => {
  setEnvoy(envoyText);
  const cases: [string, string, string][] = [
    ['openmetrics accept header', 'application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;q=0.5,*/*;q=0.1', FMT_OM_0_0_1],
    ['openmetrics v1 accept header', 'application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1', FMT_OM_1_0_0],
    ['plaintext accept header', FMT_TEXT, FMT_TEXT],
    ['empty accept header', '', FMT_TEXT],
  ];
  for (const [name, accept, want] of cases) {
    const a = await negotiatingApp(t);
    const h = await harness(t, scrapeOf(a));
    const r = await scrape(h, accept ? { Accept: accept } : {});
    const body = r.body.toString();
    t.equal(r.headers['content-type'], want, name);
    if (want === FMT_TEXT) t.ok(parsesAsText(body), `${name}: parses as text`);
    else t.same(openMetricsProblems(body), [], `${name}: valid OpenMetrics, one # EOF at the end`);
    t.ok(body.includes('my_other_metric{} 0\n'), `${name}: Envoy's metrics are in`);
  }
});

t.test('TestExcludeProtobufEncoding: the format the merged answer gets for each Accept', async (t) => {
  setEnvoy(envoyText);
  const cases: [string, string, 'om' | 'text'][] = [
    ['typical accept header without protobuf', 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1', 'om'],
    ['typical accept header without protobuf and wildcard', 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5', 'om'],
    [
      'typical accept header with protobuf',
      'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
      'om',
    ],
    ['protobuf only', 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited', 'text'],
    ['openmetrics text only', 'application/openmetrics-text;version=1.0.0', 'om'],
    ['plain text only', 'text/plain;version=0.0.4', 'text'],
    ['expand MIME wildcard', '*/*', 'text'],
    ['expand MIME range', 'application/*', 'om'],
    ['invalid accept header', '/', 'text'],
  ];
  const a = await negotiatingApp(t);
  const h = await harness(t, scrapeOf(a));
  for (const [name, accept, want] of cases) {
    const r = await scrape(h, { Accept: accept });
    const type = String(r.headers['content-type']);
    t.match(type, want === 'om' ? /^application\/openmetrics-text/ : /^text\/plain/, name);
    const forwarded = a.seen[a.seen.length - 1]!.headers.accept!;
    t.notMatch(forwarded, /protobuf/, `${name}: protobuf never asked of the application`);
    const body = r.body.toString();
    if (want === 'om') t.same(openMetricsProblems(body), [], `${name}: valid OpenMetrics`);
    else t.ok(parsesAsText(body), `${name}: parses as text`);
  }
  const envoyAccepts = envoy.s
    .events()
    .filter((e) => e.e === 'admin' && e.path.startsWith('/stats/prometheus'))
    .map((e) => (e as { headers: Record<string, string> }).headers.accept);
  t.ok(envoyAccepts.length >= cases.length && envoyAccepts.every((x) => x !== undefined && !/openmetrics|protobuf/.test(x)), 'Envoy is only ever asked for text');
});

t.test('TestStatsError: always 200, failures counted per source', async (t) => {
  setEnvoy(envoyText);
  const pass = await app(t, '# TYPE app_metric gauge\napp_metric 1\n');
  const fail = await app(t, 'no', undefined, 500);
  for (const [name, envoyOk, appOk] of [
    ['both pass', true, true],
    ['envoy pass', true, false],
    ['app pass', false, true],
    ['both fail', false, false],
  ] as const) {
    const h = await harness(t, scrapeOf(appOk ? pass : fail), envoyOk ? {} : { envoyPrometheusPort: fail.port });
    const r = await scrape(h);
    t.equal(r.status, 200, name);
    const body = r.body.toString();
    t.equal(body.includes('my_metric{} 0'), envoyOk, `${name}: Envoy's metrics ${envoyOk ? 'present' : 'absent'}`);
    t.equal(body.includes('app_metric 1'), appOk, `${name}: the application's metrics ${appOk ? 'present' : 'absent'}`);
    t.equal(h.server.metrics.failures.envoy, envoyOk ? 0 : 1, `${name}: envoy failures`);
    t.equal(h.server.metrics.failures.application, appOk ? 0 : 1, `${name}: application failures`);
    t.ok(parsesAsText(body));
    const again = (await scrape(h)).body.toString();
    // The agent's part is rendered as the scrape starts: it shows the previous scrape's failure.
    if (!envoyOk) t.match(again, /istio_agent_scrape_failures_total\{type="envoy"\} 1\n/, `${name}: the failure counter is exported`);
    if (!appOk) t.match(again, /istio_agent_scrape_failures_total\{type="application"\} 1\n/);
  }
});

t.test('TestStatsMultiTarget', async (t) => {
  type Spec = { body?: string; contentType?: string; fail?: boolean };
  const cases: {
    name: string;
    envoy?: string;
    targets: Spec[];
    ordered?: string[];
    contains?: string[];
    notContains?: string[];
    eof: number;
    om: boolean;
    parseError?: boolean;
    appFailures?: number;
    type: string;
  }[] = [
    {
      name: 'two text targets with disjoint metrics merge in target order',
      targets: [{ body: '# TYPE metric_a counter\nmetric_a{} 1\n' }, { body: '# TYPE metric_b counter\nmetric_b{} 2\n' }],
      ordered: ['metric_a{} 1', 'metric_b{} 2'],
      eof: 0,
      om: false,
      type: FMT_TEXT,
    },
    {
      name: 'three text targets preserve Targets-slice order',
      targets: [{ body: '# TYPE metric_zero counter\nmetric_zero{} 0\n' }, { body: '# TYPE metric_one counter\nmetric_one{} 1\n' }, { body: '# TYPE metric_two counter\nmetric_two{} 2\n' }],
      ordered: ['metric_zero', 'metric_one', 'metric_two'],
      eof: 0,
      om: false,
      type: FMT_TEXT,
    },
    {
      name: 'two OpenMetrics targets emit exactly one # EOF at the end',
      targets: [
        { body: '# TYPE metric_a counter\n# HELP metric_a desc\nmetric_a_total 1\n# EOF\n', contentType: FMT_OM_1_0_0 },
        { body: '# TYPE metric_b counter\n# HELP metric_b desc\nmetric_b_total 2\n# EOF\n', contentType: FMT_OM_1_0_0 },
      ],
      ordered: ['metric_a', 'metric_b'],
      eof: 1,
      om: true,
      type: FMT_OM_1_0_0,
    },
    {
      name: 'one failing target does not prevent successful targets from appearing',
      targets: [{ body: '# TYPE metric_ok counter\nmetric_ok{} 7\n' }, { fail: true }],
      contains: ['metric_ok{} 7'],
      eof: 0,
      om: false,
      appFailures: 1,
      type: FMT_TEXT,
    },
    {
      name: 'all failing targets still return 200 with envoy + agent metrics',
      envoy: '# TYPE envoy_metric counter\nenvoy_metric{} 9\n',
      targets: [{ fail: true }, { fail: true }],
      contains: ['envoy_metric{} 9'],
      eof: 0,
      om: false,
      appFailures: 2,
      type: FMT_TEXT,
    },
    {
      name: "Targets[0] failure falls back to first successful target's format",
      targets: [{ fail: true }, { body: '# TYPE metric_fallback counter\nmetric_fallback_total 3\n# EOF\n', contentType: FMT_OM_1_0_0 }],
      contains: ['metric_fallback_total 3', '# EOF'],
      eof: 1,
      om: true,
      appFailures: 1,
      type: FMT_OM_1_0_0,
    },
    {
      name: "mixed formats — Targets[0] is text so response is text and OM target's EOF is stripped",
      targets: [{ body: '# TYPE metric_text counter\nmetric_text{} 4\n' }, { body: '# TYPE metric_om counter\n# HELP metric_om desc\nmetric_om_total 5\n# EOF\n', contentType: FMT_OM_1_0_0 }],
      contains: ['metric_text{} 4', 'metric_om_total 5'],
      notContains: ['# EOF'],
      eof: 0,
      om: false,
      type: FMT_TEXT,
    },
    {
      name: 'mixed formats — Targets[0] is OpenMetrics and Targets[1] is text; downgraded to text',
      targets: [
        { body: '# TYPE metric_om counter\n# HELP metric_om desc\nmetric_om_total 1\n# EOF\n', contentType: FMT_OM_1_0_0 },
        { body: '# TYPE metric_text counter\nmetric_text{} 2\n', contentType: FMT_TEXT },
      ],
      contains: ['metric_om_total 1', 'metric_text{} 2'],
      notContains: ['# EOF'],
      eof: 0,
      om: false,
      type: FMT_TEXT,
    },
    {
      name: 'two targets emit the same metric family name; both blocks present',
      targets: [{ body: '# TYPE metric_x counter\nmetric_x 1\n' }, { body: '# TYPE metric_x counter\nmetric_x 2\n' }],
      contains: ['metric_x 1', 'metric_x 2'],
      eof: 0,
      om: false,
      parseError: true,
      type: FMT_TEXT,
    },
    {
      name: 'OpenMetrics targets with CRLF EOF trailers — strip + reappend exactly once',
      targets: [
        { body: '# TYPE metric_crlf_a counter\nmetric_crlf_a_total 1\n# EOF\r\n', contentType: FMT_OM_1_0_0 },
        { body: '# TYPE metric_crlf_b counter\nmetric_crlf_b_total 2\n# EOF\r\n', contentType: FMT_OM_1_0_0 },
      ],
      ordered: ['metric_crlf_a', 'metric_crlf_b'],
      eof: 1,
      om: true,
      type: FMT_OM_1_0_0,
    },
  ];
  for (const c of cases) {
    setEnvoy(c.envoy ?? '');
    const apps = await Promise.all(c.targets.map((s) => app(t, s.body ?? '', s.contentType, s.fail ? 500 : 200)));
    const h = await harness(t, scrapeOf(...apps));
    const r = await scrape(h);
    const body = r.body.toString();
    t.equal(r.status, 200, c.name);
    t.equal(r.headers['content-type'], c.type, `${c.name}: content type`);
    for (const s of c.contains ?? []) t.ok(body.includes(s), `${c.name}: contains ${s}`);
    for (const s of c.notContains ?? []) t.notOk(body.includes(s), `${c.name}: does not contain ${s}`);
    let last = -1;
    for (const s of c.ordered ?? []) {
      const i = body.indexOf(s);
      t.ok(i > last, `${c.name}: ${s} in order`);
      last = i;
    }
    t.equal(body.split('# EOF').length - 1, c.eof, `${c.name}: # EOF count`);
    t.equal(h.server.metrics.failures.application, c.appFailures ?? 0, `${c.name}: application failures`);
    if (c.om) t.same(openMetricsProblems(body), [], `${c.name}: valid OpenMetrics`);
    else if (c.parseError) t.equal(promtool(body).code, 1, `${c.name}: a parse error, as Istio's test expects`);
    else t.ok(parsesAsText(body), `${c.name}: parses as text`);
  }
});

t.test('TestScrapeMultipleAppsBodyCap: a body at the cap is kept, one byte over is dropped', async (t) => {
  setEnvoy('');
  const atCap = 'a'.repeat(100);
  const overCap = 'b'.repeat(101);
  const a = await app(t, atCap);
  const b = await app(t, overCap);
  const h = await harness(t, scrapeOf(a, b), {}, { maxAppBodyBytes: 100 });
  const body = (await scrape(h)).body.toString();
  t.ok(body.includes(atCap));
  t.notOk(body.includes('b'.repeat(101)));
  t.notOk(body.includes('bbbb'), 'nothing of the dropped body');
  t.equal(h.server.metrics.failures.application, 1);
});

t.test('TestHTTPCompressionOnStats: ~2 MiB through gzip/zstd as the client asks', async (t) => {
  let big = '# TYPE my_metric counter\nmy_metric{} 0\n# TYPE my_other_metric counter\nmy_other_metric{} 0\n';
  for (let i = 0; big.length < 2 << 20; i++) big += `# TYPE my_other_metric_${i} counter\nmy_other_metric_${i} 0\n`;
  setEnvoy(big);
  const h = await harness(t, undefined);
  const cases: [string, string, string | undefined][] = [
    ['no accept encoding header', '', undefined],
    ['gzip', 'gzip', 'gzip'],
    ['zstd', 'zstd', ZSTD_AVAILABLE ? 'zstd' : undefined],
    ['prefer zstd over gzip', 'gzip, zstd', ZSTD_AVAILABLE ? 'zstd' : 'gzip'],
    ['client likes gzip more than zstd', 'deflate, gzip;q=1.0, zstd;q=0.5', 'gzip'],
    ['ignore unsupported encodings', 'br, lz4', undefined],
  ];
  for (const [name, ae, want] of cases) {
    const r = await scrape(h, { Accept: 'text/plain', ...(ae ? { 'Accept-Encoding': ae } : {}) });
    t.equal(r.status, 200, name);
    t.equal(r.headers['content-encoding'], want, `${name}: Content-Encoding ${want ?? 'none'}`);
    t.equal(r.headers.vary, 'Accept-Encoding');
    const plain = want === 'gzip' ? gunzipSync(r.body) : want === 'zstd' ? (zlib as unknown as { zstdDecompressSync(b: Buffer): Buffer }).zstdDecompressSync(r.body) : r.body;
    t.ok(plain.toString().endsWith(big), `${name}: the whole of Envoy's output arrives`);
    if (want) t.ok(r.body.length < plain.length / 4, `${name}: compressed (${r.body.length} of ${plain.length} bytes)`);
  }
  const small = await rawGet(h.port, '/healthz/ready', { 'Accept-Encoding': 'gzip' });
  t.equal(small.headers['content-encoding'], undefined, 'bodies under 1 KiB are not compressed');
  t.equal(small.headers.vary, 'Accept-Encoding');
});

t.test('request details reach each source: query to Envoy, headers to both, /metrics alias', async (t) => {
  setEnvoy(envoyText);
  const a = await app(t, '# TYPE app_metric gauge\napp_metric 1\n');
  const h = await harness(t, { scrape: 'true', port: String(a.port), path: '/custom?x=1', targets: [{ port: String(a.port), path: '/custom?x=1' }] });
  const before = envoy.s.events().length;
  const r = await scrape(h, { 'User-Agent': 'Prometheus/2.53.0', 'X-Prometheus-Scrape-Timeout-Seconds': '10', Cookie: 'secret' }, '/metrics?usedonly&filter=cluster');
  t.equal(r.status, 200);
  const call = envoy.s
    .events()
    .slice(before)
    .find((e) => e.e === 'admin' && e.path.startsWith('/stats/prometheus')) as { path: string; headers: Record<string, string> } | undefined;
  t.equal(call?.path, '/stats/prometheus?usedonly&filter=cluster', 'the raw query goes to Envoy');
  t.equal(call?.headers['user-agent'], 'Prometheus/2.53.0');
  t.equal(call?.headers['x-prometheus-scrape-timeout-seconds'], '10');
  t.equal(call?.headers.cookie, undefined, 'nothing else is forwarded');
  t.equal(a.seen[0]?.url, '/custom?x=1', 'the configured path and query');
  t.equal(a.seen[0]?.headers['user-agent'], 'Prometheus/2.53.0');
  t.equal(a.seen[0]?.headers.accept, 'text/plain;version=0.0.4');
});

t.test('MetricsSource values join the agent metrics with Istio names, types and labels', async (t) => {
  setEnvoy('');
  let requests = 3;
  const sources: MetricsSource[] = [
    { metrics: () => ({ num_outgoing_requests: 2, cert_expiry_seconds: 3600, pilot_xds_expired_nonce: undefined }) },
    { metrics: () => ({ xds_proxy_requests: requests, num_outgoing_requests: 1, custom_thing: 7 }) },
    {
      metrics: () => {
        throw new Error('broken source');
      },
    },
  ];
  const h = await harness(t, undefined, { noEnvoy: true }, { metricsSources: sources });
  let body = (await scrape(h)).body.toString();
  t.match(body, /\n# TYPE istio_agent_num_outgoing_requests counter\nistio_agent_num_outgoing_requests\{request_type="csr"\} 3\n/, 'counters from several sources add up');
  t.match(body, /\n# TYPE istio_agent_cert_expiry_seconds gauge\nistio_agent_cert_expiry_seconds\{resource_name="default"\} 3600\n/);
  t.match(body, /\n# TYPE istio_agent_xds_proxy_requests counter\nistio_agent_xds_proxy_requests 3\n/);
  t.match(body, /\n# TYPE istio_agent_custom_thing untyped\nistio_agent_custom_thing 7\n/, 'unknown names are exported untyped');
  t.notMatch(body, /pilot_xds_expired_nonce/, 'undefined values are left out');
  t.match(body, /\nistio_agent_process_resident_memory_bytes \d+/, 'process collectors');
  t.match(body, /\nistio_agent_nodejs_heap_size_total_bytes \d+/, 'runtime collectors');
  t.ok(parsesAsText(body));
  requests = 5;
  body = (await scrape(h)).body.toString();
  t.match(body, /\nistio_agent_xds_proxy_requests 5\n/, 'values are read at scrape time');
  t.match(body, /\nistio_agent_scrapes_total 2\n/);
  t.notMatch(body, /# TYPE istio_agent_startup_duration_seconds/, 'no startup duration before Envoy was ever ready');
  h.server.addMetricsSource({ metrics: () => ({ envoy_connection_terminations: 1 }) });
  t.match((await scrape(h)).body.toString(), /\nistio_agent_envoy_connection_terminations 1\n/, 'sources can be added after start');
});

t.test('Envoy left out with DISABLE_ENVOY or PILOT_AGENT_MERGE_ENVOY_STATS=false', async (t) => {
  setEnvoy(envoyText);
  for (const o of [{ noEnvoy: true }, { mergeEnvoyStats: false }]) {
    const before = envoy.s.events().length;
    const h = await harness(t, undefined, o);
    const body = (await scrape(h)).body.toString();
    t.notOk(body.includes('my_metric'), JSON.stringify(o));
    t.notOk(
      envoy.s
        .events()
        .slice(before)
        .some((e) => e.e === 'admin' && e.path.startsWith('/stats/prometheus')),
      'Envoy is not asked',
    );
    t.equal(h.server.metrics.failures.envoy, 0);
  }
});

t.test('single OpenMetrics target: verbatim, and an answer always ends in exactly one # EOF', async (t) => {
  setEnvoy(envoyText);
  const good = await app(t, '# TYPE a counter\na_total 1\n# EOF\n', FMT_OM_1_0_0);
  const missing = await app(t, '# TYPE b counter\nb_total 1', FMT_OM_0_0_1);
  for (const [a, name] of [
    [good, 'with # EOF'],
    [missing, 'without # EOF (and without a final newline)'],
  ] as const) {
    const h = await harness(t, scrapeOf(a));
    const body = (await scrape(h)).body.toString();
    t.same(openMetricsProblems(body), [], name);
  }
});

t.test('streaming: Envoy’s body reaches the scraper before Envoy has finished sending it', async (t) => {
  let release: () => void = () => {};
  const held = new Promise<void>((r) => (release = r));
  const slowEnvoy = await httpServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.write(`# TYPE first_part gauge\nfirst_part 1\n${'# padding\n'.repeat(2000)}`);
    void held.then(() => res.end('# TYPE second_part gauge\nsecond_part 2\n'));
  });
  t.teardown(() => slowEnvoy.close());
  const h = await harness(t, undefined, { envoyPrometheusPort: slowEnvoy.port });
  const text = await new Promise<string>((resolve, reject) => {
    let body = '';
    const req = request({ host: '127.0.0.1', port: h.port, path: '/stats/prometheus', agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
        if (body.includes('first_part 1') && !body.includes('second_part')) release();
      });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
    setTimeout(() => reject(new Error('the first part never arrived before the end: the body was buffered')), 5000).unref();
  });
  t.ok(text.indexOf('first_part 1') < text.indexOf('second_part 2'), 'both parts, in order, the first streamed before the second existed');
  t.ok(parsesAsText(text));
});

t.test("a slow application under Prometheus' timeout: 200 in time, with Envoy's metrics", async (t) => {
  setEnvoy(envoyText);
  const hung = await httpServer(() => {});
  t.teardown(() => hung.close());
  const h = await harness(t, scrapeOf(hung));
  const t0 = Date.now();
  const r = await scrape(h, { 'X-Prometheus-Scrape-Timeout-Seconds': '1.5' });
  const took = Date.now() - t0;
  t.equal(r.status, 200);
  t.ok(took < 1500, `answered within the scrape timeout (${took} ms)`);
  t.ok(r.body.toString().includes('my_other_metric{} 0'), "Envoy's metrics are there");
  t.equal(h.server.metrics.failures.application, 1);
  t.ok(parsesAsText(r.body.toString()));
});

t.test('a scraper that goes away cancels the source requests', async (t) => {
  let closed = 0;
  const hung = await httpServer((req) => req.socket.once('close', () => closed++));
  t.teardown(() => hung.close());
  setEnvoy(envoyText);
  const h = await harness(t, scrapeOf(hung));
  await new Promise<void>((resolve) => {
    const req = request({ host: '127.0.0.1', port: h.port, path: '/stats/prometheus', agent: false });
    req.on('error', () => {});
    req.end();
    const poll = setInterval(() => {
      if (hung.seen.length > 0) {
        clearInterval(poll);
        req.destroy();
        resolve();
      }
    }, 10);
  });
  const deadline = Date.now() + 3000;
  while (closed === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.equal(closed, 1, "the application's connection is closed when the scraper leaves");
  t.equal((await scrape(h, { 'X-Prometheus-Scrape-Timeout-Seconds': '0.5' })).status, 200, 'the server serves on');
});

t.test('a slow scraper gets every byte, in order, plain and gzip (the read buffers are reused)', async (t) => {
  let big = '';
  for (let i = 0; big.length < 3 << 20; i++) big += `# TYPE slow_metric_${i} counter\nslow_metric_${i}{shard="${i % 97}"} ${i}\n`;
  setEnvoy(big);
  const h = await harness(t, undefined);
  for (const enc of ['', 'gzip']) {
    const body = await new Promise<Buffer>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: h.port, path: '/stats/prometheus', agent: false, headers: enc ? { 'Accept-Encoding': enc } : {} }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          // Read slowly: the agent's writes back up while it keeps reading Envoy.
          res.pause();
          setTimeout(() => res.resume(), 2);
        });
        res.on('end', () => resolve(Buffer.concat(chunks)));
      });
      req.on('error', reject);
      req.end();
    });
    const text = (enc ? gunzipSync(body) : body).toString();
    t.ok(text.endsWith(big), `${enc || 'identity'}: Envoy's ${big.length} bytes intact`);
  }
});
