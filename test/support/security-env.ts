// Sets up what a pod gives the agent for workload certificates — a working directory with
// istiod's root (./var/run/secrets/istio/root-cert.pem) and the projected token — and builds the
// AgentConfig the agent would resolve from an environment, for running the SDS subsystem
// in-process.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveAgentConfig, type AgentConfig } from '../../config/index.js';
import type { TestCaServer } from './test-ca.js';

export interface Workload {
  cwd: string;
  env: Record<string, string>;
}

/** A pod-like working directory for `sa` in `ns`, pointed at the test CA. */
export function workloadFor(ca: TestCaServer | undefined, opts: { ns?: string; sa?: string; token?: string; env?: Record<string, string> } = {}): Workload {
  const cwd = mkdtempSync(join(tmpdir(), 'wl-'));
  if (ca) ca.writeServerRoot(join(cwd, 'var/run/secrets/istio/root-cert.pem'));
  if (opts.token !== undefined) {
    mkdirSync(join(cwd, 'var/run/secrets/tokens'), { recursive: true });
    writeFileSync(join(cwd, 'var/run/secrets/tokens/istio-token'), opts.token);
  }
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    POD_NAME: `${opts.sa ?? 'app'}-pod`,
    POD_NAMESPACE: opts.ns ?? 'default',
    SERVICE_ACCOUNT: opts.sa ?? 'app',
    INSTANCE_IP: '127.0.0.1',
    ISTIO_META_CLUSTER_ID: 'Kubernetes',
    ...(ca ? { CA_ADDR: ca.address } : {}),
    ...opts.env,
  };
  return { cwd, env };
}

export function agentConfig(env: Record<string, string>): AgentConfig {
  return resolveAgentConfig({ env, files: {}, interfaces: [], parseYaml: (s) => JSON.parse(s) }).config;
}

/** Polls `pred` until it holds; rejects naming `what` after `ms`. */
export async function until(pred: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
