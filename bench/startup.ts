// Start-up cost of the CLI: `node -e ''` (the floor for any Node program), `pilot-agent version`
// (commander + the command tree), and `pilot-agent proxy` up to its resolved configuration.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './result.js';
import { median, percentile, timeCommand } from './stats.js';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const bin = resolve(root, 'dist/bundle/pilot-agent.mjs');

export async function startupBench(): Promise<BenchResult> {
  const cwd = mkdtempSync(join(tmpdir(), 'bench-start-'));
  const env = { PATH: process.env.PATH, DISABLE_ENVOY: 'true', POD_NAME: 'b', POD_NAMESPACE: 'default' };
  const runs: Record<string, number[]> = { node: [], version: [], proxy: [] };
  const n = 20;
  for (let i = 0; i < n; i++) {
    // Interleaved so machine noise hits every variant alike.
    runs.node!.push(await timeCommand(process.execPath, ['-e', '']));
    runs.version!.push(await timeCommand(process.execPath, [bin, 'version']));
    runs.proxy!.push(await timeCommand(process.execPath, [bin, 'proxy', 'sidecar'], { env, cwd, until: /Effective config/ }));
  }
  const base = median(runs.node!);
  const row = (name: string, xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return [name, median(xs).toFixed(1), percentile(s, 90).toFixed(1), (median(xs) / base).toFixed(2)];
  };
  return {
    title: `CLI start-up (${n} runs each, interleaved)`,
    rows: [
      ['command', 'p50 ms', 'p90 ms', 'p50 / node -e ""'],
      row("node -e ''", runs.node!),
      row('pilot-agent version', runs.version!),
      row('pilot-agent proxy sidecar → config resolved', runs.proxy!),
    ],
  };
}
