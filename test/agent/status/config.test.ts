// The status server's configuration inputs, pure: ports of Istio's TestNewServer (all 17 cases),
// TestParseScrapeTargets, TestIstioReservedPortReason and TestNewServerPrometheusNormalization
// (pilot/cmd/pilot-agent/status/server_test.go), plus the agent-level wrapping that names the
// variable, and the format/Accept/encoding negotiation (TestNegotiateMetricsFormat).
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { jsonThenYaml, resolveAgentConfig } from '../../../config/index.js';
import {
  APP_ACCEPTS,
  ENVOY_ACCEPTS,
  FMT_OPENMETRICS_0_0_1,
  FMT_OPENMETRICS_1_0_0,
  FMT_TEXT,
  istioReservedPortReason,
  negotiateEncoding,
  negotiateMetricsFormat,
  normalizeScrapeConfig,
  parseAppProbers,
  parseScrapeTargets,
  rewriteAccept,
  StatusConfigError,
  statusServerOptions,
} from '../../../agent/status/index.js';

t.test('TestNewServer: ISTIO_KUBE_APP_PROBERS validation (17 cases)', async (t) => {
  const cases: [string, string | undefined][] = [
    ['invalid-prober-json-encoding', 'failed to decode'],
    ['{"abc": {"path": "/app-foo/health"}}', 'invalid path'],
    ['{"/app-health/hello-world/readyz": {"exec": {"command": [ "true" ]}}}', 'invalid prober type'],
    ['{"/app-health/hello-world/readyz": {"tcpSocket": {"port": 8888}}}', undefined],
    ['{"/app-health/hello-world/readyz": {"tcpSocket": {"port": 8888}, "httpGet": {"path": "/", "port": 7777}}}', 'must be one of type httpGet, tcpSocket or gRPC'],
    ['{"/app-health/hello-world/readyz": {"grpc": {"port": 8888}, "httpGet": {"path": "/", "port": 7777}}}', 'must be one of type httpGet, tcpSocket or gRPC'],
    ['{"/app-health/hello-world/readyz": {"tcpSocket": {"port": "tcp"}}}', 'must be int type'],
    ['{"/app-health/hello-world/readyz": {"httpGet": {"path": "/hello/sunnyvale", "port": "container-port-dontknow"}}}', 'must be int type'],
    ['{"/app-health/hello-world/readyz": {"httpGet": {"path": "/hello/sunnyvale", "port": 8080}},"/app-health/business/livez": {"httpGet": {"path": "/business/live", "port": 9090}}}', undefined],
    ['{"/app-health/hello-world/readyz": {"httpGet": {"path": "/hello/sunnyvale", "port": 8080},"initialDelaySeconds": 120,"timeoutSeconds": 10,"periodSeconds": 20}}', undefined],
    ['{"/app-health/hello-world/readyz": {"httpGet": {"path": "/hello/sunnyvale", "port": 8080}},\n"/app-health/business/livez": {"httpGet": {"port": 9090}}}', undefined],
    ['{}', undefined],
    ['{"/app-health/hello-world/readyz": {"httpGet": {"path": "hello/sunnyvale", "port": 8080}},\n"/app-health/business/livez": {"httpGet": {"port": 9090}}}', undefined],
    ['{"/app-health/hello-world/readyz": {"gRPC": {"port": 8080}}}', undefined],
    ['{"/app-health/hello-world/readyz": {"gRPC": {"port": 8080, "service": null}}}', undefined],
    ['{"/app-health/hello-world/readyz": {"gRPC": {"port": 8080, "service": "foo"}}}', undefined],
    ['{"/app-health/hello-world/readyz": {"gRPC": {"port": 8080, "service": "foo"}, "timeoutSeconds": 10}}', undefined],
  ];
  t.equal(cases.length, 17);
  for (const [json, err] of cases) {
    if (err === undefined) t.doesNotThrow(() => parseAppProbers(json), json);
    else t.throws(() => parseAppProbers(json), new RegExp(err), json);
  }
});

t.test('app probers: decoded as Go decodes them', async (t) => {
  const p = parseAppProbers(
    '{"/app-health/a/livez":{"httpGet":{"port":80}},"/app-health/a/readyz":{"HTTPGET":{"path":"x","port":81,"scheme":"HTTPS"},"timeoutSeconds":3},"/app-lifecycle/a/prestopz":{"grpc":{"port":90}}}',
  );
  t.same(p.get('/app-health/a/livez'), { kind: 'httpGet', port: 80, path: '/', scheme: 'HTTP', timeoutSeconds: 0 }, 'no path ⇒ /');
  t.same(p.get('/app-health/a/readyz'), { kind: 'httpGet', port: 81, path: '/x', scheme: 'HTTPS', timeoutSeconds: 3 }, 'case-insensitive field names; leading / added');
  t.same(p.get('/app-lifecycle/a/prestopz'), { kind: 'grpc', port: 90, service: '', timeoutSeconds: 0 });
  t.equal(parseAppProbers('').size, 0, 'empty ⇒ no probes');
  t.match(parseAppProbers('{"/app-health/a/livez":{"httpGet":{"port":80,"scheme":"https"}}}').get('/app-health/a/livez'), { scheme: 'HTTP' }, 'HTTPS only when exactly HTTPS');
  t.throws(() => parseAppProbers('[]'), /failed to decode app prober err = json: cannot unmarshal array/);
  t.throws(() => parseAppProbers('{"/app-health/a/livez":{"httpGet":{"port":80.5}}}'), /failed to decode/, 'a fractional port is a decode error');
  t.throws(() => parseAppProbers('{"/app-health/a/livez":{"grpc":{"port":"80"}}}'), /failed to decode/, 'a gRPC port must be a number');
  t.throws(() => parseAppProbers('{"/app-health/a/livez":{"timeoutSeconds":"1","tcpSocket":{"port":1}}}'), /failed to decode/);
  t.throws(() => parseAppProbers('{"/app-health/a/livez":null}'), /invalid prober type/);
  t.throws(() => parseAppProbers('{"/app-health/a/b/livez":{"tcpSocket":{"port":1}}}'), /invalid path, must be in form of regex pattern \^\/\(app-health\|app-lifecycle\)/);
});

t.test('TestParseScrapeTargets', async (t) => {
  const ok: [string, { port: string; path: string }[] | undefined][] = [
    ['8080:/metrics', [{ port: '8080', path: '/metrics' }]],
    [
      '8080:/metrics,9100:/custom',
      [
        { port: '8080', path: '/metrics' },
        { port: '9100', path: '/custom' },
      ],
    ],
    ['8080', [{ port: '8080', path: '/metrics' }]],
    [
      '8080:,9100:/custom',
      [
        { port: '8080', path: '/metrics' },
        { port: '9100', path: '/custom' },
      ],
    ],
    [
      ' 8080:/metrics , 9100:/custom ',
      [
        { port: '8080', path: '/metrics' },
        { port: '9100', path: '/custom' },
      ],
    ],
    ['', undefined],
    [',,,', undefined],
    [
      '8080:/metrics,8080:/other',
      [
        { port: '8080', path: '/metrics' },
        { port: '8080', path: '/other' },
      ],
    ],
    ['8080:/metrics?foo=bar', [{ port: '8080', path: '/metrics?foo=bar' }]],
  ];
  for (const [input, want] of ok) t.same(parseScrapeTargets(input), want, JSON.stringify(input));
  t.throws(() => parseScrapeTargets(':/metrics'), /empty port/);
  t.throws(() => parseScrapeTargets('8080:/metrics,:/bad,9100:/custom'), /empty port/);
});

t.test('TestIstioReservedPortReason', async (t) => {
  for (const p of ['15000', '15001', '15004', '15006', '15008', '15020', '15021', '15053', '15090']) t.ok(istioReservedPortReason(p), `reserved/${p}`);
  for (const p of ['80', '8080', '9090', '15002', '15007', '15091', '15099', '']) t.notOk(istioReservedPortReason(p), `non-reserved/${p}`);
  t.notOk(istioReservedPortReason('015020'), 'boundary/leading-zero not matched (string layer)');
});

t.test('TestNewServerPrometheusNormalization (14 cases)', async (t) => {
  const cases: [string, string, { port?: string; targets?: { port: string; path: string }[] } | 'error'][] = [
    ['legacy single-port JSON synthesizes one target', '{"scrape":"true","port":"8080","path":"/metrics"}', { port: '8080', targets: [{ port: '8080', path: '/metrics' }] }],
    [
      'new-format JSON with targets field is preserved',
      '{"scrape":"true","port":"8080","path":"/metrics","targets":[{"port":"8080","path":"/metrics"},{"port":"9100","path":"/custom"}]}',
      {
        port: '8080',
        targets: [
          { port: '8080', path: '/metrics' },
          { port: '9100', path: '/custom' },
        ],
      },
    ],
    ['target port equal to status port is an error', '{"scrape":"true","targets":[{"port":"15020","path":"/metrics"}]}', 'error'],
    ['empty port defaults to 80 and synthesizes one target', '{"scrape":"true"}', { port: '80', targets: [{ port: '80', path: '/metrics' }] }],
    ['empty path in target defaults to /metrics', '{"scrape":"true","targets":[{"port":"8080","path":""}]}', { targets: [{ port: '8080', path: '/metrics' }] }],
    ['target on reserved Envoy admin port is rejected', '{"scrape":"true","targets":[{"port":"15000","path":"/metrics"}]}', 'error'],
    ['target on reserved Envoy Prometheus port is rejected', '{"scrape":"true","targets":[{"port":"15090","path":"/metrics"}]}', 'error'],
    ['target on reserved inbound redirect port is rejected', '{"scrape":"true","targets":[{"port":"15006","path":"/metrics"}]}', 'error'],
    ['one good target plus one reserved target is rejected', '{"scrape":"true","targets":[{"port":"8080","path":"/metrics"},{"port":"15000","path":"/metrics"}]}', 'error'],
    [
      'both legacy Port and Targets present',
      '{"scrape":"true","port":"8080","path":"/metrics","targets":[{"port":"9100","path":"/custom"}]}',
      { port: '8080', targets: [{ port: '9100', path: '/custom' }] },
    ],
    ['targets but no top-level port syncs Port from Targets[0]', '{"scrape":"true","targets":[{"port":"8080","path":"/metrics"}]}', { port: '8080', targets: [{ port: '8080', path: '/metrics' }] }],
    ['leading-zero port equal to status port is rejected numerically', '{"scrape":"true","targets":[{"port":"015020","path":"/metrics"}]}', 'error'],
    ['leading-zero reserved port is rejected numerically', '{"scrape":"true","targets":[{"port":"015000","path":"/metrics"}]}', 'error'],
    ['non-numeric port is rejected', '{"scrape":"true","targets":[{"port":"abc","path":"/metrics"}]}', 'error'],
  ];
  t.equal(cases.length, 14);
  for (const [name, json, want] of cases) {
    if (want === 'error') {
      t.throws(() => normalizeScrapeConfig(json, 15020), name);
      continue;
    }
    const c = normalizeScrapeConfig(json, 15020);
    if (want.port) t.equal(c?.port, want.port, `${name}: port`);
    t.same(c?.targets, want.targets, `${name}: targets`);
  }
  t.equal(normalizeScrapeConfig('{"scrape":"false","port":"8080"}', 15020), undefined, 'scrape=false disables');
  t.throws(() => normalizeScrapeConfig('{"port":"15020"}', 15020), /recursive loop/, 'legacy port = status port');
  t.throws(() => normalizeScrapeConfig('{"port":8080}', 15020), /cannot unmarshal number/, "ports are strings in Istio's JSON");
  t.throws(() => normalizeScrapeConfig('', 15020), /failed to unmarshal ISTIO_PROMETHEUS_ANNOTATIONS/, 'set but empty ⇒ JSON error');
  // Deviation from Istio (handleStats): the normalised target is what is scraped.
  t.same(normalizeScrapeConfig('{"targets":[{"port":"9100"}]}', 15020)?.targets, [{ port: '9100', path: '/metrics' }]);
});

function agentConfig(env: Record<string, string>, type = 'sidecar') {
  return resolveAgentConfig({
    proxyTypeArg: type,
    env: { POD_NAME: 'p', POD_NAMESPACE: 'default', INSTANCE_IP: '10.1.2.3', ...env },
    files: {},
    interfaces: [{ name: 'eth0', address: '10.1.2.3', internal: false }],
    parseYaml: jsonThenYaml(parseYaml),
  }).config;
}

t.test('statusServerOptions: bad input is one error naming the variable', async (t) => {
  t.throws(() => statusServerOptions(agentConfig({ ISTIO_KUBE_APP_PROBERS: '{bad' })), StatusConfigError);
  t.throws(() => statusServerOptions(agentConfig({ ISTIO_KUBE_APP_PROBERS: '{bad' })), /^invalid ISTIO_KUBE_APP_PROBERS: failed to decode app prober err = /);
  t.throws(() => statusServerOptions(agentConfig({ ISTIO_PROMETHEUS_ANNOTATIONS: 'nope' })), /^invalid ISTIO_PROMETHEUS_ANNOTATIONS "nope": failed to unmarshal/);
  t.throws(() => statusServerOptions(agentConfig({ ISTIO_PROMETHEUS_ANNOTATIONS: '{"port":"15020"}' })), /ISTIO_PROMETHEUS_ANNOTATIONS.*recursive loop/);
  t.equal(statusServerOptions(agentConfig({ ISTIO_PROMETHEUS_ANNOTATIONS: 'nope' }, 'router')).scrape, undefined, 'gateways never merge application metrics (and do not read the variable)');
  const o = statusServerOptions(agentConfig({ ISTIO_PROMETHEUS_ANNOTATIONS: '{"port":"9100"}' }));
  t.same(o.scrape?.targets, [{ port: '9100', path: '/metrics' }]);
  t.equal(o.probeDestination, '10.1.2.3');
  t.equal(o.probeSourceAddress, '127.0.0.6');
  t.equal(o.adminHost, '127.0.0.1');
  t.equal(statusServerOptions(agentConfig({ REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION: 'true' })).probeDestination, 'localhost');
  const v6 = statusServerOptions(agentConfig({ INSTANCE_IP: 'fd00::5' }));
  t.equal(v6.probeSourceAddress, '::6', 'a routable IPv6 INSTANCE_IP probes from ::6');
  t.equal(v6.adminHost, '::1');
  t.equal(statusServerOptions(agentConfig({ INSTANCE_IP: 'fe80::5' })).probeSourceAddress, '127.0.0.6', 'a link-local IPv6 INSTANCE_IP does not');
});

t.test('TestNegotiateMetricsFormat', async (t) => {
  t.equal(negotiateMetricsFormat('application/openmetrics-text; version=0.0.1'), FMT_OPENMETRICS_0_0_1);
  t.equal(negotiateMetricsFormat('application/openmetrics-text; version=1.0.0'), FMT_OPENMETRICS_1_0_0);
  t.equal(negotiateMetricsFormat('application/openmetrics-text; version=0.0.1; charset=utf-8'), FMT_OPENMETRICS_0_0_1);
  t.equal(negotiateMetricsFormat('application/openmetrics-text; version=1.0.0; charset=utf-8'), FMT_OPENMETRICS_1_0_0);
  t.equal(negotiateMetricsFormat('text/plain; version=0.0.4; charset=utf-8'), FMT_TEXT);
  t.equal(negotiateMetricsFormat(''), FMT_TEXT);
  t.equal(negotiateMetricsFormat('application/openmetrics-text'), FMT_OPENMETRICS_0_0_1, 'no version ⇒ 0.0.1');
  t.equal(negotiateMetricsFormat('application/openmetrics-text; version=2.0.0'), FMT_TEXT, 'unknown version ⇒ text');
});

t.test('Accept rewriting per source', async (t) => {
  const prom = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
  t.equal(
    rewriteAccept(prom, APP_ACCEPTS),
    'application/openmetrics-text;version=1.0.0;q=0.3,application/openmetrics-text;version=0.0.1;q=0.2,text/plain;version=0.0.4;q=0.1',
    'wildcard expands to an entry already present',
  );
  t.equal(rewriteAccept(prom, ENVOY_ACCEPTS), 'text/plain;version=0.0.4;q=0.1', 'Envoy is only asked for text');
  const proto = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.8,' + prom;
  t.notMatch(rewriteAccept(proto, APP_ACCEPTS), /protobuf/, 'protobuf is never asked for');
  t.equal(rewriteAccept('application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited', APP_ACCEPTS), 'text/plain;version=0.0.4', 'protobuf only ⇒ text');
  t.equal(rewriteAccept('*/*', APP_ACCEPTS), 'text/plain;version=0.0.4;q=0.1');
  t.equal(rewriteAccept('application/*', APP_ACCEPTS), 'application/openmetrics-text;version=0.0.1;q=0.1');
  t.equal(rewriteAccept('/', APP_ACCEPTS), 'text/plain;version=0.0.4', 'unparsable ⇒ text');
  t.equal(rewriteAccept(undefined, APP_ACCEPTS), 'text/plain;version=0.0.4');
  t.equal(rewriteAccept('text/*', ENVOY_ACCEPTS), 'text/*;q=0.1');
});

t.test('Accept-Encoding negotiation (TestHTTPCompressionOnStats choices)', async (t) => {
  t.equal(negotiateEncoding(undefined, true), undefined);
  t.equal(negotiateEncoding('gzip', true), 'gzip');
  t.equal(negotiateEncoding('zstd', true), 'zstd');
  t.equal(negotiateEncoding('gzip, zstd', true), 'zstd', 'prefer zstd over gzip');
  t.equal(negotiateEncoding('deflate, gzip;q=1.0, zstd;q=0.5', true), 'gzip', 'client likes gzip more than zstd');
  t.equal(negotiateEncoding('br, lz4', true), undefined, 'unsupported encodings ignored');
  t.equal(negotiateEncoding('gzip;q=0', true), undefined);
  t.equal(negotiateEncoding('gzip, zstd', false), 'gzip', 'without zlib zstd (Node < 22.15) gzip is chosen');
  t.equal(negotiateEncoding('zstd', false), undefined);
});
