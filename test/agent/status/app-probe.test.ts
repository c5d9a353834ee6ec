// The rewritten application probes (Istio's handleAppProbe) over HTTP against real local apps:
// ports of Istio's TestAppProbe (every case, and every status code 200–511), TestHttpsAppProbe
// (ALPN), TestGRPCAppProbe (a grpc-js health server) and TestProbeHeader; probes leave from
// 127.0.0.6; the 10 KiB body cap, timeouts, keep-alive. IPv6 (::6) runs in a network namespace
// (netns.test.ts).
import { STATUS_CODES } from 'node:http';
import t from 'tap';
import { HEADER_NAME, HEADER_VALUE, HOST_VALUE, startGrpcHealthApp, startHttpApp, startHttpsApp, startTcpApp, type App } from '../../support/probe-apps.js';
import { rawGet } from '../../support/metrics.js';
import { freePort } from '../../support/ports.js';
import { statusServer, type Harness, type TestOptions } from './harness.js';

interface TestLike {
  teardown(fn: () => unknown): void;
}

async function server(t: TestLike, probers: Record<string, unknown>, o: TestOptions = {}): Promise<Harness> {
  const h = await statusServer({ appProbers: JSON.stringify(probers), ...o });
  t.teardown(() => h.stop());
  return h;
}

async function appOf<A extends App>(t: TestLike, a: Promise<A>): Promise<A> {
  const app = await a;
  t.teardown(() => app.close());
  return app;
}

const get = (h: Harness, path: string, headers: Record<string, string | string[]> = {}) => rawGet(h.port, path, headers as Record<string, string>);

t.test('TestAppProbe', async (t) => {
  const app = await appOf(t, startHttpApp());
  const port = app.port;
  const http = (path?: string, extra: Record<string, unknown> = {}) => ({ httpGet: { ...(path === undefined ? {} : { path }), port, ...extra } });
  const simpleHttp = { '/app-health/hello-world/readyz': http('/hello/sunnyvale'), '/app-health/hello-world/livez': http() };
  const simpleTcp = { '/app-health/hello-world/readyz': { tcpSocket: { port } }, '/app-health/hello-world/livez': { tcpSocket: { port } } };
  const app6 = await appOf(t, startTcpApp(0, '::1'));
  const simpleTcp6 = { '/app-health/hello-world/livez': { tcpSocket: { port: app6.port } } };
  const cases: { name: string; path: string; config: Record<string, unknown>; podIP?: string; source?: string; headers?: Record<string, string>; status: number }[] = [
    { name: 'http-bad-path', path: '/bad-path-should-be-404', config: simpleHttp, status: 404 },
    { name: 'http-readyz', path: '/app-health/hello-world/readyz', config: simpleHttp, status: 200 },
    { name: 'http-livez', path: '/app-health/hello-world/livez', config: simpleHttp, status: 200 },
    { name: 'http-livez-localhost', path: '/app-health/hello-world/livez', config: simpleHttp, podIP: 'localhost', status: 200 },
    {
      name: 'http-readyz-header',
      path: '/app-health/header/readyz',
      config: {
        '/app-health/header/readyz': http('/header', {
          httpHeaders: [
            { name: HEADER_NAME, value: HEADER_VALUE },
            { name: 'Host', value: HOST_VALUE },
          ],
        }),
      },
      // kubelet sends the probe's headers, Host included, to the status port
      headers: { [HEADER_NAME]: HEADER_VALUE, Host: HOST_VALUE },
      status: 200,
    },
    { name: 'http-readyz-path', path: '/app-health/hello-world/readyz', config: { '/app-health/hello-world/readyz': http('hello/texas') }, status: 200 },
    { name: 'http-prestopz-path', path: '/app-lifecycle/hello-world/prestopz', config: { '/app-lifecycle/hello-world/prestopz': http('hello/texas') }, status: 200 },
    { name: 'http-livez-path', path: '/app-health/hello-world/livez', config: { '/app-health/hello-world/livez': http('hello/texas') }, status: 200 },
    { name: 'tcp-readyz', path: '/app-health/hello-world/readyz', config: simpleTcp, status: 200 },
    { name: 'tcp-livez', path: '/app-health/hello-world/livez', config: simpleTcp, status: 200 },
    { name: 'tcp-livez-ipv4', path: '/app-health/hello-world/livez', config: simpleTcp, podIP: '127.0.0.1', status: 200 },
    // As Istio's test: ::6 is not a local address outside a pod, so the source is ::1 here
    // (netns.test.ts probes from ::6 in a namespace that has it).
    { name: 'tcp-livez-ipv6', path: '/app-health/hello-world/livez', config: simpleTcp6, podIP: '::1', source: '::1', status: 200 },
    { name: 'tcp-livez-wrapped-ipv6', path: '/app-health/hello-world/livez', config: simpleTcp6, podIP: '[::1]', source: '::1', status: 500 },
    { name: 'tcp-livez-localhost', path: '/app-health/hello-world/livez', config: simpleTcp, podIP: 'localhost', status: 200 },
    { name: 'redirect', path: '/app-health/redirect/livez', config: { '/app-health/redirect/livez': http('redirect') }, status: 200 },
    { name: 'redirect loop', path: '/app-health/redirect-loop/livez', config: { '/app-health/redirect-loop/livez': http('redirect-loop') }, status: 500 },
    { name: 'remote redirect', path: '/app-health/remote-redirect/livez', config: { '/app-health/remote-redirect/livez': http('remote-redirect') }, status: 200 },
  ];
  for (const c of cases) {
    const h = await server(t, c.config, { ...(c.podIP !== undefined ? { probeDestination: c.podIP } : {}), ...(c.source ? { probeSourceAddress: c.source } : {}) });
    const before = app.seen.length;
    const r = await get(h, c.path, c.headers);
    t.equal(r.status, c.status, c.name);
    if (c.name === 'redirect loop') t.equal(app.seen.length - before, 10, 'redirect loop: 10 requests, then the 10th redirect is an error');
    if (c.name === 'remote redirect') t.equal(app.seen.length - before, 1, 'remote redirect: the other host is never contacted');
    if (c.name === 'redirect')
      t.same(
        app.seen.slice(before).map((s) => s.path),
        ['/redirect', '/'],
        'redirect: followed on the same host',
      );
    if (c.name.startsWith('http-') && c.status === 200) t.equal(app.seen[app.seen.length - 1]!.remote, '127.0.0.6', `${c.name}: the probe came from 127.0.0.6`);
  }
  const h = await server(t, simpleHttp);
  const missing = await get(h, '/app-health/other/livez');
  t.equal(missing.status, 400, 'a path not in the config: 400');
  t.equal(missing.body.toString(), 'app prober config does not exists for /app-health/other/livez');
  const ok = await get(h, '/app-health/hello-world/readyz');
  t.equal(ok.body.toString(), 'welcome, it works', "the application's body is passed on");
});

t.test('TestAppProbe/status codes: every code 200–511 is passed on, redirects answer 200', async (t) => {
  const app = await appOf(t, startHttpApp());
  const codes = Object.keys(STATUS_CODES)
    .map(Number)
    .filter((c) => c >= 200 && c <= 511);
  const probers = Object.fromEntries(codes.map((c) => [`/app-health/code${c}/livez`, { timeoutSeconds: 1, httpGet: { path: `status/${c}`, port: app.port } }]));
  const h = await server(t, probers);
  const wrong: string[] = [];
  for (const c of codes) {
    const r = await get(h, `/app-health/code${c}/livez`);
    const want = c >= 300 && c < 400 ? 200 : c;
    if (r.status !== want) wrong.push(`${c}: got ${r.status}, want ${want}`);
  }
  t.same(wrong, [], `${codes.length} codes`);
});

t.test('HTTP probe limits: 10 KiB of body, timeoutSeconds, keep-alive on request', async (t) => {
  const app = await appOf(t, startHttpApp());
  const h = await server(t, {
    '/app-health/big/livez': { httpGet: { path: '/big/50000', port: app.port } },
    '/app-health/slow/livez': { timeoutSeconds: 1, httpGet: { path: '/slow/3000', port: app.port } },
    '/app-health/untimed/livez': { httpGet: { path: '/slow/1200', port: app.port } },
  });
  const big = await get(h, '/app-health/big/livez');
  t.equal(big.status, 200);
  t.equal(big.body.length, 10240, 'the first 10,240 bytes of the body');
  const t0 = Date.now();
  t.equal((await get(h, '/app-health/slow/livez')).status, 500, 'timeoutSeconds: 1 against a 3 s app');
  t.ok(Date.now() - t0 < 2500, 'given up at the timeout');
  t.equal((await get(h, '/app-health/untimed/livez')).status, 200, 'no timeoutSeconds: no timeout (Go http.Client)');
  t.equal(app.seen.find((s) => s.path === '/big/50000')?.headers.connection, 'close', 'keep-alive off by default (Connection: close)');

  const ka = await server(t, { '/app-health/ka/livez': { httpGet: { path: '/hello', port: app.port } } }, { probeKeepAlive: true });
  const before = app.seen.length;
  await get(ka, '/app-health/ka/livez');
  await get(ka, '/app-health/ka/livez');
  const [a, b] = app.seen.slice(before);
  t.not(a?.headers.connection, 'close', 'ENABLE_PROBE_KEEPALIVE_CONNECTIONS: keep-alive');
  t.equal(a?.remotePort, b?.remotePort, 'the connection is reused');
  t.equal(b?.remote, '127.0.0.6');
});

t.test('unreachable applications answer 500', async (t) => {
  const closed = await freePort();
  const h = await server(t, {
    '/app-health/h/livez': { httpGet: { port: closed } },
    '/app-health/t/livez': { tcpSocket: { port: closed } },
    '/app-health/g/livez': { timeoutSeconds: 1, grpc: { port: closed } },
    '/app-health/s/livez': { httpGet: { port: closed, scheme: 'HTTPS' } },
  });
  for (const p of ['h', 't', 'g', 's']) t.equal((await get(h, `/app-health/${p}/livez`)).status, 500, p);
  t.match(h.log(), /\tprobes\tRequest to probe app failed: .*connection refused/);
});

t.test('TestHttpsAppProbe: ALPN decides HTTP/1.1 or HTTP/2', async (t) => {
  const cases: [string, string[] | undefined, string, number, string | undefined][] = [
    ['readyz', undefined, '/app-health/hello-world/readyz', 200, 'HTTP/1.1'],
    ['livez', undefined, '/app-health/hello-world/livez', 200, 'HTTP/1.1'],
    ['h1 only', ['http/1.1'], '/app-health/hello-world/readyz', 200, 'HTTP/1.1'],
    ['h2 only', ['h2'], '/app-health/hello-world/readyz', 200, 'HTTP/2.0'],
    ['prefer h2', ['h2', 'http/1.1'], '/app-health/hello-world/readyz', 200, 'HTTP/2.0'],
    // (Istio's "prefer h1" case offers the same list as "prefer h2")
    ['prefer h1', ['h2', 'http/1.1'], '/app-health/hello-world/readyz', 200, 'HTTP/2.0'],
    ['unknown alpn', ['foo'], '/app-health/hello-world/readyz', 500, undefined],
  ];
  for (const [name, alpn, path, status, proto] of cases) {
    const app = await appOf(t, startHttpsApp(alpn));
    const h = await server(t, {
      '/app-health/hello-world/readyz': { httpGet: { path: '/hello/sunnyvale', port: app.port, scheme: 'HTTPS' } },
      '/app-health/hello-world/livez': { httpGet: { port: app.port, scheme: 'HTTPS' } },
    });
    t.equal((await get(h, '/bad-path-should-be-disallowed')).status, 404, `${name}: bad path`);
    t.equal((await get(h, path)).status, status, name);
    t.equal(app.seen[0]?.protocol, proto, `${name}: protocol`);
    if (proto) t.equal(app.seen[0]?.remote, '127.0.0.6', `${name}: from 127.0.0.6`);
  }
  const app = await appOf(t, startHttpsApp(['h2', 'http/1.1']));
  const h = await server(t, { '/app-health/x/livez': { httpGet: { port: app.port, scheme: 'HTTPS' } } }, { http2Probing: false });
  t.equal((await get(h, '/app-health/x/livez')).status, 200);
  t.equal(app.seen[0]?.protocol, 'HTTP/1.1', 'ISTIO_ENABLE_HTTP2_PROBING=false: HTTP/1.1');
});

t.test('TestGRPCAppProbe', async (t) => {
  const app = await appOf(t, startGrpcHealthApp({ '': 'SERVING', 'serving-svc': 'SERVING', 'unknown-svc': 'UNKNOWN', 'not-serving-svc': 'NOT_SERVING' }));
  const slow = await appOf(t, startGrpcHealthApp({ '': 'SERVING' }, 0, '127.0.0.1', { delayMs: 1500 }));
  const http = await appOf(t, startHttpApp());
  const h = await server(t, {
    '/app-health/foo/livez': { grpc: { port: app.port, service: null }, timeoutSeconds: 1 },
    '/app-health/foo/readyz': { grpc: { port: app.port, service: 'not-serving-svc' }, timeoutSeconds: 1 },
    '/app-health/bar/livez': { grpc: { port: app.port, service: 'serving-svc' }, timeoutSeconds: 10 },
    '/app-health/bar/readyz': { grpc: { port: app.port, service: 'unknown-svc' }, timeoutSeconds: 10 },
    '/app-health/baz/livez': { grpc: { port: app.port, service: 'no-such-svc' }, timeoutSeconds: 1 },
    '/app-health/slow/livez': { grpc: { port: slow.port }, timeoutSeconds: 1 },
    '/app-health/notgrpc/livez': { grpc: { port: http.port }, timeoutSeconds: 1 },
    '/app-health/notimeout/livez': { grpc: { port: app.port } },
  });
  const cases: [string, string, number][] = [
    ['bad-path-should-be-disallowed', '/bad-path-should-be-disallowed', 404],
    ['foo-livez', '/app-health/foo/livez', 200],
    ['foo-readyz', '/app-health/foo/readyz', 500],
    ['bar-livez', '/app-health/bar/livez', 200],
    ['bar-readyz', '/app-health/bar/readyz', 500],
    ['unknown service (NOT_FOUND)', '/app-health/baz/livez', 500],
    ['deadline exceeded', '/app-health/slow/livez', 500],
    ['not a gRPC server', '/app-health/notgrpc/livez', 500],
    ['timeoutSeconds absent: 1 s, not an expired deadline (Istio QUIRK fixed)', '/app-health/notimeout/livez', 200],
  ];
  for (const [name, path, status] of cases) t.equal((await get(h, path, { 'User-Agent': 'kube-probe/1.30' })).status, status, name);
  t.same([...new Set(app.seen.map((s) => s.remote))], ['127.0.0.6'], 'every probe came from 127.0.0.6');
  t.match(app.seen[0]?.headers['user-agent'], /^kube-probe\/1\.30/, "the kubelet's User-Agent is passed on");
  t.match(h.log(), /grpc request not finished within timeout/);
});

t.test("TestProbeHeader: incoming headers are forwarded, the config's are not", async (t) => {
  const cases: { name: string; origin: Record<string, string[]>; proxy: { name: string; value: string }[]; want: [string, string][] }[] = [
    { name: 'Only Origin', origin: { [HEADER_NAME]: [HEADER_VALUE] }, proxy: [], want: [[HEADER_NAME, HEADER_VALUE]] },
    {
      name: 'Only Origin, has multiple values',
      origin: { [HEADER_NAME]: [HEADER_VALUE, HEADER_VALUE] },
      proxy: [],
      want: [
        [HEADER_NAME, HEADER_VALUE],
        [HEADER_NAME, HEADER_VALUE],
      ],
    },
    { name: 'Only Proxy', origin: {}, proxy: [{ name: HEADER_NAME, value: HEADER_VALUE }], want: [] },
    {
      name: 'Only Proxy, has multiple values',
      origin: {},
      proxy: [
        { name: HEADER_NAME, value: HEADER_VALUE },
        { name: HEADER_NAME, value: HEADER_VALUE },
      ],
      want: [],
    },
    { name: 'Proxy overwrites Origin', origin: { [HEADER_NAME]: [HEADER_VALUE] }, proxy: [{ name: HEADER_NAME, value: `${HEADER_VALUE}over` }], want: [[HEADER_NAME, HEADER_VALUE]] },
  ];
  const app = await appOf(t, startHttpApp());
  for (const c of cases) {
    const h = await server(t, { '/app-health/hello-world/livez': { httpGet: { port: app.port, host: '127.0.0.1', path: '/headers', httpHeaders: c.proxy } } });
    const before = app.seen.length;
    t.equal((await get(h, '/app-health/hello-world/livez', c.origin)).status, 200, c.name);
    const raw = app.seen[before]!.rawHeaders;
    const pairs: [string, string][] = [];
    for (let i = 0; i < raw.length; i += 2) if (!/^(host|user-agent|accept-encoding)$/i.test(raw[i]!)) pairs.push([raw[i]!, raw[i + 1]!]);
    t.same(pairs.sort(), [...c.want, ['Connection', 'close'] as [string, string]].sort(), c.name);
  }
});
