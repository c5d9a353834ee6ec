// Envoy's command line: ports of Istio's TestEnvoyArgs (default, deprecated-logs, file-flush),
// TestSplitComponentLog and TestReadToJSONIPv4/IPv6 (pkg/envoy/proxy_test.go), plus the
// configuration → launch plan mapping (FIPS ciphers, proxy uid, drain settings).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { jsonThenYaml, resolveAgentConfig } from '../../config/index.js';
import { allIpv6, BootstrapOverrideError, envoyArgs, envoyLaunchPlan, FIPS_GRPC_SSL_CIPHER_SUITES, readBootstrapOverride, splitComponentLog, type EnvoyArgsOptions } from '../../envoy/index.js';

const dir = mkdtempSync(join(tmpdir(), 'envoy-args-'));
// Istio's testdata/bootstrap.json and bootstrap.yaml.
const bootstrapJson = join(dir, 'bootstrap.json');
writeFileSync(bootstrapJson, '{\n  "key": "value"\n}\n');
const bootstrapYaml = join(dir, 'bootstrap.yaml');
writeFileSync(bootstrapYaml, 'key: value\nip: "[$(HOST_IP)]:8126"\nip2: "$(HOST_IP):8126"\n');

t.test('TestEnvoyArgs', async (t) => {
  // DefaultProxyConfig with concurrency 8; node IPs 10.75.2.9 and 192.168.11.18.
  const base: EnvoyArgsOptions = {
    configPath: 'test.json',
    drainDurationMs: 45_000,
    nodeIps: ['10.75.2.9', '192.168.11.18'],
    logLevel: 'trace',
    componentLogLevel: 'misc:error',
    skipDeprecatedLogs: false,
    enableCoreDump: false,
    configYaml: await readBootstrapOverride(bootstrapJson, ''),
    concurrency: 8,
  };
  const head = ['-c', 'test.json', '--drain-time-s', '45', '--drain-strategy', 'immediate', '--local-address-ip-version', 'v4'];
  t.same(
    envoyArgs(base),
    [
      ...head,
      '--file-flush-interval-msec',
      '1000',
      '--disable-hot-restart',
      '--allow-unknown-static-fields',
      '-l',
      'trace',
      '--component-log-level',
      'misc:error',
      '--config-yaml',
      '{"key":"value"}',
      '--concurrency',
      '8',
    ],
    'default',
  );
  t.same(
    envoyArgs({ ...base, skipDeprecatedLogs: true }),
    [
      ...head,
      '--file-flush-interval-msec',
      '1000',
      '--disable-hot-restart',
      '--allow-unknown-static-fields',
      '-l',
      'trace',
      '--component-log-level',
      'misc:error',
      '--skip-deprecated-logs',
      '--config-yaml',
      '{"key":"value"}',
      '--concurrency',
      '8',
    ],
    'deprecated-logs',
  );
  t.same(
    envoyArgs({ ...base, fileFlushMinSizeKb: 128, fileFlushIntervalMs: 10_000 }),
    [
      ...head,
      '--file-flush-interval-msec',
      '10000',
      '--disable-hot-restart',
      '--allow-unknown-static-fields',
      '--file-flush-min-size-kb',
      '128',
      '-l',
      'trace',
      '--component-log-level',
      'misc:error',
      '--config-yaml',
      '{"key":"value"}',
      '--concurrency',
      '8',
    ],
    'file-flush',
  );
});

t.test("argv details beyond Istio's cases", async (t) => {
  const base: EnvoyArgsOptions = {
    configPath: 'etc/istio/proxy/envoy-rev.json',
    drainDurationMs: 45_000,
    nodeIps: ['10.1.1.1'],
    logLevel: 'warning',
    componentLogLevel: 'misc:error',
    skipDeprecatedLogs: true,
    enableCoreDump: false,
  };
  t.same(
    envoyArgs(base),
    [
      '-c',
      'etc/istio/proxy/envoy-rev.json',
      '--drain-time-s',
      '45',
      '--drain-strategy',
      'immediate',
      '--local-address-ip-version',
      'v4',
      '--file-flush-interval-msec',
      '1000',
      '--disable-hot-restart',
      '--allow-unknown-static-fields',
      '-l',
      'warning',
      '--component-log-level',
      'misc:error',
      '--skip-deprecated-logs',
    ],
    "the injector's default sidecar argv (pkg/envoy/proxy.go args)",
  );
  t.same(envoyArgs({ ...base, drainDurationMs: 1_999 }).slice(2, 4), ['--drain-time-s', '1'], 'drain seconds truncate');
  t.same(envoyArgs({ ...base, nodeIps: ['fd00::1', '2001:db8::2'] }).slice(6, 8), ['--local-address-ip-version', 'v6'], 'v6 only when every IP is IPv6');
  t.same(envoyArgs({ ...base, nodeIps: ['fd00::1', '10.1.1.1'] }).slice(6, 8), ['--local-address-ip-version', 'v4'], 'dual stack is v4');
  t.notOk(allIpv6(['::ffff:10.1.1.1']), 'an IPv4-mapped address is IPv4 (Go To4)');
  t.same(envoyArgs({ ...base, fileFlushIntervalMs: 0, fileFlushMinSizeKb: 0 }).slice(8, 10), ['--file-flush-interval-msec', '1000'], 'zero flush settings keep the default');
  t.notOk(envoyArgs({ ...base, fileFlushMinSizeKb: 0 }).includes('--file-flush-min-size-kb'));
  const info = envoyArgs({ ...base, logLevel: 'info,misc:warn,upstream:debug', componentLogLevel: 'misc:error' });
  t.same(info.slice(12, 16), ['-l', 'info', '--component-log-level', 'misc:warn,upstream:debug'], 'component levels in --proxyLogLevel win over --proxyComponentLogLevel');
  const trailing = envoyArgs({ ...base, logLevel: 'info,', componentLogLevel: '' });
  t.notOk(trailing.includes('-l'), 'an empty last bare item clears the level');
  t.notOk(trailing.includes('--component-log-level'), 'no component levels at all');
  t.same(envoyArgs({ ...base, enableCoreDump: true, concurrency: 0 }).slice(-2), ['--skip-deprecated-logs', '--enable-core-dump'], 'core dump after skip-deprecated-logs; concurrency 0 omitted');
});

t.test('TestSplitComponentLog', async (t) => {
  const cases: [string, string, string[]][] = [
    ['info', 'info', []],
    ['info,warn', 'warn', []],
    ['info,misc:warn', 'info', ['misc:warn']],
    ['misc:warn,info', 'info', ['misc:warn']],
    ['misc:warn,info,upstream:debug', 'info', ['misc:warn', 'upstream:debug']],
  ];
  for (const [input, level, components] of cases) {
    const got = splitComponentLog(input);
    t.equal(got.level, level, `${input}: level`);
    t.same(got.components, components, `${input}: components`);
  }
  t.same(splitComponentLog('info,a:b:c').dropped, ['a:b:c'], 'items with two colons are dropped');
});

t.test('TestReadToJSONIPv4 / TestReadToJSONIPv6', async (t) => {
  t.equal(await readBootstrapOverride(bootstrapYaml, '169.254.169.254'), '{"ip":"[169.254.169.254]:8126","ip2":"169.254.169.254:8126","key":"value"}');
  t.equal(await readBootstrapOverride(bootstrapYaml, 'dead::beef'), '{"ip":"[dead::beef]:8126","ip2":"[dead::beef]:8126","key":"value"}');
  const nested = join(dir, 'nested.yaml');
  writeFileSync(nested, 'tracing:\n  http:\n    name: zipkin\n    b: 2\n    a: [1, "x"]\n');
  t.equal(await readBootstrapOverride(nested, ''), '{"tracing":{"http":{"a":[1,"x"],"b":2,"name":"zipkin"}}}', "keys sorted at every level, as Go's YAML→JSON");
});

t.test('an unreadable or unparsable override names the file', async (t) => {
  await t.rejects(
    readBootstrapOverride(join(dir, 'missing.yaml'), ''),
    new BootstrapOverrideError(`failed to read file: ${join(dir, 'missing.yaml')}, ENOENT: no such file or directory, open '${join(dir, 'missing.yaml')}'`),
  );
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'key: [unclosed\n');
  await t.rejects(readBootstrapOverride(bad, ''), { name: 'BootstrapOverrideError', message: new RegExp(`^failed to convert to JSON: ${bad}, `) });
});

function config(env: Record<string, string>, typeArg = 'sidecar', ips = ['10.244.1.17']) {
  return resolveAgentConfig({
    proxyTypeArg: typeArg,
    flags: { proxyComponentLogLevel: 'misc:error' },
    env: { INSTANCE_IP: ips[0]!, POD_NAME: 'p', POD_NAMESPACE: 'ns', ...env },
    files: {},
    interfaces: ips.map((address) => ({ name: 'eth0', address, internal: false })),
    parseYaml: jsonThenYaml(parseYaml),
  }).config;
}

t.test('launch plan: argv from the configuration, environment, uid and drain settings', async (t) => {
  const c = config({
    PROXY_CONFIG: JSON.stringify({ concurrency: 2, drainDuration: '30s', terminationDrainDuration: '7s', proxyAdminPort: 15999, binaryPath: '/opt/envoy', proxyMetadata: { FROM_METADATA: 'yes' } }),
    ENVOY_STATUS_PORT: '16021',
    MINIMUM_DRAIN_DURATION: '2s',
    EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'true',
  });
  const plan = envoyLaunchPlan(c, { bootstrapPath: 'etc/istio/proxy/envoy-rev.json', agentIsRoot: false });
  t.equal(plan.binaryPath, '/opt/envoy');
  t.same(plan.args.slice(0, 4), ['-c', 'etc/istio/proxy/envoy-rev.json', '--drain-time-s', '30']);
  t.same(plan.args.slice(-2), ['--concurrency', '2']);
  t.equal(plan.env.FROM_METADATA, 'yes', "proxyMetadata reaches Envoy's environment");
  t.notOk('GRPC_SSL_CIPHER_SUITES' in plan.env);
  t.equal(plan.uid, undefined);
  t.match(plan, { adminPort: 15999, localhost: '127.0.0.1', inboundOnly: true, terminationDrainDurationMs: 7000, minDrainDurationMs: 2000, exitOnZeroActiveConnections: true });
  t.ok(plan.knownListeners.has('listener.0.0.0.0_16021.downstream_cx_active'), 'ENVOY_STATUS_PORT listener excluded from the count');

  for (const policy of ['fips-140-2', 'fips-140-3']) {
    t.equal(envoyLaunchPlan(config({ COMPLIANCE_POLICY: policy }), { bootstrapPath: 'b', agentIsRoot: false }).env.GRPC_SSL_CIPHER_SUITES, FIPS_GRPC_SSL_CIPHER_SUITES, policy);
  }
  const dns53 = config({ DNS_PROXY_ADDR: 'localhost:53' });
  t.match(envoyLaunchPlan(dns53, { bootstrapPath: 'b', agentIsRoot: true }), { uid: 1337, gid: 1337 }, 'root agent with DNS on :53 runs Envoy as 1337');
  t.equal(envoyLaunchPlan(dns53, { bootstrapPath: 'b', agentIsRoot: false }).uid, undefined, 'not root: unchanged');
  t.equal(envoyLaunchPlan(config({}), { bootstrapPath: 'b', agentIsRoot: true }).uid, undefined, 'root, default DNS port: unchanged');

  const router = envoyLaunchPlan(config({}, 'router'), { bootstrapPath: 'b', agentIsRoot: false });
  t.equal(router.inboundOnly, false, 'gateways drain every listener');
  const v6 = envoyLaunchPlan(config({}, 'sidecar', ['fd00::17']), { bootstrapPath: 'b', agentIsRoot: false });
  t.equal(v6.localhost, '::1');
  t.same(v6.args.slice(6, 8), ['--local-address-ip-version', 'v6']);
});
