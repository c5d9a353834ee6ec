// The agent's XDS proxy run in-process for tests: a pod-like working directory (istiod's root
// from the test control plane, the projected token), the AgentConfig the environment resolves
// to, and the XdsSubsystem started as the agent starts it (start, then afterStart).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XdsSubsystem, type XdsSubsystemDeps } from '../../agent/xds/index.js';
import { agentConfig } from './security-env.js';
import type { TestControlPlane } from './control-plane.js';

export const TOKEN_FILE = 'var/run/secrets/tokens/istio-token';
export const ROOT_FILE = 'var/run/secrets/istio/root-cert.pem';

/** A JWT-shaped token (unsigned) with the given expiry, for tests of token handling. */
export function testJwt(expSeconds: number, sub = 'system:serviceaccount:default:app'): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'RS256', kid: 'test' })}.${b64({ aud: ['istio-ca'], exp: expSeconds, sub })}.c2lnbmF0dXJl`;
}

export interface XdsPod {
  cwd: string;
  env: Record<string, string>;
  xds: XdsSubsystem;
  socket: string;
  stop(): Promise<void>;
}

export interface XdsPodOptions {
  /** Token file content; null = no token file. Default 'test-token'. */
  token?: string | null | undefined;
  /** Write the control plane's root as ./var/run/secrets/istio/root-cert.pem (default true). */
  root?: boolean;
  env?: Record<string, string>;
  proxyConfig?: Record<string, unknown>;
  deps?: Omit<XdsSubsystemDeps, 'cwd'>;
  /** Only build (and start, unless false) — do not call ready(). */
  start?: boolean;
}

/** The environment of a sidecar whose discovery address is the control plane. */
export function xdsEnv(cp: TestControlPlane | undefined, opts: Pick<XdsPodOptions, 'env' | 'proxyConfig'> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    POD_NAME: 'app-1',
    POD_NAMESPACE: 'default',
    SERVICE_ACCOUNT: 'app',
    INSTANCE_IP: '10.1.1.1',
    ISTIO_META_CLUSTER_ID: 'Kubernetes',
    PROXY_CONFIG: JSON.stringify({ ...(cp ? { discoveryAddress: cp.address } : {}), ...(cp?.opts.plaintext ? { controlPlaneAuthPolicy: 'NONE' } : {}), ...opts.proxyConfig }),
    ...opts.env,
  };
}

export function xdsPodDir(cp: TestControlPlane | undefined, opts: Pick<XdsPodOptions, 'token' | 'root'> = {}): string {
  const cwd = mkdtempSync(join(tmpdir(), 'xds-'));
  if (cp && !cp.opts.plaintext && opts.root !== false) cp.writeRoot(join(cwd, ROOT_FILE));
  const token = opts.token === undefined ? 'test-token' : opts.token;
  if (token !== null) {
    mkdirSync(join(cwd, 'var/run/secrets/tokens'), { recursive: true });
    writeFileSync(join(cwd, TOKEN_FILE), token);
  }
  return cwd;
}

/** Starts the XDS proxy for a pod pointed at `cp`, ready to take Envoy's streams. */
export async function xdsPod(cp: TestControlPlane | undefined, opts: XdsPodOptions = {}): Promise<XdsPod> {
  const cwd = xdsPodDir(cp, opts);
  const env = xdsEnv(cp, opts);
  const xds = new XdsSubsystem(agentConfig(env), { cwd, ...opts.deps });
  if (opts.start !== false) {
    await xds.start();
    await xds.ready();
  }
  return {
    cwd,
    env,
    xds,
    socket: xds.socketPath,
    stop: async () => {
      await xds.stop();
      rmSync(cwd, { recursive: true, force: true });
    },
  };
}
