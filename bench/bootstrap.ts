// Bootstrap generation on the start path: time to render the default sidecar bootstrap (the
// object plus its JSON text, what writeBootstrap writes), and what importing bootstrap/ adds to
// a process that has already loaded the agent's configuration module (as `pilot-agent proxy` has).
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jsonThenYaml, resolveAgentConfig } from '../config/index.js';
import { bootstrapInputFrom, renderBootstrap, serializeBootstrap } from '../bootstrap/index.js';
import type { BenchResult } from './result.js';
import { median, percentile } from './stats.js';

const dist = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');

function renderTimes(n: number): number[] {
  const { config } = resolveAgentConfig({
    env: { POD_NAME: 'web-0', POD_NAMESPACE: 'shop', INSTANCE_IP: '10.244.1.17', SERVICE_ACCOUNT: 'default', ISTIO_META_CLUSTER_ID: 'Kubernetes', ISTIO_META_MESH_ID: 'cluster.local' },
    files: { podLabels: 'app="web"\nversion="v1"', podAnnotations: 'kubectl.kubernetes.io/default-container="web"' },
    interfaces: [{ name: 'eth0', address: '10.244.1.17', internal: false }],
    parseYaml: jsonThenYaml(),
  });
  const input = bootstrapInputFrom(config, { warn: () => {} });
  for (let i = 0; i < 300; i++) serializeBootstrap(renderBootstrap(input)); // warm-up
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    serializeBootstrap(renderBootstrap(input));
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return out;
}

/**
 * In a fresh Node: ms to import config/ (what the CLI has loaded before Envoy starts, shown
 * for scale) and then the ms bootstrap/ adds on top of it.
 */
function importCost(): [config: number, bootstrap: number] {
  const script = `
    const { performance } = await import('node:perf_hooks');
    const t0 = performance.now();
    await import(${JSON.stringify(`${dist}/config/index.js`)});
    await import(${JSON.stringify(`${dist}/lib/log.js`)});
    const t1 = performance.now();
    await import(${JSON.stringify(`${dist}/bootstrap/index.js`)});
    process.stdout.write(JSON.stringify([t1 - t0, performance.now() - t1]));`;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as [number, number];
}

export async function bootstrapBench(): Promise<BenchResult> {
  const renders = renderTimes(2000);
  const imports = Array.from({ length: 20 }, importCost);
  const row = (name: string, xs: number[], target?: number) => {
    const s = [...xs].sort((a, b) => a - b);
    const verdict = target === undefined ? ['—', ''] : [`≤ ${target}`, median(xs) <= target ? 'met' : 'MISSED'];
    return [name, median(xs).toFixed(3), percentile(s, 90).toFixed(3), ...verdict];
  };
  return {
    title: 'Envoy bootstrap',
    rows: [
      ['measure', 'p50 ms', 'p90 ms', 'target ms', ''],
      row('render + serialise default sidecar bootstrap (2000 runs after warm-up)', renders, 5),
      row(
        'import config/ + lib/log, for scale (20 fresh processes)',
        imports.map((x) => x[0]),
      ),
      row(
        'import bootstrap/ on top of them (same processes)',
        imports.map((x) => x[1]),
        15,
      ),
    ],
  };
}
