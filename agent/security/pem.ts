// PEM and X.509 helpers with Go's (Istio's) semantics where Node's differ: block splitting,
// certificate bundles that keep only parseable certs, the CA-response concatenation and the
// ROOTCA trust-anchor merge. Pure functions of their inputs.
import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import { AgentError } from '../../lib/errors.js';

/** A certificate or chain that does not parse or verify. */
export class CertificateError extends AgentError {
  static override readonly code: string = 'SECURITY_CERTIFICATE';
}

export interface PemBlock {
  type: string;
  /** The block's text, from BEGIN to END inclusive, with no trailing newline. */
  text: string;
}

const BLOCK = /-----BEGIN ([^-\r\n]+)-----\r?\n([\s\S]*?)-----END \1-----/g;

/** Every PEM block in order (text outside blocks is ignored, as Go's pem.Decode skips it). */
export function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) {
    const body = m[2]!.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) break; // Go stops at the first block it cannot decode
    out.push({ type: m[1]!, text: m[0] });
  }
  return out;
}

/**
 * Parses one certificate block. Rejects negative serial numbers, which OpenSSL accepts but Go's
 * x509 (and therefore Istio) refuses.
 */
export function parseCertificate(block: PemBlock | string): X509Certificate {
  const cert = new X509Certificate(typeof block === 'string' ? block : block.text);
  if (cert.serialNumber.startsWith('-')) throw new CertificateError('x509: negative serial number');
  return cert;
}

/** The certificates of a bundle that parse; blocks of other types and unparseable ones are dropped. */
export function parseCertificates(text: string): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const b of pemBlocks(text)) {
    if (b.type !== 'CERTIFICATE') continue;
    try {
      out.push(parseCertificate(b));
    } catch {
      // Istio keeps the valid roots of a bundle and skips the rest.
    }
  }
  return out;
}

/** NotAfter in ms since the epoch (Node 20's X509Certificate has no validToDate). */
export function notAfter(cert: X509Certificate): number {
  return Date.parse(cert.validTo);
}

export function notBefore(cert: X509Certificate): number {
  return Date.parse(cert.validFrom);
}

/**
 * Joins the CA response's elements, inserting a newline between elements that lack one
 * (Istio's concatCerts: ["a","b"] → "a\nb", ["a\n","b"] → "a\nb").
 */
export function concatCerts(elements: readonly string[]): string {
  let out = '';
  for (const e of elements) {
    if (out !== '' && !out.endsWith('\n')) out += '\n';
    out += e;
  }
  return out;
}

/**
 * ROOTCA's trust bundle: the CA root(s) and the ProxyConfig trust anchors, split into blocks,
 * one leading and one trailing newline stripped from each, de-duplicated by text, sorted and
 * joined with "\n" (no trailing newline), exactly as Istio merges them.
 */
export function mergeTrustAnchors(caRoot: string, anchors: readonly string[]): string {
  const set = new Set<string>();
  for (const src of [caRoot, ...anchors]) {
    for (const b of pemBlocks(src)) set.add(b.text);
  }
  return [...set].sort().join('\n');
}

/** The SPIFFE URI SANs of a certificate (`URI:spiffe://…` entries of subjectAltName). */
export function spiffeIds(cert: X509Certificate): string[] {
  const san = cert.subjectAltName ?? '';
  const out: string[] = [];
  for (const part of san.split(/,\s*/)) {
    if (part.startsWith('URI:')) out.push(part.slice(4));
  }
  return out;
}

function spki(k: KeyObject): string {
  return k.export({ type: 'spki', format: 'der' }).toString('base64');
}

/** Whether the private key (PEM) belongs to the certificate. */
export function keyMatchesCertificate(keyPem: string, cert: X509Certificate): boolean {
  return spki(createPublicKey(keyPem)) === spki(cert.publicKey);
}

/**
 * Checks that `chain` (leaf first, then intermediates) links up to one of `roots` by signature
 * and that every certificate is within its validity at `now`. Throws an Error naming the
 * first problem.
 */
export function verifyChain(chain: readonly X509Certificate[], roots: readonly X509Certificate[], now: number): void {
  if (chain.length === 0) throw new CertificateError('empty certificate chain');
  if (roots.length === 0) throw new CertificateError('no root certificate to verify the chain against');
  for (const [i, c] of chain.entries()) {
    if (notAfter(c) <= now) throw new CertificateError(`certificate ${i} of the chain (${c.subject || 'empty subject'}) expired at ${new Date(notAfter(c)).toISOString()}`);
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i]!;
    const parent = chain[i + 1]!;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      throw new CertificateError(`certificate ${i} of the chain is not signed by certificate ${i + 1}`);
    }
  }
  const top = chain[chain.length - 1]!;
  const anchor = roots.find((r) => r.fingerprint256 === top.fingerprint256 || (top.checkIssued(r) && top.verify(r.publicKey)));
  if (!anchor) throw new CertificateError('certificate chain does not verify against the root certificate(s) it came with');
}
