// `npm start`: runs `pilot-agent proxy sidecar` in a scratch working directory (out/local) with
// safe local defaults, so the agent starts and stops cleanly on a fresh machine with no cluster.
// Ctrl-C (SIGINT) or SIGTERM stops it the way Kubernetes would.
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const projectRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const workdir = resolve(projectRoot, 'out/local');
mkdirSync(workdir, { recursive: true });

function onPath(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, bin);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

const envoy = onPath('envoy');
const env: NodeJS.ProcessEnv = {
  POD_NAME: 'local-agent',
  POD_NAMESPACE: 'default',
  SERVICE_ACCOUNT: 'default',
  INSTANCE_IP: '127.0.0.1',
  ISTIO_META_CLUSTER_ID: 'Kubernetes',
  // The embedded local CA issues workload certificates; nothing talks to a real istiod, so
  // the XDS proxy dials it in plaintext and needs no istiod root (its streams fail until one
  // is pointed at with `discoveryAddress`).
  CA_PROVIDER: 'local',
  PROXY_CONFIG: JSON.stringify({ controlPlaneAuthPolicy: 'NONE', ...(envoy ? { binaryPath: envoy } : {}) }),
  ...(envoy ? {} : { DISABLE_ENVOY: 'true' }),
  ...process.env,
};

const args = [resolve(projectRoot, 'dist/bundle/pilot-agent.mjs'), 'proxy', 'sidecar', ...process.argv.slice(2)];
process.stdout.write(
  `npm start: pilot-agent proxy sidecar in ${workdir} (${envoy ? `Envoy at ${envoy}` : 'no envoy on PATH'}); ` +
    `SDS on ${join(workdir, 'var/run/secrets/workload-spiffe-uds/socket')}, XDS on ${join(workdir, 'etc/istio/proxy/XDS')}; Ctrl-C stops it\n`,
);
const child = spawn(process.execPath, args, { cwd: workdir, env, stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => child.kill(sig));
}
child.on('exit', (code, signal) => {
  process.exit(code ?? (signal ? 128 : 1));
});
