// For every pod Istio's injector renders (../shared/conformance/injection or $INJECTION_DIR): the
// real CLI, started with the istio-proxy container's args and env as the kubelet passes them,
// execs Envoy (the stand-in) with the command line Istio would use for that pod. The test only
// adds what a test must: binaryPath → the stand-in, test-unique ports, and a customConfigFile
// (bootstrap rendering is another subsystem's job; Envoy gets that file unchanged, as in Istio).
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { parseGoBool } from '../../lib/goparse.js';
import { spawnCli } from '../support/cli.js';
import { standin, standinBin, writeTestBootstrap } from '../support/envoy-standin/index.js';
import { containerArgs, containerEnv, findContainer, injectedPodsOrSkip, podWorkdir } from '../support/injection.js';
import { freePorts } from '../support/ports.js';

const CUSTOM = 'etc/istio/proxy/test-bootstrap.json';
const OURS = ['binaryPath', 'customConfigFile', 'proxyAdminPort', 'statusPort'];

function yamlObject(text: string | undefined): Record<string, unknown> {
  return text ? ((parseYaml(text) as Record<string, unknown> | null) ?? {}) : {};
}

/** What Istio passes Envoy for this pod, from the pod spec alone (args in pkg/envoy/proxy.go). */
function expectedArgv(env: Record<string, string>, annotations: Record<string, string>, args: string[]): string[] {
  const pc = { ...yamlObject(env.PROXY_CONFIG), ...yamlObject(annotations['proxy.istio.io/config']) };
  const flag = (name: string, dflt: string) => {
    const i = args.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
    if (i < 0) return dflt;
    return args[i]!.includes('=') ? args[i]!.slice(args[i]!.indexOf('=') + 1) : args[i + 1]!;
  };
  const drain = typeof pc.drainDuration === 'string' ? Math.trunc(parseFloat(pc.drainDuration)) : 45;
  const concurrency = 'concurrency' in pc ? Number(pc.concurrency) : Number(env.ISTIO_CPU_LIMIT ?? '0');
  const level = flag('proxyLogLevel', 'warning');
  const component = flag('proxyComponentLogLevel', '');
  return [
    '-c',
    CUSTOM,
    '--drain-time-s',
    String(drain),
    '--drain-strategy',
    'immediate',
    '--local-address-ip-version',
    'v4',
    '--file-flush-interval-msec',
    '1000',
    '--disable-hot-restart',
    '--allow-unknown-static-fields',
    ...(level.includes(':') ? [] : ['-l', level]),
    ...(component ? ['--component-log-level', component] : []),
    ...(parseGoBool(env.ENVOY_SKIP_DEPRECATED_LOGS ?? 'true') === false ? [] : ['--skip-deprecated-logs']),
    ...(concurrency > 0 ? ['--concurrency', String(concurrency)] : []),
  ];
}

const pods = injectedPodsOrSkip(t);
if (pods.length > 0) t.pass(`found ${pods.length} injected pods`);
for (const pod of pods) {
  t.test(pod.file, async (t) => {
    const c = findContainer(pod, 'istio-proxy');
    if (!c) throw new Error(`${pod.file}: no istio-proxy container`);
    if (c.command && !/(^|\/)pilot-agent$/.test(c.command[0]!)) {
      // proxy.istio.io/overrides replaced the agent with a bare Envoy command: the kubelet runs
      // Envoy itself and nothing of ours is started, so there is no agent argv to compare.
      t.equal(c.command[0], 'envoy', `${pod.file} runs ${c.command.join(' ')} directly, not pilot-agent`);
      return;
    }
    const env = containerEnv(pod, c);
    const args = containerArgs(c, env);
    const annotationConfig = yamlObject(pod.annotations['proxy.istio.io/config']);
    t.same(
      OURS.filter((k) => k in annotationConfig),
      [],
      'the pod annotation leaves the test-only settings to PROXY_CONFIG',
    );

    const cwd = podWorkdir(pod, 'inj-envoy-');
    const [adminPort, statusPort] = await freePorts(2);
    writeTestBootstrap(join(cwd, CUSTOM), { adminPort: adminPort! });
    const s = standin({}, cwd);
    const proxyConfig = { ...yamlObject(env.PROXY_CONFIG), binaryPath: standinBin, customConfigFile: CUSTOM, proxyAdminPort: adminPort, statusPort };
    const run = spawnCli(args, { cwd, env: { PATH: process.env.PATH, ...env, PROXY_CONFIG: JSON.stringify(proxyConfig), ...s.env } });

    if (parseGoBool(env.DISABLE_ENVOY ?? 'false')) {
      // Proxyless gRPC pods: no Envoy at all.
      await run.waitFor(/runs without Envoy/);
      run.child.kill('SIGTERM');
      const r = await run.exited;
      t.equal(r.code, 0);
      t.same(s.events(), [], 'DISABLE_ENVOY: Envoy is not started');
      return;
    }
    const start = await s.waitFor('start');
    t.same(start.argv, expectedArgv(env, pod.annotations, args), 'Envoy argv as Istio builds it');
    t.equal(start.cwd, cwd);
    t.equal(start.env.POD_NAME, pod.name, 'the pod environment reaches Envoy');
    // Envoy ends via its admin API; the agent follows with exit 0.
    const res = await fetch(`http://127.0.0.1:${adminPort}/quitquitquit`, { method: 'POST' });
    t.equal(res.status, 200);
    const r = await run.exited;
    t.equal(r.code, 0, 'agent exits 0 after Envoy exits');
    // istiod is not reachable from a test: the certificate pre-warm may warn (scope security).
    t.notMatch(r.stdout, /\t(error|fatal)\t/, 'no errors');
    t.notMatch(r.stdout, /\twarn\t(?!security\t)/, 'no warnings other than the unreachable CA');
  });
}
