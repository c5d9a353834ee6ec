// OUTPUT_CERTS: the workload key, chain and root written to a directory for other programs
// (VMs, proxyless apps, PROV_CERT=OUTPUT_CERTS re-authentication). Each file is written
// atomically (temp file in the same directory, chmod, rename) and only when its content changed.
// Unlike Istio, which writes them only when a secret is generated for a request, the secret
// manager calls this on every rotation too, so the files never go stale.
import { randomBytes } from 'node:crypto';
import { chmod, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { scope } from '../../lib/log.js';
import type { SecretItem } from './types.js';

const log = scope('cache');

export const OUTPUT_KEY_FILE = 'key.pem';
export const OUTPUT_CERT_CHAIN_FILE = 'cert-chain.pem';
export const OUTPUT_ROOT_FILE = 'root-cert.pem';

/** Writes `data` to `path` atomically with `mode`, unless the file already holds exactly that. */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<boolean> {
  try {
    if ((await readFile(path, 'utf8')) === data) return false;
  } catch {
    // absent or unreadable: write it
  }
  const tmp = `${path}.tmp.${randomBytes(6).toString('hex')}`;
  try {
    await writeFile(tmp, data, { mode, flag: 'wx' });
    await chmod(tmp, mode); // the umask must not loosen or tighten it
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return true;
}

/**
 * Writes the fields the item has. The private key is always 0600 (Istio uses 0644 for all three
 * when KUBERNETES_SERVICE_HOST is set; a world-readable key is not something to copy).
 * Errors are logged, never thrown: output files must not break serving Envoy.
 */
export async function writeOutputCerts(dir: string, item: SecretItem, certMode: number): Promise<void> {
  const jobs: [string, string, number][] = [];
  if (item.privateKey) jobs.push([OUTPUT_KEY_FILE, item.privateKey, 0o600]);
  if (item.certificateChain) jobs.push([OUTPUT_CERT_CHAIN_FILE, item.certificateChain, certMode]);
  if (item.rootCert) jobs.push([OUTPUT_ROOT_FILE, item.rootCert, certMode]);
  for (const [name, data, mode] of jobs) {
    try {
      if (await writeFileAtomic(join(dir, name), data, mode)) log.info(`wrote ${join(dir, name)}`);
    } catch (err) {
      log.error(`failed to write ${join(dir, name)}: ${(err as Error).message}`);
    }
  }
}
