import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { canonicalIp, defaultDnsDomain, formatDownwardApi, jsonThenYaml, parseProxyType, resolveAgentConfig, resolveIdentity, usableInterfaceIps } from '../../config/index.js';

const ifaces = [
  { name: 'lo', address: '127.0.0.1', internal: true },
  { name: 'lo', address: '::1', internal: true },
  { name: 'eth0', address: '10.1.1.5', internal: false },
  { name: 'eth0', address: 'fe80::1', internal: false },
  { name: 'eth0', address: 'fd00::5', internal: false },
  { name: 'net1', address: '192.168.7.7', internal: false },
  { name: 'eth2', address: '::ffff:172.16.0.9', internal: false },
];

t.test('TestPilotDefaultDomainKubernetes', async (t) => {
  t.equal(defaultDnsDomain('default', ''), 'default.svc.cluster.local');
  t.equal(defaultDnsDomain('default', 'my.domain'), 'my.domain');
});

t.test('proxy type: default sidecar, Istio error for others', async (t) => {
  t.equal(parseProxyType(undefined), 'sidecar');
  t.equal(parseProxyType('router'), 'router');
  t.throws(() => parseProxyType('gateway'), /^Invalid proxy Type: gateway$/);
});

t.test('IPs: INSTANCE_IP first, scanned addresses after, loopback/link-local skipped, mapped unwrapped', async (t) => {
  t.same(usableInterfaceIps(ifaces), ['10.1.1.5', 'fd00::5', '192.168.7.7', '172.16.0.9']);
  const id = resolveIdentity({ proxyType: 'sidecar', instanceIp: '10.1.1.5', podName: 'web-0', podNamespace: 'shop', domainFlag: '', interfaces: ifaces, excludeInterfaces: ['net1'] });
  t.same(id.ipAddresses, ['10.1.1.5', 'fd00::5', '172.16.0.9']);
  t.equal(id.ipMode, 'dual');
  t.equal(id.serviceNode, 'sidecar~10.1.1.5~web-0.shop~shop.svc.cluster.local');
  t.equal(id.localhost, '127.0.0.1');
});

t.test('no interface addresses: loopbacks appended even with INSTANCE_IP', async (t) => {
  const id = resolveIdentity({ proxyType: 'router', instanceIp: 'fd00::9', podName: '', podNamespace: '', domainFlag: '', interfaces: [], excludeInterfaces: [] });
  t.same(id.ipAddresses, ['fd00::9', '127.0.0.1', '::1']);
  t.equal(id.id, '.');
  t.equal(id.serviceNode, 'router~fd00::9~.~.svc.cluster.local');
});

t.test('IPv6-only proxies use ::1; invalid INSTANCE_IP is ignored', async (t) => {
  const id = resolveIdentity({
    proxyType: 'sidecar',
    instanceIp: 'not-an-ip',
    podName: 'a',
    podNamespace: 'b',
    domainFlag: 'x.y',
    interfaces: [{ name: 'eth0', address: '2001:db8::0:1', internal: false }],
    excludeInterfaces: [],
  });
  t.same(id.ipAddresses, ['2001:db8::1']);
  t.equal(id.ipMode, 'v6');
  t.equal(id.localhost, '::1');
  t.equal(canonicalIp('2001:DB8:0:0::1'), '2001:db8::1');
});

t.test('proxyMetadata fills the environment; the process environment wins', async (t) => {
  const r = resolveAgentConfig({
    env: { PROXY_CONFIG: '{"proxyMetadata":{"POD_NAMESPACE":"vm-ns","ISTIO_META_CLUSTER_ID":"c1","TRUST_DOMAIN":"from-meta"}}', TRUST_DOMAIN: 'from-env' },
    files: {},
    interfaces: [],
    parseYaml: jsonThenYaml(parseYaml),
  });
  t.equal(r.config.env.POD_NAMESPACE, 'vm-ns');
  t.equal(r.config.env.ISTIO_META_CLUSTER_ID, 'c1');
  t.equal(r.config.env.TRUST_DOMAIN, 'from-env');
  t.equal(r.config.identity.dnsDomain, 'vm-ns.svc.cluster.local');
  t.equal(r.config.environ.POD_NAMESPACE, 'vm-ns');
});

t.test('TestExtractCAHeadersFromEnv (CA_HEADER_* family)', async (t) => {
  const cases: [string, Record<string, string>, [string, string][]][] = [
    ['no CA headers', { RANDOM_KEY: 'value' }, []],
    ['single CA header', { CA_HEADER_FOO: 'foo' }, [['FOO', 'foo']]],
    [
      'multiple CA headers',
      { CA_HEADER_FOO: 'foo', CA_HEADER_BAR: 'bar' },
      [
        ['BAR', 'bar'],
        ['FOO', 'foo'],
      ],
    ],
    [
      'mixed CA and non-CA headers',
      { CA_HEADER_FOO: 'foo', XDS_HEADER_BAR: 'bar', CA_HEADER_BAZ: '=baz' },
      [
        ['BAZ', '=baz'],
        ['FOO', 'foo'],
      ],
    ],
  ];
  for (const [name, env, want] of cases) {
    const r = resolveAgentConfig({ env, files: {}, interfaces: [], parseYaml: jsonThenYaml() });
    t.same([...r.config.env.CA_HEADER_].sort(), want, name);
  }
});

t.test('downward API: unreadable file is a warning, not a crash', async (t) => {
  const r = resolveAgentConfig({ env: {}, files: { podLabels: 'app="ok"\nbad="unterminated' }, interfaces: [], parseYaml: jsonThenYaml() });
  t.equal(r.config.podLabels.size, 0);
  t.match(r.warnings.join('\n'), /failed to read pod labels/);
  const ok = resolveAgentConfig({
    env: {},
    files: {
      podLabels: formatDownwardApi([
        ['app', 'a "quoted"\nvalue'],
        ['x', 'ü'],
      ]),
    },
    interfaces: [],
    parseYaml: jsonThenYaml(),
  });
  t.equal(ok.config.podLabels.get('app'), 'a "quoted"\nvalue');
  t.equal(ok.config.podLabels.get('x'), 'ü');
});
