// For every pod Istio's injector renders (../shared/conformance/injection or $INJECTION_DIR):
// the istio-proxy container's args and env, as the kubelet would pass them, resolve with no
// flag or config error to the identity, node ID, discovery address, ProxyConfig and metadata
// the pod spec implies. Three pods also start the real CLI.
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { proxyConfigToJson } from '../../config/index.js';
import { spawnCli } from '../support/cli.js';
import { containerArgs, containerEnv, findContainer, injectedPodsOrSkip, podWorkdir, resolvePodAgentConfig, type InjectedPod } from '../support/injection.js';

const pods = injectedPodsOrSkip(t);
if (pods.length > 0) t.pass(`found ${pods.length} injected pods`);

function proxyInvocation(pod: InjectedPod) {
  const c = findContainer(pod, 'istio-proxy');
  if (!c) throw new Error(`${pod.file}: no istio-proxy container`);
  const env = containerEnv(pod, c);
  const args = containerArgs(c, env);
  return { c, env, args };
}

function expectedProxyConfigJson(env: Record<string, string>, annotations: Record<string, string>) {
  // What the pod spec says: PROXY_CONFIG, then the proxy.istio.io/config annotation, on the defaults.
  const fromEnv = env.PROXY_CONFIG ? (parseYaml(env.PROXY_CONFIG) as Record<string, unknown>) : {};
  const fromAnn = annotations['proxy.istio.io/config'] ? (parseYaml(annotations['proxy.istio.io/config']) as Record<string, unknown>) : {};
  return { ...fromEnv, ...fromAnn };
}

for (const pod of pods) {
  t.test(pod.file, async (t) => {
    const { c, env, args } = proxyInvocation(pod);
    if (c.command && c.command[0] !== 'pilot-agent' && !c.command[0]!.endsWith('/pilot-agent')) {
      // proxy.istio.io/overrides replaced the agent with a plain Envoy command: nothing of ours runs.
      t.equal(args[0], '-c', `${pod.file} runs ${c.command.join(' ')} directly, not pilot-agent`);
      return;
    }
    t.equal(args[0], 'proxy', 'istio-proxy runs `pilot-agent proxy`');
    const { inv, stderr, config, warnings } = await resolvePodAgentConfig(pod, c, env);
    t.equal(stderr, '', 'no flag errors');
    t.same(warnings, [], 'no configuration warnings');

    // Identity and node ID.
    t.equal(config.identity.type, 'sidecar');
    t.equal(config.identity.id, `${pod.name}.${pod.namespace}`);
    t.equal(config.identity.dnsDomain, `${pod.namespace}.svc.cluster.local`);
    t.equal(config.identity.serviceNode, `sidecar~${pod.podIp}~${pod.name}.${pod.namespace}~${pod.namespace}.svc.cluster.local`);
    t.same(config.identity.ipAddresses, [pod.podIp]);
    t.equal(config.env.SERVICE_ACCOUNT, pod.serviceAccount);

    // ProxyConfig: what PROXY_CONFIG and the annotation set, on Istio's defaults.
    const want = expectedProxyConfigJson(env, pod.annotations);
    const got = proxyConfigToJson(config.proxyConfig);
    t.equal(got.discoveryAddress, want.discoveryAddress ?? 'istiod.istio-system.svc:15012', 'discovery address');
    for (const [k, v] of Object.entries(want)) {
      if (k === 'proxyMetadata') t.same(got.proxyMetadata, v, 'proxyMetadata');
      else t.same(got[k], v, `ProxyConfig ${k}`);
    }
    t.equal(config.proxyConfig.concurrency, 'concurrency' in want ? want.concurrency : Number(env.ISTIO_CPU_LIMIT) || undefined, 'concurrency');

    // Log and Envoy flags as injected.
    t.equal(inv.flags.proxyLogLevel, 'warning');
    t.equal(inv.flags.proxyComponentLogLevel, 'misc:error');
    t.equal(inv.logOptions.outputLevels, 'default:info');

    // Proxy metadata and the rest of the environment reach the agent.
    for (const [k, v] of Object.entries(env)) {
      if (k.startsWith('ISTIO_META_')) t.equal(config.env.ISTIO_META_.get(k.slice('ISTIO_META_'.length)), v, `metadata ${k}`);
    }
    for (const [k, v] of Object.entries((want.proxyMetadata ?? {}) as Record<string, string>)) {
      t.equal(config.environ[k], env[k] ?? v, `proxyMetadata ${k} in the environment`);
    }
    t.equal(config.env.ISTIO_META_CLUSTER_ID, env.ISTIO_META_CLUSTER_ID ?? '');
    t.equal(config.env.CA_ADDR, env.CA_ADDR ?? '');
    t.equal(config.env.TRUST_DOMAIN, env.TRUST_DOMAIN ?? 'cluster.local');
  });
}

// The real CLI, started with three pods' istio-proxy args and env in a pod-like working directory.
for (const file of ['hello.yaml.injected', 'traffic-annotations.yaml.injected', 'hello-probes.yaml.injected']) {
  const pod = pods.find((p) => p.file === file);
  if (!pod) continue;
  t.test(`real CLI: ${file}`, async (t) => {
    const { env, args } = proxyInvocation(pod);
    const cwd = podWorkdir(pod);
    const run = spawnCli(args, { cwd, env: { PATH: process.env.PATH, DISABLE_ENVOY: 'true', ...env } });
    await run.waitFor(/Effective config/);
    run.child.kill('SIGTERM');
    const res = await run.exited;
    t.equal(res.code, 0, 'exits 0 on SIGTERM');
    t.notMatch(res.stdout, /\t(warn|error|fatal)\t/, 'no warnings or errors');
    t.match(res.stdout, /FLAG: --domain="default\.svc\.cluster\.local"/);
    t.match(res.stdout, new RegExp(`Proxy role\\tips=\\[${pod.podIp.replace(/\./g, '\\.')}[^\\]]*\\]\\ttype=sidecar\\tid=${pod.name}\\.default`));
    const want = expectedProxyConfigJson(env, pod.annotations);
    t.match(res.stdout, new RegExp(`"discoveryAddress": "${want.discoveryAddress ?? 'istiod.istio-system.svc:15012'}"`));
  });
}
