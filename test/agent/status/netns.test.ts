// The status server inside a pod-like network namespace, with the real CLI and the stand-in Envoy
// (privileged: runs as root in CI). The ISTIO_KUBE_APP_PROBERS of Istio's injected pods
// (../shared/conformance/injection) drive real probes against test apps on the ports the pods
// declare: answered from the pod's IP by the kubelet's side (a peer namespace), sent to the app
// from 127.0.0.6; healthy, unhealthy and unreachable apps give the right codes. `/quitquitquit`,
// `/drain` and (with METRICS_LOCALHOST_ACCESS_ONLY) the metrics are refused from outside the pod
// and work from loopback. IPv6: probes from ::6, TestGRPCAppProbeWithIPV6.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseAppProbers } from '../../../agent/status/index.js';
import { standin, standinBin, writeTestBootstrap, type Standin } from '../../support/envoy-standin/index.js';
import { containerArgs, containerEnv, findContainer, loadInjectedPods, podWorkdir, type InjectedPod } from '../../support/injection.js';
import { PEER4, POD4, POD6, PodNetwork, privilegedSkipReason } from '../../support/netns.js';
import { corpusSkipReason, pilotAgentBin, projectRoot } from '../../support/paths.js';

// These run the injector's own pods, so they need the injection corpus as well as root.
const skip = privilegedSkipReason() || corpusSkipReason('injection');

const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p)) ?? 'ip';
const appMain = join(projectRoot, 'dist/test/support/probe-app-main.js');

interface Seen {
  app: string;
  path: string;
  remote: string;
}

/** The probe apps as one process in the pod namespace; `seen` fills as requests arrive. */
async function apps(net: PodNetwork, specs: string[]): Promise<{ child: ChildProcess; seen: Seen[]; stop(): Promise<void> }> {
  const child = await net.start('pod', process.execPath, [appMain, ...specs]);
  const seen: Seen[] = [];
  let buf = '';
  child.stdout!.on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.startsWith('SEEN ')) seen.push(JSON.parse(line.slice(5)) as Seen);
    }
  });
  return {
    child,
    seen,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
    },
  };
}

interface Answer {
  status: number;
  body: string;
}

/** HTTP requests, one after the other, from one of the namespaces (one node process for the batch). */
async function requests(net: PodNetwork, ns: 'pod' | 'peer', reqs: [url: string, method?: string][]): Promise<Answer[]> {
  const script = `(async () => { const out = []; for (const [u, m] of ${JSON.stringify(reqs)}) { try { const r = await fetch(u, { method: m ?? 'GET' }); out.push({ status: r.status, body: await r.text() }); } catch (e) { out.push({ status: -1, body: String(e.cause ?? e) }); } } console.log(JSON.stringify(out)); })()`;
  const r = await net.exec(ns, process.execPath, ['-e', script]);
  return JSON.parse(r.stdout.trim().split('\n').pop() || '[]') as Answer[];
}

async function request(net: PodNetwork, ns: 'pod' | 'peer', url: string, method = 'GET'): Promise<Answer> {
  return (await requests(net, ns, [[url, method]]))[0] ?? { status: -2, body: '' };
}

interface RunningAgent {
  child: ChildProcess;
  s: Standin;
  output(): string;
  exited: Promise<number | null>;
}

/** `pilot-agent proxy sidecar` in the pod namespace, with the pod's env and the stand-in Envoy. */
async function agentIn(net: PodNetwork, pod: InjectedPod, env: Record<string, string>, extra: Record<string, string> = {}): Promise<RunningAgent> {
  const c = findContainer(pod, 'istio-proxy')!;
  const cwd = podWorkdir(pod, 'status-netns-');
  const s = standin({ stats: { 'cluster_manager.cds.update_success': 1, 'listener_manager.lds.update_success': 1 } }, cwd);
  writeTestBootstrap(join(cwd, 'etc/istio/proxy/test-bootstrap.json'), { adminPort: 15000 });
  const proxyConfig = { binaryPath: standinBin, customConfigFile: 'etc/istio/proxy/test-bootstrap.json', terminationDrainDuration: '5s' };
  const fullEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env, INSTANCE_IP: POD4, CA_PROVIDER: 'local', GRPC_XDS_BOOTSTRAP: '', PROXY_CONFIG: JSON.stringify(proxyConfig), ...s.env, ...extra };
  const child = spawn(IP, ['netns', 'exec', net.pod, process.execPath, pilotAgentBin, ...containerArgs(c, env)], { cwd, env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  await s.waitFor('start');
  const deadline = Date.now() + 10_000;
  while (!out.includes('Opening status port') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return { child, s, output: () => out, exited };
}

/** Ends the agent the quick way (`/quitquitquit`: Envoy is killed at once), SIGKILL if that fails. */
async function stopAgent(a: RunningAgent, net?: PodNetwork): Promise<void> {
  if (a.child.exitCode !== null) return;
  if (net) await request(net, 'pod', 'http://127.0.0.1:15020/quitquitquit', 'POST');
  const timer = setTimeout(() => a.child.kill('SIGKILL'), net ? 5000 : 0);
  await a.exited;
  clearTimeout(timer);
}

{
  const pods = (skip ? [] : loadInjectedPods()).filter((p) => {
    const c = findContainer(p, 'istio-proxy');
    return c && containerEnv(p, c).ISTIO_KUBE_APP_PROBERS;
  });
  const probeAll = (net: PodNetwork, paths: Iterable<string>) =>
    requests(
      net,
      'peer',
      [...paths].map((p) => [`http://${POD4}:15020${p}`]),
    );

  t.test('injected ISTIO_KUBE_APP_PROBERS drive real probes from 127.0.0.6', { skip }, async (t) => {
    t.ok(pods.length >= 4, `${pods.length} injected pods rewrite probes`);
    const net = await PodNetwork.create('st', { ipv4: true });
    t.teardown(() => net.cleanup());
    for (const pod of pods) {
      const env = containerEnv(pod, findContainer(pod, 'istio-proxy')!);
      const probers = parseAppProbers(env.ISTIO_KUBE_APP_PROBERS!);
      const specs = [...new Set([...probers.values()].map((p) => `${p.kind === 'tcpSocket' ? 'tcp' : p.kind === 'httpGet' && p.scheme === 'HTTPS' ? 'https' : 'http'}:${p.port}`))];
      const agent = await agentIn(net, pod, env);
      t.teardown(() => stopAgent(agent));
      // Healthy applications: every rewritten probe answers 200, each arrived from 127.0.0.6.
      let a = await apps(net, specs);
      const paths = [...probers.keys()];
      let answers = await probeAll(net, paths);
      paths.forEach((path, i) => t.equal(answers[i]?.status, 200, `${pod.file} ${path}: healthy app`));
      await new Promise((r) => setTimeout(r, 100));
      t.ok(a.seen.length >= probers.size, `${pod.file}: every probe reached its app (${a.seen.length})`);
      t.same([...new Set(a.seen.map((s) => s.remote))], ['127.0.0.6'], `${pod.file}: probes came from 127.0.0.6`);
      await a.stop();
      // Unhealthy applications: HTTP apps answer 503, which is passed on; TCP ports closed ⇒ 500.
      a = await apps(
        net,
        specs.filter((s) => s.startsWith('http')).map((s) => s.replace(/^https?:/, (m) => (m === 'http:' ? 'sick:' : 'sicks:'))),
      );
      answers = await probeAll(net, paths);
      paths.forEach((path, i) => t.equal(answers[i]?.status, probers.get(path)!.kind === 'tcpSocket' ? 500 : 503, `${pod.file} ${path}: unhealthy app`));
      await a.stop();
      // Unreachable applications: 500.
      answers = await probeAll(net, [...paths, '/app-health/not-configured/livez']);
      paths.forEach((path, i) => t.equal(answers[i]?.status, 500, `${pod.file} ${path}: nothing listening`));
      t.equal(answers[paths.length]?.status, 400, 'only configured probes exist');
      await stopAgent(agent, net);
    }
  });

  t.test('/quitquitquit, /drain and local-only metrics: refused from outside the pod, honoured from loopback', { skip }, async (t) => {
    const net = await PodNetwork.create('sq', { ipv4: true });
    t.teardown(() => net.cleanup());
    const pod = loadInjectedPods().find((p) => p.file === 'hello.yaml.injected')!;
    const env = containerEnv(pod, findContainer(pod, 'istio-proxy')!);
    const agent = await agentIn(net, pod, env, { METRICS_LOCALHOST_ACCESS_ONLY: 'true' });
    t.teardown(() => stopAgent(agent));
    const outside = await requests(net, 'peer', [
      [`http://${POD4}:15020/quitquitquit`, 'POST'],
      [`http://${POD4}:15020/drain`, 'POST'],
      [`http://${POD4}:15020/stats/prometheus`],
      [`http://${POD4}:15020/healthz/ready`],
    ]);
    for (const [i, path] of ['/quitquitquit', '/drain'].entries()) {
      t.equal(outside[i]?.status, 403, `${path} from ${PEER4}`);
      t.equal(outside[i]?.body, 'Only requests from localhost are allowed\n');
    }
    t.equal(outside[2]?.status, 403, 'METRICS_LOCALHOST_ACCESS_ONLY: metrics refused from outside');
    t.equal(outside[3]?.status, 200, 'readiness is for anyone');
    t.notOk(
      agent.s.events().some((e) => e.e === 'drain'),
      'nothing reached Envoy',
    );
    t.equal(agent.child.exitCode, null, 'the agent runs on');
    t.equal((await request(net, 'pod', 'http://127.0.0.1:15020/stats/prometheus')).status, 200, 'metrics from loopback');
    const drain = await request(net, 'pod', 'http://127.0.0.1:15020/drain', 'POST');
    t.equal(drain.status, 200);
    t.match(
      agent.s.events().find((e) => e.e === 'drain'),
      { inboundOnly: true, graceful: true, skipExit: true },
      '/drain from loopback drains Envoy (skip_exit)',
    );
    const quit = await request(net, 'pod', 'http://127.0.0.1:15020/quitquitquit', 'POST');
    t.equal(quit.status, 200);
    t.equal(await agent.exited, 0, '/quitquitquit from loopback: the agent exits 0');
    t.match(agent.output(), /Agent already drained, exiting immediately/);
  });

  t.test('IPv6 pod: probes from ::6 (TestGRPCAppProbeWithIPV6, HTTP, TCP)', { skip }, async (t) => {
    const net = await PodNetwork.create('s6', { ipv4: false, ipv6: true });
    t.teardown(() => net.cleanup());
    // istio-iptables adds ::6 to lo in IPv6 pods; so does this test.
    const add = await net.exec('pod', IP, ['-6', 'addr', 'add', '::6/128', 'dev', 'lo']);
    t.equal(add.code, 0, add.stderr);
    const a = await apps(net, ['grpc:7070', 'http:8080', 'tcp:9090']);
    t.teardown(() => a.stop());
    const probers = {
      '/app-health/foo/livez': { grpc: { port: 7070, service: null }, timeoutSeconds: 1 },
      '/app-health/foo/readyz': { grpc: { port: 7070, service: 'down' }, timeoutSeconds: 1 },
      '/app-health/bar/livez': { grpc: { port: 7070, service: '' }, timeoutSeconds: 10 },
      '/app-health/bar/readyz': { grpc: { port: 7070, service: 'no-such' }, timeoutSeconds: 10 },
      '/app-health/web/livez': { httpGet: { port: 8080, path: '/hello' } },
      '/app-health/tcp/livez': { tcpSocket: { port: 9090 } },
    };
    const pod = loadInjectedPods().find((p) => p.file === 'hello.yaml.injected')!;
    const env = containerEnv(pod, findContainer(pod, 'istio-proxy')!);
    const agent = await agentIn(net, pod, env, { INSTANCE_IP: POD6, ISTIO_KUBE_APP_PROBERS: JSON.stringify(probers) });
    t.teardown(() => stopAgent(agent));
    const base = `http://[${POD6}]:15020`;
    const cases: [string, number, string][] = [
      ['/bad-path-should-be-disallowed', 404, 'bad path'],
      ['/app-health/foo/livez', 200, 'foo-livez'],
      ['/app-health/foo/readyz', 500, 'foo-readyz (NOT_SERVING)'],
      ['/app-health/bar/livez', 200, 'bar-livez'],
      ['/app-health/bar/readyz', 500, 'bar-readyz (unknown service)'],
      ['/app-health/web/livez', 200, 'HTTP'],
      ['/app-health/tcp/livez', 200, 'TCP'],
    ];
    const answers = await requests(
      net,
      'peer',
      cases.map(([p]) => [`${base}${p}`]),
    );
    cases.forEach(([, status, name], i) => t.equal(answers[i]?.status, status, name));
    await new Promise((r) => setTimeout(r, 100));
    const remotes = [...new Set(a.seen.map((s) => s.remote))];
    t.same(remotes, ['::6'], `every probe came from ::6 (${remotes.join(', ')})`);
  });
}
