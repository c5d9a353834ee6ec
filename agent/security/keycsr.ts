// Workload keys and CSRs (Istio's pki/util GenCSR): RSA (WORKLOAD_RSA_KEY_SIZE, e=65537) or
// ECDSA P-256/P-384, generated with Node's native crypto on the libuv pool so the event loop
// never stalls (RSA keygen takes 0.1–0.9 s). The CSR is what Go builds from Istio's template:
// subject O="" (empty PrintableString), no CN, one critical URI SAN with the SPIFFE ID, signed
// sha256WithRSA / ecdsa-with-SHA256 / ecdsa-with-SHA384.
import { KeyObject, webcrypto } from 'node:crypto';
import { loadX509 } from './x509lib.js';
import { AgentError } from '../../lib/errors.js';

export interface KeyOptions {
  /** ECC_SIGNATURE_ALGORITHM: '' → RSA, 'ECDSA' → EC; anything else is an error. */
  eccSignatureAlgorithm: string;
  /** ECC_CURVE: 'P384' → P-384, anything else → P-256. */
  eccCurve: string;
  /** WORKLOAD_RSA_KEY_SIZE (≥ 2048). */
  rsaKeySize: number;
  /** PKCS8_KEY */
  pkcs8: boolean;
}

export interface KeyAndCsr {
  /** PEM: RSA PRIVATE KEY / EC PRIVATE KEY, or PRIVATE KEY with PKCS8_KEY. */
  privateKeyPem: string;
  csrPem: string;
}

export class CsrError extends AgentError {
  static override readonly code: string = 'SECURITY_CSR';
}

type Algo = { kind: 'rsa'; bits: number } | { kind: 'ec'; curve: 'P-256' | 'P-384' };

export function keyAlgorithm(o: KeyOptions): Algo {
  if (o.eccSignatureAlgorithm === '') {
    if (!Number.isInteger(o.rsaKeySize) || o.rsaKeySize < 2048) throw new CsrError(`invalid RSA key size ${o.rsaKeySize} (WORKLOAD_RSA_KEY_SIZE): must be at least 2048`);
    return { kind: 'rsa', bits: o.rsaKeySize };
  }
  if (o.eccSignatureAlgorithm !== 'ECDSA') throw new CsrError(`unsupported ECC signature algorithm ${JSON.stringify(o.eccSignatureAlgorithm)} (ECC_SIGNATURE_ALGORITHM): only ECDSA is supported`);
  return { kind: 'ec', curve: o.eccCurve === 'P384' ? 'P-384' : 'P-256' };
}

/** The SPIFFE ID Istio puts in the CSR: plain concatenation, no checks (empty parts stay empty). */
export function spiffeIdentity(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

function webCryptoParams(algo: Algo) {
  return algo.kind === 'rsa'
    ? { name: 'RSASSA-PKCS1-v1_5', modulusLength: algo.bits, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
    : { name: 'ECDSA', namedCurve: algo.curve, hash: algo.curve === 'P-384' ? 'SHA-384' : 'SHA-256' };
}

/** Generates a fresh key and a CSR for `identity` (a SPIFFE URI). */
export async function generateKeyAndCsr(o: KeyOptions, identity: string): Promise<KeyAndCsr> {
  const algo = keyAlgorithm(o);
  const params = webCryptoParams(algo);
  // WebCrypto's generateKey is Node's native key generation on the libuv pool (the same job
  // as crypto.generateKeyPair), and it hands back the CryptoKeys the CSR builder needs:
  // importing a KeyObject into WebCrypto instead costs more than generating an EC key.
  const [x509, keys] = await Promise.all([loadX509(), webcrypto.subtle.generateKey(params, true, ['sign', 'verify'])]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    // Istio fills Organization from an unset option: one RDN O="" as an empty PrintableString.
    name: [{ '2.5.4.10': [{ printableString: '' }] }] as never,
    keys: keys as never,
    signingAlgorithm: params,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: identity }], true)],
  });
  const type = o.pkcs8 ? 'pkcs8' : algo.kind === 'rsa' ? 'pkcs1' : 'sec1';
  return {
    privateKeyPem: KeyObject.from(keys.privateKey).export({ type, format: 'pem' }) as string,
    csrPem: csr.toString('pem') + '\n',
  };
}
