// OUTPUT_CERTS: the workload key, chain and root written to a directory for other programs
// (VMs, proxyless apps, PROV_CERT=OUTPUT_CERTS re-authentication). Each file is written
// atomically with exactly its mode (lib/atomic-file.ts) and only when its content changed.
// Unlike Istio, which writes them only when a secret is generated for a request, the secret
// manager calls this on every rotation too, so the files never go stale.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../lib/atomic-file.js';
import { scope } from '../../lib/log.js';
import type { SecretItem } from './types.js';
import { errorMessage } from '../../lib/errors.js';

const log = scope('cache');

export const OUTPUT_KEY_FILE = 'key.pem';
export const OUTPUT_CERT_CHAIN_FILE = 'cert-chain.pem';
export const OUTPUT_ROOT_FILE = 'root-cert.pem';

/** Writes `data` to `path` atomically with exactly `mode`, unless the file already holds exactly that. */
async function writeIfChanged(path: string, data: string, mode: number): Promise<boolean> {
  try {
    if ((await readFile(path, 'utf8')) === data) return false;
  } catch {
    // absent or unreadable: write it
  }
  await writeFileAtomic(path, data, mode, { exactMode: true }); // the umask must not loosen or tighten it
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
      if (await writeIfChanged(join(dir, name), data, mode)) log.info(`wrote ${join(dir, name)}`);
    } catch (err) {
      log.error(`failed to write ${join(dir, name)}: ${errorMessage(err)}`);
    }
  }
}
