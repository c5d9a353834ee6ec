// Workload keys and CSRs (Istio's pki/util GenCSR): RSA (WORKLOAD_RSA_KEY_SIZE, e=65537) or
// ECDSA P-256/P-384, generated with Node's native crypto on the libuv pool so the event loop
// never stalls (RSA keygen takes 0.1–0.9 s). The CSR is what Go builds from Istio's template:
// subject O="" (empty PrintableString), no CN, one critical URI SAN with the SPIFFE ID, signed
// sha256WithRSA / ecdsa-with-SHA256 / ecdsa-with-SHA384.
import { generateKeyPair, webcrypto, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { loadX509 } from './x509lib.js';

const generateKeyPairAsync = promisify(generateKeyPair);

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

export class CsrError extends Error {
  override readonly name = 'CsrError';
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

async function toCryptoKeys(algo: Algo, privateKey: KeyObject, publicKey: KeyObject) {
  const params =
    algo.kind === 'rsa'
      ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
      : { name: 'ECDSA', namedCurve: algo.curve, hash: algo.curve === 'P-384' ? 'SHA-384' : 'SHA-256' };
  const [priv, pub] = await Promise.all([
    webcrypto.subtle.importKey('pkcs8', privateKey.export({ type: 'pkcs8', format: 'der' }), params, false, ['sign']),
    webcrypto.subtle.importKey('spki', publicKey.export({ type: 'spki', format: 'der' }), params, true, ['verify']),
  ]);
  return { priv, pub, params };
}

/** Generates a fresh key and a CSR for `identity` (a SPIFFE URI). */
export async function generateKeyAndCsr(o: KeyOptions, identity: string): Promise<KeyAndCsr> {
  const algo = keyAlgorithm(o);
  const x509P = loadX509(); // overlaps the module load with key generation
  const { privateKey, publicKey } =
    algo.kind === 'rsa'
      ? await generateKeyPairAsync('rsa', { modulusLength: algo.bits, publicExponent: 65537 })
      : await generateKeyPairAsync('ec', { namedCurve: algo.curve });
  const [x509, keys] = await Promise.all([x509P, toCryptoKeys(algo, privateKey, publicKey)]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    // Istio fills Organization from an unset option: one RDN O="" as an empty PrintableString.
    name: [{ '2.5.4.10': [{ printableString: '' }] }] as never,
    keys: { privateKey: keys.priv, publicKey: keys.pub },
    signingAlgorithm: keys.params,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: identity }], true)],
  });
  const type = o.pkcs8 ? 'pkcs8' : algo.kind === 'rsa' ? 'pkcs1' : 'sec1';
  return {
    privateKeyPem: privateKey.export({ type, format: 'pem' }) as string,
    csrPem: csr.toString('pem') + '\n',
  };
}
