// The merged `/stats/prometheus` scrape (status server): Envoy (the stand-in) serves 100k series
// (~10 MB) on its Prometheus endpoint and an application serves 1 MB; the agent runs as
// `pilot-agent proxy sidecar` and merges them. Side by side in one run, interleaved: fetching
// Envoy's endpoint directly, through a bare Node TCP relay (the floor for any process in the
// path on this machine), and the merged endpoint (same client, body read and dropped). Memory:
// the agent's peak RSS growth during each merged scrape (VmHWM after resetting it through
// /proc/<pid>/clear_refs right before the scrape), the first scrape (which loads prom-client)
// reported apart from the steady state.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { standin, standinBin, writeTestBootstrap } from '../test/support/envoy-standin/index.js';
import { freePorts } from '../test/support/ports.js';
import type { BenchResult } from './result.js';
import { median, percentile, procStatusKb } from './stats.js';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const bin = resolve(root, 'dist/bundle/pilot-agent.mjs');

const SERIES = 100_000;
const APP_BYTES = 1 << 20;

/** Envoy-shaped Prometheus text: 1,000 families of 100 labelled series each. */
async function writeEnvoyMetrics(file: string): Promise<number> {
  const out = createWriteStream(file);
  let bytes = 0;
  const write = (s: string) => {
    bytes += s.length;
    return out.write(s) ? Promise.resolve() : new Promise<void>((r) => out.once('drain', () => r()));
  };
  for (let f = 0; f < SERIES / 100; f++) {
    let chunk = `# TYPE envoy_cluster_upstream_rq_${f} counter\n`;
    for (let i = 0; i < 100; i++) chunk += `envoy_cluster_upstream_rq_${f}{response_code="200",cluster_name="outbound|8080||svc-${i}.ns-${f % 50}.svc.cluster.local"} ${f * 100 + i}\n`;
    await write(chunk);
  }
  await new Promise<void>((r) => out.end(() => r()));
  return bytes;
}

/** A bare TCP relay in its own process: what any extra process in the path costs, and no more. */
function startRelay(port: number, to: number): ChildProcess {
  const script = `require('node:net').createServer((c) => { const u = require('node:net').connect(${to}, '127.0.0.1'); c.pipe(u); u.pipe(c); c.on('error', () => u.destroy()); u.on('error', () => c.destroy()); }).listen(${port}, '127.0.0.1', () => console.log('ready'));`;
  return spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
}

/** The application: a separate process serving a fixed 1 MB metrics body. */
function startApp(port: number): ChildProcess {
  const script = `
    let body = '';
    for (let i = 0; body.length < ${APP_BYTES}; i++) body += '# TYPE app_requests_' + i + ' counter\\napp_requests_' + i + '{route="/api/v1/items/' + i + '",method="GET"} ' + i + '\\n';
    const buf = Buffer.from(body);
    require('node:http').createServer((req, res) => { res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' }); res.end(buf); })
      .listen(${port}, '127.0.0.1', () => console.log('ready'));`;
  return spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
}

function fetchTimed(port: number, path: string, headers: Record<string, string> = {}): Promise<{ ms: number; bytes: number }> {
  return new Promise((resolvePromise, reject) => {
    const t0 = process.hrtime.bigint();
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolvePromise({ ms: Number(process.hrtime.bigint() - t0) / 1e6, bytes }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Peak RSS growth (MB) of `pid` while `run` runs: VmHWM is reset to the current RSS first. */
async function peakGrowth(pid: number, run: () => Promise<unknown>): Promise<number> {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
  const before = procStatusKb(pid, 'VmRSS') / 1024;
  await run();
  return procStatusKb(pid, 'VmHWM') / 1024 - before;
}

function waitLine(child: ChildProcess, re: RegExp): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (re.test(out)) resolvePromise();
    });
    child.once('exit', () => reject(new Error(`exited before ${re}: ${out}`)));
  });
}

export async function statusBench(): Promise<BenchResult> {
  const cwd = mkdtempSync(join(tmpdir(), 'bench-status-'));
  const envoyFile = join(cwd, 'envoy-prometheus.txt');
  const envoyBytes = await writeEnvoyMetrics(envoyFile);
  const [adminPort, statusPort, appPort, relayPort] = (await freePorts(4)) as [number, number, number, number];
  const app = startApp(appPort);
  await waitLine(app, /ready/);
  const relay = startRelay(relayPort, adminPort);
  await waitLine(relay, /ready/);
  const s = standin({ prometheusFile: envoyFile, xds: false, sds: false }, cwd);
  writeTestBootstrap(join(cwd, 'bootstrap.json'), { adminPort });
  const agent = spawn(process.execPath, [bin, 'proxy', 'sidecar'], {
    cwd,
    stdio: ['ignore', 'pipe', 'ignore'],
    env: {
      PATH: process.env.PATH,
      POD_NAME: 'bench-1',
      POD_NAMESPACE: 'default',
      INSTANCE_IP: '127.0.0.1',
      CA_PROVIDER: 'local',
      GRPC_XDS_BOOTSTRAP: '',
      ENVOY_PROMETHEUS_PORT: String(adminPort),
      ISTIO_PROMETHEUS_ANNOTATIONS: JSON.stringify({ scrape: 'true', port: String(appPort), path: '/metrics' }),
      PROXY_CONFIG: JSON.stringify({
        binaryPath: standinBin,
        customConfigFile: 'bootstrap.json',
        proxyAdminPort: adminPort,
        statusPort,
        terminationDrainDuration: '0s',
        controlPlaneAuthPolicy: 'NONE',
      }),
      ...s.env,
    },
  });
  try {
    await waitLine(agent, /Opening status port/);
    await s.waitFor('start');
    // Let the agent settle (SDS, certificates) before measuring its memory.
    await new Promise((r) => setTimeout(r, 2000));
    const pid = agent.pid!;
    const idleRss = procStatusKb(pid, 'VmRSS') / 1024;
    const firstGrowth = await peakGrowth(pid, () => fetchTimed(statusPort, '/stats/prometheus'));
    const firstRss = procStatusKb(pid, 'VmRSS') / 1024;

    const n = 20;
    const direct: number[] = [];
    const relayed: number[] = [];
    const merged: number[] = [];
    const mergedGzip: number[] = [];
    const growth: number[] = [];
    let mergedBytes = 0;
    let gzipBytes = 0;
    for (let i = 0; i < n; i++) {
      direct.push((await fetchTimed(adminPort, '/stats/prometheus')).ms);
      relayed.push((await fetchTimed(relayPort, '/stats/prometheus')).ms);
      let m = { ms: 0, bytes: 0 };
      growth.push(await peakGrowth(pid, async () => (m = await fetchTimed(statusPort, '/stats/prometheus'))));
      merged.push(m.ms);
      mergedBytes = m.bytes;
      const g = await fetchTimed(statusPort, '/stats/prometheus', { 'Accept-Encoding': 'gzip' });
      mergedGzip.push(g.ms);
      gzipBytes = g.bytes;
    }
    const base = median(direct);
    const row = (name: string, xs: number[], target = '', extra = '') => {
      const sorted = [...xs].sort((a, b) => a - b);
      return [name, `${median(xs).toFixed(1)} ms`, `${percentile(sorted, 90).toFixed(1)} ms`, (median(xs) / base).toFixed(2), target, extra];
    };
    const maxGrowth = Math.max(...growth);
    return {
      title: `Merged /stats/prometheus (Envoy ${SERIES.toLocaleString('en')} series = ${(envoyBytes / 1e6).toFixed(1)} MB, app ${(APP_BYTES / 1e6).toFixed(1)} MB; ${n} interleaved rounds)`,
      rows: [
        ['measure', 'p50', 'p90', 'ratio', 'target', ''],
        row("fetch Envoy's /stats/prometheus directly", direct, '', `${(envoyBytes / 1e6).toFixed(1)} MB`),
        row('the same through a bare Node TCP relay (floor)', relayed, '', ''),
        row('merged scrape via the agent', merged, '≤ 1.3', `${(mergedBytes / 1e6).toFixed(1)} MB`),
        row('merged scrape, gzip (as Prometheus asks)', mergedGzip, '', `${(gzipBytes / 1e6).toFixed(2)} MB`),
        ['agent peak RSS growth during a merged scrape (max of rounds)', `${maxGrowth.toFixed(1)} MB`, `median ${median(growth).toFixed(1)} MB`, '', '≤ 16 MB', ''],
        ['agent peak RSS growth, first scrape (loads prom-client)', `${firstGrowth.toFixed(1)} MB`, '', '', '≤ 16 MB', ''],
        ['agent RSS idle → after first scrape', `${idleRss.toFixed(1)} → ${firstRss.toFixed(1)} MB`, '', '', '', ''],
      ],
      notes: [
        'Processes: the agent (`pilot-agent proxy sidecar`), the stand-in Envoy (streams the file as /stats/prometheus) and the application each run on their own; the client reads and drops the bodies.',
        `Merged vs the bare relay: ${(median(merged) / median(relayed)).toFixed(2)}× (the merge's own cost over any extra process in the path).`,
      ],
    };
  } finally {
    agent.kill('SIGKILL');
    app.kill('SIGKILL');
    relay.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
  }
}
