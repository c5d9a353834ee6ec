// Ports of Istio's TestGetMeshConfig (pilot/cmd/pilot-agent/config/config_test.go) plus the
// overlay rules around it: file < PROXY_CONFIG < annotation, proxyMetadata merged key by key.
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { defaultProxyConfig, formatDownwardApi, jsonThenYaml, proxyConfigToJson, resolveAgentConfig, type ProxyConfig, type ResolveInputs } from '../../config/index.js';

const yaml = jsonThenYaml(parseYaml);

function resolveWith(file?: string, env?: string, annotation?: string, extraEnv: Record<string, string> = {}) {
  const inputs: ResolveInputs = {
    env: { ...(env !== undefined ? { PROXY_CONFIG: env } : {}), ...extraEnv },
    files: {
      meshConfig: file,
      podAnnotations: annotation !== undefined ? formatDownwardApi([['proxy.istio.io/config', annotation]]) : undefined,
    },
    interfaces: [],
    parseYaml: yaml,
  };
  return resolveAgentConfig(inputs);
}

const meshOverride = `
defaultConfig:
  discoveryAddress: foo:123
  controlPlaneAuthPolicy: NONE
  proxyMetadata:
    SOME: setting
  drainDuration: 1s`;
const proxyOverride = `discoveryAddress: foo:123
proxyMetadata:
  SOME: setting
drainDuration: 1s
controlPlaneAuthPolicy: NONE`;

const overridesExpected: ProxyConfig = {
  ...defaultProxyConfig(),
  discoveryAddress: 'foo:123',
  proxyMetadata: { SOME: 'setting' },
  drainDuration: 1000,
  controlPlaneAuthPolicy: 'NONE',
};

const cases: { name: string; file?: string; env?: string; annotation?: string; expect: ProxyConfig }[] = [
  { name: 'Defaults', expect: defaultProxyConfig() },
  { name: 'Annotation Override', annotation: proxyOverride, expect: overridesExpected },
  { name: 'File Override', file: meshOverride, expect: overridesExpected },
  { name: 'Environment Override', env: proxyOverride, expect: overridesExpected },
  {
    name: 'Multiple Override',
    file: `
defaultConfig:
  discoveryAddress: file:123
  proxyMetadata:
    SOME: setting
  drainDuration: 1s
  extraStatTags: ["a"]
  proxyStatsMatcher:
    inclusionPrefixes: ["a"]
    inclusionSuffixes: ["b"]
    inclusionRegexps: ["c"]
  controlPlaneAuthPolicy: NONE`,
    env: `
discoveryAddress: environment:123
proxyMetadata:
OTHER: option`,
    annotation: `
discoveryAddress: annotation:123
proxyMetadata:
  ANNOTATION: something
drainDuration: 5s
extraStatTags: ["b"]
proxyStatsMatcher:
  inclusionPrefixes: ["a"]
  inclusionSuffixes: ["e"]
  inclusionRegexps: ["f"]
`,
    expect: {
      ...defaultProxyConfig(),
      discoveryAddress: 'annotation:123',
      proxyMetadata: { ANNOTATION: 'something', SOME: 'setting' },
      drainDuration: 5000,
      extraStatTags: ['b'],
      proxyStatsMatcher: { inclusionPrefixes: ['a'], inclusionSuffixes: ['e'], inclusionRegexps: ['f'] },
      controlPlaneAuthPolicy: 'NONE',
    },
  },
];

for (const c of cases) {
  t.test(`TestGetMeshConfig/${c.name}`, async (t) => {
    const { config } = resolveWith(c.file, c.env, c.annotation);
    t.same(proxyConfigToJson(config.proxyConfig), proxyConfigToJson(c.expect));
  });
}

t.test('overlay replaces whole messages and lists, keeps oneofs exclusive', async (t) => {
  const { config } = resolveWith(
    'defaultConfig: {tracing: {zipkin: {address: "z:9411"}, sampling: 10}, extraStatTags: [a, b]}',
    '{"tracing": {"sampling": 5}, "tracingServiceName": "CANONICAL_NAME_ONLY"}',
  );
  const pc = config.proxyConfig;
  t.same(pc.tracing, { sampling: 5 }, 'tracing replaced, not deep-merged');
  t.same(pc.extraStatTags, ['a', 'b']);
  t.equal(pc.tracingServiceName, 'CANONICAL_NAME_ONLY');
  t.equal(pc.serviceCluster, undefined, 'oneof cluster_name: service cluster cleared');
});

t.test('snake_case names, numeric enums and string integers are accepted like protojson', async (t) => {
  const { config } = resolveWith(undefined, 'discovery_address: a:1\ncontrol_plane_auth_policy: 0\nproxy_admin_port: "15001"\nconcurrency: 2');
  t.equal(config.proxyConfig.discoveryAddress, 'a:1');
  t.equal(config.proxyConfig.controlPlaneAuthPolicy, 'NONE');
  t.equal(config.proxyConfig.proxyAdminPort, 15001);
  t.equal(config.proxyConfig.concurrency, 2);
});

t.test('unknown fields are ignored (Istio lenient parse) and reported at info', async (t) => {
  const r = resolveWith(undefined, '{"discoveryAddress":"x:1","notAField":true}');
  t.equal(r.config.proxyConfig.discoveryAddress, 'x:1');
  t.match(r.infos.join('\n'), /notAField/);
});

t.test('canonical protojson: durations, wrappers with presence, defaults omitted', async (t) => {
  const { config } = resolveWith(undefined, '{"drainDuration":"1.5s","concurrency":0,"statsCompression":false,"holdApplicationUntilProxyStarts":true,"interceptionMode":"REDIRECT"}');
  const j = proxyConfigToJson(config.proxyConfig);
  t.equal(j.drainDuration, '1.500s');
  t.equal(j.concurrency, 0, 'Int32Value 0 is emitted');
  t.equal(j.statsCompression, false, 'BoolValue false is emitted');
  t.equal(j.holdApplicationUntilProxyStarts, true);
  t.notOk('interceptionMode' in j, 'zero enum omitted');
  t.equal(j.terminationDrainDuration, '5s');
});

t.test('post-processing: ISTIO_CPU_LIMIT, serviceCluster fallback, annotation overrides', async (t) => {
  const a = resolveWith(undefined, '{"serviceCluster": ""}', undefined, { ISTIO_CPU_LIMIT: '3' });
  t.equal(a.config.proxyConfig.concurrency, 3);
  t.equal(a.config.proxyConfig.serviceCluster, 'istio-proxy');
  const b = resolveWith(undefined, '{"concurrency": 1}', undefined, { ISTIO_CPU_LIMIT: '3' });
  t.equal(b.config.proxyConfig.concurrency, 1, 'explicit concurrency wins over the CPU limit');
  const bad = resolveWith(undefined, undefined, undefined, { ISTIO_CPU_LIMIT: '2cpu' });
  t.equal(bad.warnings.filter((w) => w.includes('ISTIO_CPU_LIMIT')).length, 1, 'a bad ISTIO_CPU_LIMIT is warned about once');

  const ann = formatDownwardApi([
    ['sidecar.istio.io/discoveryAddress', 'istiod-canary.istio-system.svc:15012'],
    ['status.sidecar.istio.io/port', '15321'],
  ]);
  const c = resolveAgentConfig({ env: {}, files: { podAnnotations: ann }, interfaces: [], parseYaml: yaml });
  t.equal(c.config.proxyConfig.discoveryAddress, 'istiod-canary.istio-system.svc:15012');
  t.equal(c.config.proxyConfig.statusPort, 15321);
  const d = resolveAgentConfig({ env: {}, files: { podAnnotations: formatDownwardApi([['status.sidecar.istio.io/port', 'abc']]) }, interfaces: [], parseYaml: yaml });
  t.equal(d.config.proxyConfig.statusPort, 0, 'QUIRK: a non-integer status port annotation disables the status server');
  t.match(d.warnings.join('\n'), /status\.sidecar\.istio\.io\/port=abc/);
});

t.test('--concurrency and --templateFile flags', async (t) => {
  const r = resolveAgentConfig({ env: {}, files: {}, interfaces: [], parseYaml: yaml, flags: { concurrency: 4, templateFile: '/t.json' } });
  t.equal(r.config.proxyConfig.concurrency, 4);
  t.equal(r.config.proxyConfig.proxyBootstrapTemplatePath, '/t.json');
  const s = resolveAgentConfig({ env: { PROXY_CONFIG: '{"customConfigFile":"/c.json"}' }, files: {}, interfaces: [], parseYaml: yaml, flags: { templateFile: '/t.json' } });
  t.equal(s.config.proxyConfig.proxyBootstrapTemplatePath, undefined, 'customConfigFile wins over --templateFile');
});

t.test('bad ProxyConfig input is one clear error naming the source and value', async (t) => {
  t.throws(() => resolveWith(undefined, '{"drainDuration": "abc"}'), /failed to unmarshal mesh config from environment.*drainDuration.*"abc"/);
  t.throws(() => resolveWith(undefined, '{not json or yaml: ['), /failed to unmarshal mesh config from environment/);
  t.throws(() => resolveWith(undefined, undefined, 'proxyAdminPort: lots'), /from annotation.*proxyAdminPort/);
  t.throws(() => resolveWith('defaultConfig: [1, 2]'), /from file/);
  t.throws(() => resolveWith(undefined, '{"discoveryAddress": "no-port"}'), /invalid discovery address/);
  t.throws(() => resolveWith(undefined, '{"configPath": ""}'), /config path must be set/);
  t.throws(() => resolveWith(undefined, '{"controlPlaneAuthPolicy": "INHERIT"}'), /unrecognized control plane auth policy/);
});
