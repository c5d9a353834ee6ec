// writeBootstrap from the agent's real configuration: which bootstrap Envoy gets (customConfigFile,
// custom templates), the file on disk (path as Envoy's -c gets it, directory mode, atomicity),
// and the bootstrap for every pod Istio's injector renders.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { jsonThenYaml, resolveAgentConfig, type AgentConfig, type ProxyFlags } from '../../config/index.js';
import { BootstrapError, writeBootstrap } from '../../bootstrap/index.js';
import { loadEnvoySchema } from '../support/envoy-schema.js';
import { containerEnv, findContainer, injectedPodsOrSkip, resolvePodAgentConfig } from '../support/injection.js';

const schema = loadEnvoySchema();
const startCwd = process.cwd();

/** Runs `fn` in a fresh working directory, as the agent runs in `/` of its container. */
async function inTempCwd<T>(t: { teardown: (fn: () => void) => void }, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'bootstrap-write-'));
  process.chdir(dir);
  t.teardown(() => {
    process.chdir(startCwd);
    rmSync(dir, { recursive: true, force: true });
  });
  return fn(dir);
}

function agentConfig(env: Record<string, string>, flags: Partial<ProxyFlags> = {}): AgentConfig {
  return resolveAgentConfig({
    env: { POD_NAME: 'web-0', POD_NAMESPACE: 'shop', INSTANCE_IP: '10.0.0.5', ...env },
    flags,
    files: {},
    interfaces: [{ name: 'eth0', address: '10.0.0.5', internal: false }],
    parseYaml: jsonThenYaml(parseYaml),
  }).config;
}

t.test('default sidecar: cleaned relative path, 0700 directory, valid bootstrap', (t) =>
  inTempCwd(t, async (dir) => {
    const cfg = agentConfig({});
    const res = await writeBootstrap(cfg, {});
    t.strictSame(res, { path: 'etc/istio/proxy/envoy-rev.json', generated: true }, 'the path Istio passes to -c');
    t.equal(statSync(join(dir, 'etc/istio/proxy')).mode & 0o777, 0o700);
    const b = JSON.parse(readFileSync(join(dir, res.path), 'utf8'));
    t.strictSame(schema.validate(b), []);
    t.equal(b.node.id, 'sidecar~10.0.0.5~web-0.shop~shop.svc.cluster.local');
    t.equal(b.node.metadata.ISTIO_VERSION, '1.32.0', 'buildInfo().Version');
    t.strictSame(b.node.metadata.PILOT_SAN, ['istiod.istio-system.svc'], 'PILOT_SAN from the discovery address under MUTUAL_TLS');
    t.equal(b.node.metadata.ENVOY_SKIP_DEPRECATED_LOGS, 'true');
    t.equal(b.static_resources.clusters.find((c: { name: string }) => c.name === 'xds-grpc').load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe.path, './etc/istio/proxy/XDS');
    t.notOk(b.cluster_manager, 'no --outlierLogPath: no cluster_manager');
    t.strictSame(readdirSync(join(dir, 'etc/istio/proxy')), ['envoy-rev.json'], 'no temp files left behind');
  }),
);

t.test('PILOT_SAN and the environment the bootstrap reads', (t) =>
  inTempCwd(t, async (dir) => {
    const cfg = agentConfig({
      PROXY_CONFIG: JSON.stringify({ discoveryAddress: 'localhost:15012', configPath: `${dir}/abs` }),
      ISTIO_DELTA_XDS: 'false',
      ENVOY_PROMETHEUS_PORT: '16090',
      GCP_METADATA: 'p|1|c|europe-west1',
      GCP_ZONE: 'europe-west1-b',
      ISTIO_META_CLUSTER_ID: 'Kubernetes',
    });
    const res = await writeBootstrap(cfg, { credentialSocketExists: true });
    t.equal(res.path, `${dir}/abs/envoy-rev.json`, 'an absolute config path stays absolute');
    const b = JSON.parse(readFileSync(res.path, 'utf8'));
    t.strictSame(b.node.metadata.PILOT_SAN, ['istiod.istio-system.svc'], 'localhost maps to istiod');
    t.equal(b.dynamic_resources.ads_config.api_type, 'GRPC');
    t.ok(b.static_resources.listeners.some((l: { name: string }) => l.name === '0.0.0.0_16090'));
    t.equal(b.node.metadata.PLATFORM_METADATA.gcp_project, 'p', 'platform from GCP_METADATA');
    t.strictSame(b.node.locality, { region: 'europe-west1', zone: 'europe-west1-b' });
    t.equal(b.node.metadata.CLUSTER_ID, 'Kubernetes');
    t.equal(b.node.metadata.credential, 'true');
    const none = JSON.parse(readFileSync((await writeBootstrap(agentConfig({ PROXY_CONFIG: '{"controlPlaneAuthPolicy":"NONE"}' }), {})).path, 'utf8'));
    t.notOk(none.node.metadata.PILOT_SAN, 'no PILOT_SAN without mTLS to the control plane');
  }),
);

t.test('customConfigFile: Envoy gets that file, nothing is generated', (t) =>
  inTempCwd(t, async (dir) => {
    const res = await writeBootstrap(agentConfig({ PROXY_CONFIG: '{"customConfigFile":"/etc/envoy/custom.json"}', ISTIO_BOOTSTRAP: '/x.tmpl' }), {});
    t.strictSame(res, { path: '/etc/envoy/custom.json', generated: false });
    t.notOk(existsSync(join(dir, 'etc')), 'nothing written');
  }),
);

t.test('custom templates: one clear error naming the setting, nothing written', (t) =>
  inTempCwd(t, async (dir) => {
    const cases: [string, AgentConfig][] = [
      ['ISTIO_BOOTSTRAP', agentConfig({ ISTIO_BOOTSTRAP: '/etc/my.tmpl', PROXY_CONFIG: '{"proxyBootstrapTemplatePath":"/other"}' })],
      ['--templateFile', agentConfig({}, { templateFile: '/etc/tpl.json' })],
      ['ProxyConfig proxyBootstrapTemplatePath', agentConfig({ PROXY_CONFIG: '{"proxyBootstrapTemplatePath":"/etc/tpl.json"}' })],
    ];
    for (const [setting, cfg] of cases) {
      await t.rejects(
        writeBootstrap(cfg, {}),
        { name: 'BootstrapError', message: new RegExp(`^${setting.replace(/[-]/g, '\\-')}=/etc/.* not render.*customConfigFile.*ISTIO_BOOTSTRAP_OVERRIDE`) },
        setting,
      );
    }
    t.notOk(existsSync(join(dir, 'etc')), 'nothing written');
    const stock = await writeBootstrap(agentConfig({ ISTIO_BOOTSTRAP: './var/lib/istio/envoy/envoy_bootstrap_tmpl.json' }), {});
    t.equal(stock.generated, true, 'the stock template path is what we render anyway');
  }),
);

t.test('bad input leaves no half-written bootstrap and keeps the previous one', (t) =>
  inTempCwd(t, async (dir) => {
    const cfg = agentConfig({});
    await writeBootstrap(cfg, {});
    const path = join(dir, 'etc/istio/proxy/envoy-rev.json');
    const before = readFileSync(path, 'utf8');
    const unknownTracer = { ...cfg, proxyConfig: { ...cfg.proxyConfig, tracing: { jaeger: { address: 'j:1' } } } } as unknown as AgentConfig;
    await t.rejects(writeBootstrap(unknownTracer, {}), { name: 'BootstrapError', message: /unknown tracer "jaeger"/ });
    const badLimit = agentConfig({ PROXY_CONFIG: '{"connectionSettings":{"globalDownstreamConnectionLimit":"many"}}' });
    await t.rejects(writeBootstrap(badLimit, {}), { name: 'BootstrapError', message: /globalDownstreamConnectionLimit "many"/ });
    t.equal(readFileSync(path, 'utf8'), before, 'previous bootstrap untouched');
    t.strictSame(readdirSync(join(dir, 'etc/istio/proxy')), ['envoy-rev.json']);
    t.throws(() => agentConfig({ PROXY_CONFIG: '{"drainDuration":"soon"}' }), { name: 'ConfigError', message: /drainDuration/ }, 'unparsable ProxyConfig fields fail in config resolution');

    writeFileSync(join(dir, 'blocker'), '');
    const unwritable = agentConfig({ PROXY_CONFIG: JSON.stringify({ configPath: join(dir, 'blocker/sub') }) });
    await t.rejects(writeBootstrap(unwritable, {}), BootstrapError, 'a directory that cannot be created');
  }),
);

t.test('lightstep: token file beside the bootstrap', (t) =>
  inTempCwd(t, async (dir) => {
    const cfg = agentConfig({ PROXY_CONFIG: JSON.stringify({ tracing: { lightstep: { address: 'ls:8080', accessToken: 's3cret' } } }) });
    const res = await writeBootstrap(cfg, {});
    t.equal(readFileSync(join(dir, 'etc/istio/proxy/lightstep_access_token.txt'), 'utf8'), 's3cret');
    const b = JSON.parse(readFileSync(res.path, 'utf8'));
    t.equal(b.tracing.http.typed_config.access_token_file, 'etc/istio/proxy/lightstep_access_token.txt');
    t.strictSame(schema.validate(b), []);
  }),
);

// Every pod Istio's injector renders: the agent's configuration from the pod spec renders a
// bootstrap Envoy accepts, carrying the pod's identity, labels and injected metadata.
for (const pod of injectedPodsOrSkip(t)) {
  const c = findContainer(pod, 'istio-proxy');
  if (!c || (c.command && !c.command[0]!.endsWith('pilot-agent'))) continue;
  t.test(`injected pod ${pod.file}`, (t) =>
    inTempCwd(t, async (dir) => {
      const env = containerEnv(pod, c);
      const { config } = await resolvePodAgentConfig(pod, c, env);
      const res = await writeBootstrap(config, {});
      if (!res.generated) return t.pass(`custom config file ${res.path}`);
      const b = JSON.parse(readFileSync(join(dir, res.path), 'utf8'));
      t.strictSame(schema.validate(b), [], 'Envoy accepts it');
      t.equal(b.node.id, config.identity.serviceNode);
      t.equal(b.node.metadata.NAMESPACE, pod.namespace);
      t.equal(b.node.metadata.NAME, pod.name);
      for (const [k, v] of Object.entries(pod.labels ?? {})) if (k !== 'pod-template-hash') t.equal(b.node.metadata.LABELS[k], v, `label ${k}`);
      for (const [k, v] of Object.entries(env)) {
        if (k.startsWith('ISTIO_META_') && !/_PORT$|^ISTIO_META_DNS_CAPTURE$/.test(k)) t.equal(String(b.node.metadata[k.slice(11)]), v, `metadata ${k}`);
      }
    }),
  );
}
