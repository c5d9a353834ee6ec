// Envoy's admin API client: ports of Istio's TestActiveConnections (pkg/envoy/agent_test.go, all
// four cases) and TestDrainListenersReturnsErrorIfAdminPostFails (admin_test.go), against real
// local HTTP servers; and the drain request as Envoy receives it.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { activeProxyConnections, adminGet, countActiveConnections, drainListeners, EnvoyAdminError, getServerInfo, isReady, knownIstioListeners, quitQuitQuit } from '../../envoy/index.js';
import { freePort } from '../support/ports.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

async function adminServer(reply: (req: IncomingMessage) => [number, string], host = '127.0.0.1'): Promise<{ srv: Server; port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const srv = createServer(
    (req, res) =>
      void (async () => {
        let body = '';
        for await (const c of req) body += c;
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
        const [code, text] = reply(req);
        res.writeHead(code).end(text);
      })(),
  );
  srv.listen(0, host);
  await once(srv, 'listening');
  return { srv, port: (srv.address() as AddressInfo).port, seen };
}

// Istio's fixtures, verbatim.
const downstreamCxPositiveAcStats =
  'http.admin.downstream_cx_active: 2 \n' +
  'http.agent.downstream_cx_active: 0 \n' +
  'http.inbound_0.0.0.0_8080.downstream_cx_active: 0 \n' +
  'listener.0.0.0.0_15001.downstream_cx_active: 0 \n' +
  'listener.0.0.0.0_15006.downstream_cx_active: 0 \n' +
  'listener.0.0.0.0_15021.downstream_cx_active: 0 \n' +
  'listener.0.0.0.0_8443.downstream_cx_active: 6 \n' +
  'listener.0.0.0.0_9093.downstream_cx_active: 8 \n' +
  'listener.10.112.32.70_9043.downstream_cx_active: 1 \n' +
  'listener.10.112.33.230_2181.downstream_cx_active: 0 \n' +
  'listener.10.112.40.186_2181.downstream_cx_active: 1 \n' +
  'listener.10.112.43.239_9043.downstream_cx_active: 2 \n' +
  'listener.10.112.49.68_9043.downstream_cx_active: 1 \n' +
  'listener.admin.downstream_cx_active: 2 \n' +
  'listener.admin.main_thread.downstream_cx_active: 2';

const downstreamCxZeroAcStats =
  'http.admin.downstream_cx_active: 2 \n' +
  'http.agent.downstream_cx_active: 0 \n' +
  'http.inbound_0.0.0.0_8080.downstream_cx_active: 0 \n' +
  'listener.0.0.0.0_15001.downstream_cx_active: 0 \n' +
  'listener.0.0.0.0_15006.downstream_cx_active: 0 \n' +
  'listener.0.0.0.0_15021.downstream_cx_active: 1 \n' +
  'listener.0.0.0.0_8443.downstream_cx_active: 0 \n' +
  'listener.0.0.0.0_9093.downstream_cx_active: 0 \n' +
  'listener.10.112.32.70_9043.downstream_cx_active: 0 \n' +
  'listener.10.112.33.230_2181.downstream_cx_active: 0 \n' +
  'listener.10.112.40.186_2181.downstream_cx_active: 0 \n' +
  'listener.10.112.43.239_9043.downstream_cx_active: 0 \n' +
  'listener.10.112.49.68_9043.downstream_cx_active: 0\n' +
  'listener.admin.downstream_cx_active: 2 \n' +
  'listener.admin.main_thread.downstream_cx_active: 2';

// Ambient/waypoint Envoys carry internal listeners whose connections are not the pod's traffic.
const ambientInternalStats =
  'listener.envoy_internal_connect_originate.downstream_cx_active: 4 \n' +
  'listener.envoy_internal_inbound-vip.downstream_cx_active: 2 \n' +
  'listener.0.0.0.0_15008.downstream_cx_active: 3 \n' +
  'listener.0.0.0.0_15008.worker_0.downstream_cx_active: 3 \n' +
  'listener.0.0.0.0_15090.downstream_cx_active: 1 \n' +
  'listener.admin.downstream_cx_active: 1';

t.test('TestActiveConnections', async (t) => {
  const known = knownIstioListeners({ statusPort: 15021, prometheusPort: 15009 });
  const cases: [string, string, number][] = [
    ['invalid stats', '', -1],
    ['valid active connections', downstreamCxPositiveAcStats, 19],
    ['zero active connections', downstreamCxZeroAcStats, 0],
    ['ambient internal listeners excluded', ambientInternalStats, 4],
  ];
  for (const [name, stats, expected] of cases) {
    const s = await adminServer(() => [200, stats]);
    const got = await activeProxyConnections({ host: 'localhost', port: s.port }, known);
    s.srv.close();
    t.equal(got.count, expected, name);
    t.equal(s.seen[0]?.url, '/stats?usedonly&filter=downstream_cx_active$', `${name}: the stats query Istio sends`);
  }
});

t.test('connection counting rules', async (t) => {
  const known = knownIstioListeners({ statusPort: 15021, prometheusPort: 15090, secureMetricsPorts: [0, 15091] });
  const body = [
    'listener.[__]_15021.downstream_cx_active: 5', // IPv6 health listener: Istio's own (fix: Istio counts it)
    'listener.0.0.0.0_15091.downstream_cx_active: 5', // secure metrics listener, configured
    'listener.[__]_8080.downstream_cx_active: 2',
    'listener.0.0.0.0_9090.downstream_cx_active: not-a-number',
    'a line without separator',
    'cluster.outbound.downstream_cx_active: 9',
  ].join('\n');
  t.same(countActiveConnections(body, known), { count: 2, skipped: ['listener.0.0.0.0_9090.downstream_cx_active: not-a-number', 'a line without separator'] });
  const srv = await adminServer(() => [500, 'oops']);
  t.teardown(() => srv.srv.close());
  await t.rejects(activeProxyConnections({ host: '127.0.0.1', port: srv.port }, known), { message: /^unable to get listener stats from Envoy: unexpected status 500/ }, 'non-200 is an error');
  const slow = createServer(() => {}); // never answers
  slow.listen(0, '127.0.0.1');
  await once(slow, 'listening');
  t.teardown(() => {
    slow.closeAllConnections();
    slow.close();
  });
  const t0 = Date.now();
  await t.rejects(activeProxyConnections({ host: '127.0.0.1', port: (slow.address() as AddressInfo).port }, known, 300), { message: /timeout after 300ms/ });
  t.ok(Date.now() - t0 < 2000, 'the stats timeout applies');
});

t.test('TestDrainListenersReturnsErrorIfAdminPostFails', async (t) => {
  const port = await freePort(); // closed again: nothing listens there
  await t.rejects(drainListeners(port, true, false), EnvoyAdminError);
  await t.rejects(quitQuitQuit(port), EnvoyAdminError);
});

t.test("drain POST: Istio's paths, to localhost (an IPv4-only admin port too), empty body", async (t) => {
  const s = await adminServer(() => [200, 'OK\n'], '127.0.0.1');
  t.teardown(() => s.srv.close());
  t.equal(await drainListeners(s.port, true, false), 'OK\n');
  await drainListeners(s.port, false, false);
  await drainListeners(s.port, true, true);
  t.same(
    s.seen.map((r) => `${r.method} ${r.url}`),
    ['POST /drain_listeners?inboundonly&graceful', 'POST /drain_listeners?graceful', 'POST /drain_listeners?inboundonly&graceful&skip_exit'],
  );
  t.equal(s.seen[0]!.body, '');
  t.equal(s.seen[0]!.headers['content-length'], '0');
  t.equal(s.seen[0]!.headers['content-type'], '', "Go's http.Post sends an empty Content-Type");
  t.match(s.seen[0]!.headers.host, /^localhost:/);
  const failing = await adminServer(() => [503, 'no']);
  t.teardown(() => failing.srv.close());
  t.equal(await drainListeners(failing.port, true, false), 'no', 'a non-200 answer is not an error for the POST (as Istio)');
});

t.test('GET helpers: /server_info, /ready, non-200 errors', async (t) => {
  const s = await adminServer((req) => (req.url === '/server_info' ? [200, '{"state":"LIVE"}'] : req.url === '/ready' ? [503, 'PRE_INITIALIZING'] : [404, 'x']));
  t.teardown(() => s.srv.close());
  const a = { host: '127.0.0.1', port: s.port };
  t.same(await getServerInfo(a), { state: 'LIVE' });
  t.equal(await isReady(a), false);
  await t.rejects(adminGet(a, 'nope'), { status: 404, message: 'unexpected status 404' });
});
