// The VM workload health checker (Istio's pkg/istio-agent/health) and the probe primitives it
// shares with the status server: ports of Istio's health_probers_test.go (TestHttpProber,
// TestTcpProber, TestExecProber; TestGrpcProber's cases against a grpc-js health server) and
// health_check_test.go (TestWorkloadHealthChecker_PerformApplicationHealthCheck/{tcp,http}),
// plus thresholds, the Envoy link of the chain, defaults, and the subsystem built from
// ProxyConfig.
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { jsonThenYaml, resolveAgentConfig } from '../../../config/index.js';
import { HealthCheckSubsystem, WorkloadHealthChecker, workloadProbeConfig, type HealthEvent, type WorkloadProbeConfig } from '../../../agent/health/index.js';
import { httpServer } from '../../support/metrics.js';
import { freePort } from '../../support/ports.js';
import { startGrpcHealthApp, startHttpApp } from '../../support/probe-apps.js';

const base = { initialDelayMs: 0, timeoutMs: 1000, periodMs: 5, successThreshold: 1, failureThreshold: 1 };
const checker = (method: WorkloadProbeConfig['method'], o: Partial<WorkloadProbeConfig> = {}, deps: ConstructorParameters<typeof WorkloadHealthChecker>[1] = {}) =>
  new WorkloadHealthChecker({ ...base, ...o, method }, deps);

async function probe(c: WorkloadHealthChecker): Promise<string | undefined> {
  try {
    await c.probeOnce();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

t.test('TestHttpProber', async (t) => {
  for (const [code, want] of [
    [200, undefined],
    [500, 'status code was not from [200,400), bad code 500'],
  ] as const) {
    const s = await httpServer((_req, res) => res.writeHead(code).end());
    t.equal(await probe(checker({ kind: 'httpGet', scheme: 'http', host: '127.0.0.1', port: s.port, path: '/test/health/check', headers: [] })), want, `status ${code}`);
    t.equal(s.seen[0]?.url, '/test/health/check');
    t.equal(s.seen[0]?.headers['user-agent'], 'istio-probe/1.0', 'User-Agent istio-probe/1.0 by default');
    await s.close();
  }
  const closed = await freePort();
  t.match(
    await probe(checker({ kind: 'httpGet', scheme: 'http', host: '127.0.0.1', port: closed, path: '/', headers: [] })),
    /dial tcp 127\.0\.0\.1:\d+: connect: connection refused/,
    'could not connect',
  );
});

t.test('HTTP prober: configured headers, Host and User-Agent honoured, source 127.0.0.6, redirects followed', async (t) => {
  const app = await startHttpApp();
  t.teardown(() => app.close());
  const c = checker(
    {
      kind: 'httpGet',
      scheme: 'http',
      host: '127.0.0.1',
      port: app.port,
      path: 'header',
      headers: [
        ['Some-Header', 'some-value'],
        ['Host', 'test.com:9999'],
        ['User-Agent', 'mine'],
      ],
    },
    {},
    { localAddress: '127.0.0.6' },
  );
  t.equal(await probe(c), undefined);
  t.equal(app.seen[0]?.remote, '127.0.0.6');
  t.equal(app.seen[0]?.headers['user-agent'], 'mine');
  t.equal(await probe(checker({ kind: 'httpGet', scheme: 'http', host: '127.0.0.1', port: app.port, path: '/redirect', headers: [] })), undefined, 'a redirect is followed');
  t.match(await probe(checker({ kind: 'httpGet', scheme: 'http', host: '127.0.0.1', port: app.port, path: '/redirect-loop', headers: [] })), /stopped after 10 redirects/);
});

t.test('TestTcpProber', async (t) => {
  const srv = createServer((s) => s.destroy());
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  t.equal(await probe(checker({ kind: 'tcpSocket', host: '127.0.0.1', port })), undefined, 'Healthy');
  await new Promise((r) => srv.close(r));
  t.match(await probe(checker({ kind: 'tcpSocket', host: '127.0.0.1', port })), new RegExp(`^dial tcp 127\\.0\\.0\\.1:${port}: connect: connection refused$`), 'Unhealthy');
});

t.test('TestExecProber', async (t) => {
  t.equal(await probe(checker({ kind: 'exec', command: ['true'] }, { timeoutMs: 200 })), undefined, 'Healthy');
  t.equal(await probe(checker({ kind: 'exec', command: ['false'] }, { timeoutMs: 200 })), 'exit status 1', 'Unhealthy');
  const t0 = Date.now();
  t.equal(await probe(checker({ kind: 'exec', command: ['sleep', '10'] }, { timeoutMs: 200 })), 'command timeout exceeded: signal: killed', 'Timeout');
  t.ok(Date.now() - t0 < 2000, 'killed at the timeout');
  t.match(await probe(checker({ kind: 'exec', command: ['/no/such/probe'] })), /executable file not found/);
});

t.test('TestGrpcProber', async (t) => {
  const app = await startGrpcHealthApp({ '': 'SERVING', svc: 'SERVING', down: 'NOT_SERVING', unknown: 'UNKNOWN', gone: 'SERVICE_UNKNOWN' });
  const slow = await startGrpcHealthApp({ '': 'SERVING' }, 0, '127.0.0.1', { delayMs: 1500 });
  const http = await startHttpApp();
  t.teardown(async () => Promise.all([app.close(), slow.close(), http.close()]));
  const closed = await freePort();
  const cases: [string, number, string, RegExp | undefined][] = [
    ['overall SERVING', app.port, '', undefined],
    ['service SERVING', app.port, 'svc', undefined],
    ['NOT_SERVING', app.port, 'down', /responded with "NOT_SERVING"/],
    ['UNKNOWN', app.port, 'unknown', /responded with "UNKNOWN"/],
    ['unregistered service (NotFound)', app.port, 'nope', /code = NotFound/],
    ['not a gRPC server', http.port, '', /rpc error/],
    ['unreachable', closed, '', /connection refused/],
    ['deadline exceeded', slow.port, '', /DeadlineExceeded/],
  ];
  for (const [name, port, service, want] of cases) {
    const msg = await probe(checker({ kind: 'grpc', host: '127.0.0.1', port, service }));
    if (want) t.match(msg, want, name);
    else t.equal(msg, undefined, name);
  }
  t.match(app.seen[0]?.headers['user-agent'], /^istio-probe\/1\.0/, 'User-Agent istio-probe/1.0');
});

async function collect(c: WorkloadHealthChecker, n: number, onEvent: (e: HealthEvent, i: number) => void | Promise<void> = () => {}): Promise<HealthEvent[]> {
  const events: HealthEvent[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${events.length} of ${n} events: ${JSON.stringify(events)}`)), 10_000);
    c.onHealthEvent((e) => {
      events.push(e);
      void Promise.resolve(onEvent(e, events.length - 1)).then(() => {
        if (events.length === n) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    c.start();
  });
  c.stop();
  return events;
}

t.test('TestWorkloadHealthChecker_PerformApplicationHealthCheck/tcp: one event per transition', async (t) => {
  const port = await freePort();
  let srv: Server | undefined;
  const statuses = [false, true, false, true, false, true, false];
  const c = checker({ kind: 'tcpSocket', host: 'localhost', port });
  const events = await collect(c, statuses.length, async (_e, i) => {
    // Move the application to the next state once the current one has been reported.
    const next = statuses[i + 1];
    if (next === true) {
      srv = createServer((s) => s.destroy());
      srv.listen(port, '127.0.0.1');
      await once(srv, 'listening');
    } else if (next === false && srv) {
      await new Promise((r) => srv!.close(r));
      srv = undefined;
    }
  });
  t.same(
    events.map((e) => e.healthy),
    statuses,
  );
  t.match(events[0]?.message, /connection refused/, 'an unhealthy event carries the probe error');
  t.equal(events[1]?.message, undefined);
});

t.test('TestWorkloadHealthChecker_PerformApplicationHealthCheck/http', async (t) => {
  const statuses = [true, false, false, true];
  let n = 0;
  const s = await httpServer((_req, res) => {
    const ok = n < statuses.length && statuses[n];
    n++;
    res.writeHead(ok ? 200 : 500).end(ok ? 'foobar' : '');
  });
  t.teardown(() => s.close());
  const c = checker({ kind: 'httpGet', scheme: 'http', host: '127.0.0.1', port: s.port, path: '/test/health/check', headers: [] });
  const events = await collect(c, 4);
  t.same(
    events.map((e) => e.healthy),
    [true, false, true, false],
    'two failures in a row are one event',
  );
  await new Promise((r) => setTimeout(r, 100));
  t.equal(c.lastEvent?.healthy, false);
});

t.test('thresholds: consecutive counts before a transition', async (t) => {
  const seq = [true, true, false, false, false, true, true, true];
  let n = 0;
  const s = await httpServer((_req, res) => res.writeHead(n < seq.length && seq[n++] ? 200 : 500).end());
  t.teardown(() => s.close());
  const c = checker({ kind: 'httpGet', scheme: 'http', host: '127.0.0.1', port: s.port, path: '/', headers: [] }, { successThreshold: 2, failureThreshold: 3 });
  const events: { healthy: boolean; at: number }[] = [];
  c.onHealthEvent((e) => events.push({ healthy: e.healthy, at: n }));
  c.start();
  await new Promise((r) => setTimeout(r, 400));
  c.stop();
  t.same(
    events.slice(0, 3),
    [
      { healthy: true, at: 2 },
      { healthy: false, at: 5 },
      { healthy: true, at: 7 },
    ],
    'healthy after 2 successes, unhealthy after 3 failures, healthy after 2 more successes',
  );
});

t.test('the chain: Envoy not ready ⇒ unhealthy with its reason; initial delay', async (t) => {
  const app = await startHttpApp();
  t.teardown(() => app.close());
  let envoyReady = false;
  const envoyProbe = {
    check: async () => {
      if (!envoyReady) throw new Error('config not received from XDS server (is Istiod running?): …');
    },
  };
  const c = checker({ kind: 'httpGet', scheme: 'http', host: '127.0.0.1', port: app.port, path: '/', headers: [] }, { initialDelayMs: 150 }, { envoyProbe });
  const t0 = Date.now();
  const events = await collect(c, 2, () => {
    envoyReady = true;
  });
  t.ok(Date.now() - t0 >= 150, 'nothing before the initial delay');
  t.same(events, [{ healthy: false, message: 'config not received from XDS server (is Istiod running?): …' }, { healthy: true }]);
  t.equal(app.seen.length >= 1, true, 'the application is probed once Envoy is ready');
});

t.test('ProxyConfig readinessProbe: defaults and validation', async (t) => {
  const d = { defaultHost: '10.0.0.5' };
  t.same(workloadProbeConfig({ httpGet: { port: 8080 } }, d), {
    initialDelayMs: 0,
    timeoutMs: 1000,
    periodMs: 10_000,
    successThreshold: 1,
    failureThreshold: 1,
    method: { kind: 'httpGet', scheme: 'http', host: '10.0.0.5', port: 8080, path: '/', headers: [] },
  });
  t.match(
    workloadProbeConfig({ http_get: { port: 1, scheme: 'HTTPS', host: 'app.local', http_headers: [{ name: 'a', value: 'b' }] }, initial_delay_seconds: 3, period_seconds: '5' }, d),
    { initialDelayMs: 3000, periodMs: 5000, method: { scheme: 'https', host: 'app.local', headers: [['a', 'b']] } },
    'proto names and int64-as-string accepted',
  );
  t.match(workloadProbeConfig({ tcpSocket: { port: 9 } }, d).method, { kind: 'tcpSocket', host: '10.0.0.5', port: 9 });
  t.match(workloadProbeConfig({ exec: { command: ['true'] }, timeoutSeconds: 0 }, d), { timeoutMs: 1000, method: { kind: 'exec', command: ['true'] } });
  t.match(workloadProbeConfig({ grpc: { port: 7, service: 's' } }, d).method, { kind: 'grpc', port: 7, service: 's' });
  t.throws(() => workloadProbeConfig({ exec: { command: [] } }, d), /exec.command must be a non-empty list/);
  t.throws(() => workloadProbeConfig({ httpGet: { port: 1 }, tcpSocket: { port: 2 } }, d), /only one of/);
  t.throws(() => workloadProbeConfig({ httpGet: { port: 'x' } }, d), /port: want an integer/);
});

t.test('HealthCheckSubsystem: from PROXY_CONFIG, probing from afterStart, events to listeners', async (t) => {
  const app = await startHttpApp();
  t.teardown(() => app.close());
  const config = resolveAgentConfig({
    proxyTypeArg: 'sidecar',
    env: {
      POD_NAME: 'vm',
      POD_NAMESPACE: 'default',
      INSTANCE_IP: '127.0.0.1',
      DISABLE_ENVOY: 'true',
      PROXY_CONFIG: JSON.stringify({ readinessProbe: { httpGet: { port: app.port, path: '/hello' }, periodSeconds: 1 } }),
    },
    files: {},
    interfaces: [],
    parseYaml: jsonThenYaml(parseYaml),
  }).config;
  const h = new HealthCheckSubsystem(config);
  const got = new Promise<HealthEvent>((resolve) => h.onHealthEvent(resolve));
  await h.start();
  t.equal(app.seen.length, 0, 'nothing before afterStart');
  h.afterStart();
  t.same(await got, { healthy: true });
  t.equal(app.seen[0]?.remote, '127.0.0.6', 'from 127.0.0.6');
  t.equal(app.seen[0]?.path, '/hello');
  await h.stop();
});
