// The embedded local CA (`CA_PROVIDER=local`): a self-signed root created on first use under
// ISTIO_AGENT_LOCAL_CA_DIR (relative to the working directory) and reused afterwards, signing
// workload CSRs in-process. For `npm start` and development without a cluster; it is only ever
// selected explicitly, never as a fallback when istiod is unreachable.
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../../../lib/atomic-file.js';
import { scope } from '../../../lib/log.js';
import { keyMatchesCertificate, parseCertificate } from '../pem.js';
import type { CaClient } from '../types.js';
import { CertificateAuthority } from './authority.js';
import { AgentError } from '../../../lib/errors.js';

/** The local CA's root files are unusable. */
export class LocalCaError extends AgentError {
  static override readonly code: string = 'LOCAL_CA';
}

export { CertificateAuthority, CaRequestError, DEFAULT_WORKLOAD_CERT_TTL_S, MAX_WORKLOAD_CERT_TTL_S, type SignOptions } from './authority.js';

const log = scope('localca');

export const LOCAL_CA_CERT_FILE = 'root-cert.pem';
export const LOCAL_CA_KEY_FILE = 'root-key.pem';

async function readIfExists(p: string): Promise<string | undefined> {
  try {
    return await readFile(p, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Loads the local CA from `dir`, creating the directory (0700) and a new root (key 0600) when
 * neither file exists. A half-present or mismatched pair is an error naming the files: the
 * agent never silently replaces a root that workloads may already trust.
 */
export async function loadOrCreateLocalCa(dir: string, trustDomain: string): Promise<CertificateAuthority> {
  const abs = resolve(dir);
  const certPath = join(abs, LOCAL_CA_CERT_FILE);
  const keyPath = join(abs, LOCAL_CA_KEY_FILE);
  const [certPem, keyPem] = await Promise.all([readIfExists(certPath), readIfExists(keyPath)]);
  if (certPem === undefined && keyPem === undefined) {
    await mkdir(abs, { recursive: true, mode: 0o700 });
    const ca = await CertificateAuthority.createRoot({ organization: trustDomain, commonName: 'istio-agent local CA' });
    // Key first: a reader that finds the certificate always finds its key.
    await writeFileAtomic(keyPath, await ca.privateKeyPem(), 0o600);
    await writeFileAtomic(certPath, ca.certPem, 0o644);
    log.info(`created local CA root ${certPath}`);
    return ca;
  }
  if (certPem === undefined || keyPem === undefined) {
    throw new LocalCaError(`local CA in ${abs} is incomplete: ${certPem === undefined ? certPath : keyPath} is missing (remove the directory to create a new root)`);
  }
  let cert;
  try {
    cert = parseCertificate(certPem);
  } catch (err) {
    throw new LocalCaError(`local CA certificate ${certPath} is invalid`, { cause: err });
  }
  let matches = false;
  try {
    matches = keyMatchesCertificate(keyPem, cert);
  } catch (err) {
    throw new LocalCaError(`local CA key ${keyPath} is invalid`, { cause: err });
  }
  if (!matches) throw new LocalCaError(`local CA key ${keyPath} does not match certificate ${certPath}`);
  return CertificateAuthority.fromPem(certPem, keyPem);
}

/** The CaClient of `CA_PROVIDER=local`: signs in-process with the CSR's SPIFFE identity. */
export class LocalCaClient implements CaClient {
  constructor(private readonly ca: CertificateAuthority) {}

  csrSign(csrPem: string, ttlSeconds: number): Promise<string[]> {
    return this.ca.sign(csrPem, { ttlSeconds });
  }

  async getRootCertBundle(): Promise<string[]> {
    return [];
  }

  close(): void {}
}
