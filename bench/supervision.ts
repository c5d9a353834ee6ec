// Envoy supervision: (1) time from `pilot-agent proxy sidecar` exec to Envoy's exec, measured
// from outside (the "Envoy" is a script that prints a marker on the agent's inherited stdout and
// exits), side by side with `node -e ''`; (2) the agent's RSS after 10 s idle with the stand-in
// Envoy running, side by side with an idle bare Node process started at the same moment.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { standinBin } from '../test/support/envoy-standin/index.js';
import { freePorts } from '../test/support/ports.js';
import type { BenchResult } from './result.js';
import { median, percentile, procStatusKb, timeCommand } from './stats.js';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const bin = resolve(root, 'dist/bundle/pilot-agent.mjs');

async function podDir(binaryPath: string) {
  const cwd = mkdtempSync(join(tmpdir(), 'bench-envoy-'));
  const [adminPort, statusPort] = await freePorts(2);
  // The full start path: SDS and XDS sockets bound, the gRPC and Envoy bootstraps generated and
  // written, Envoy spawned (workload certificates from the embedded CA, plaintext XDS, so no
  // istiod and no istiod root are needed).
  const env = {
    PATH: process.env.PATH,
    POD_NAME: 'bench-1',
    POD_NAMESPACE: 'default',
    INSTANCE_IP: '10.244.1.17',
    CA_PROVIDER: 'local',
    PROXY_CONFIG: JSON.stringify({ binaryPath, proxyAdminPort: adminPort, statusPort, terminationDrainDuration: '0s', controlPlaneAuthPolicy: 'NONE' }),
  };
  return { cwd, env };
}

export async function envoyBench(): Promise<BenchResult> {
  // (1) exec → Envoy exec.
  const scratch = mkdtempSync(join(tmpdir(), 'bench-envoy-exec-'));
  const marker = join(scratch, 'envoy');
  writeFileSync(marker, '#!/bin/sh\necho ENVOY-EXEC\n');
  chmodSync(marker, 0o755);
  const pod = await podDir(marker);
  const runs: Record<string, number[]> = { node: [], exec: [] };
  const n = 20;
  for (let i = 0; i < n; i++) {
    runs.node!.push(await timeCommand(process.execPath, ['-e', '']));
    runs.exec!.push(await timeCommand(process.execPath, [bin, 'proxy', 'sidecar'], { env: pod.env, cwd: pod.cwd, until: /ENVOY-EXEC/ }));
  }
  const base = median(runs.node!);
  const row = (name: string, xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return [name, `${median(xs).toFixed(1)} ms`, `${percentile(s, 90).toFixed(1)} ms`, (median(xs) / base).toFixed(2), ''];
  };

  // (2) idle RSS after 10 s, three rounds, agent and bare Node side by side.
  const rss: Record<string, number[]> = { node: [], agent: [] };
  for (let round = 0; round < 3; round++) {
    const p = await podDir(standinBin);
    const agent = spawn(process.execPath, [bin, 'proxy', 'sidecar'], { cwd: p.cwd, env: { ...p.env, ENVOY_STANDIN_SCRIPT: '{"xds":false,"sds":false}' }, stdio: 'ignore' });
    const idle = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 10_000));
    rss.agent!.push(procStatusKb(agent.pid!) / 1024);
    rss.node!.push(procStatusKb(idle.pid!) / 1024);
    idle.kill('SIGKILL');
    agent.kill('SIGTERM');
    await new Promise((r) => agent.once('exit', r));
  }
  const rssBase = median(rss.node!);
  return {
    title: `Envoy supervision (${n} interleaved start runs; RSS after 10 s idle, median of 3)`,
    rows: [
      ['measure', 'p50', 'p90', 'ratio', 'target'],
      row("node -e '' (exec → exit)", runs.node!),
      [...row('pilot-agent proxy sidecar exec → Envoy exec', runs.exec!).slice(0, 4), '≤ 1.5'],
      ['idle bare Node RSS', `${rssBase.toFixed(1)} MB`, '', '1.00', ''],
      ['agent RSS, 10 s idle, Envoy (stand-in) running', `${median(rss.agent!).toFixed(1)} MB`, '', (median(rss.agent!) / rssBase).toFixed(2), '≤ 1.3'],
    ],
    notes: ["The start path includes binding the SDS and XDS sockets and generating and writing the gRPC and Envoy bootstraps; gRPC, protos and the CA load after Envoy's exec."],
  };
}
