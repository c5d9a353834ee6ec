// A small X.509 certificate authority with istiod's workload-certificate profile (Istio's
// GenCertFromCSR in security/pkg/pki/util/generate_cert.go): empty subject, critical SPIFFE URI
// SAN, digitalSignature + keyEncipherment, serverAuth + clientAuth, CA:false,
// NotBefore now − 2 min, 128-bit random serial, lifetime clamped to the signer's. Used by the
// embedded local CA (CA_PROVIDER=local) and by the test CA.
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { loadX509, type X509Lib } from '../x509lib.js';
import { AgentError, type AgentErrorOptions } from '../../../lib/errors.js';

export const DEFAULT_WORKLOAD_CERT_TTL_S = 24 * 3600;
export const MAX_WORKLOAD_CERT_TTL_S = 90 * 24 * 3600;

/** A request the CA refuses; `grpcCode` is what istiod would answer (3 = INVALID_ARGUMENT). */
export class CaRequestError extends AgentError {
  static override readonly code: string = 'LOCAL_CA_REQUEST';
  constructor(
    message: string,
    readonly grpcCode = 3,
    options?: AgentErrorOptions,
  ) {
    super(message, options);
  }
}

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

function serialHex(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01; // positive and full length
  return b.toString('hex');
}

export interface SignOptions {
  ttlSeconds: number;
  /** Check the CSR's self-signature (istiod does; Istio's mock CA does not). Default true. */
  verifyCsr?: boolean;
  /** SANs to issue (istiod uses the authenticated identity); default: the CSR's URI SANs. */
  identities?: readonly string[];
  now?: number;
}

export class CertificateAuthority {
  private constructor(
    private readonly x509: X509Lib,
    private readonly signingKey: webcrypto.CryptoKey,
    private readonly cert: InstanceType<X509Lib['X509Certificate']>,
    /** This CA's certificate followed by its parents below the root (empty for a root). */
    readonly intermediates: readonly string[],
    /** The trust bundle handed out as the last chain element (one or more roots). */
    public rootBundle: string,
  ) {}

  /** PEM of this CA's own certificate. */
  get certPem(): string {
    return this.cert.toString('pem') + '\n';
  }

  get notAfter(): number {
    return this.cert.notAfter.getTime();
  }

  /** A new self-signed ECDSA P-256 root with `O=<organization>`. */
  static async createRoot(opts: { organization: string; commonName?: string; ttlDays?: number; now?: number }): Promise<CertificateAuthority> {
    const x509 = await loadX509();
    const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
    const now = opts.now ?? Date.now();
    const name: Record<string, string[]>[] = [{ '2.5.4.10': [opts.organization] }];
    if (opts.commonName) name.push({ '2.5.4.3': [opts.commonName] });
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serialHex(),
      name,
      notBefore: new Date(now - 120_000),
      notAfter: new Date(now + (opts.ttlDays ?? 3650) * 86_400_000),
      keys: keys as never,
      signingAlgorithm: EC_P256,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return new CertificateAuthority(x509, keys.privateKey, cert, [], cert.toString('pem') + '\n');
  }

  /** Loads a CA from its certificate and PKCS#8/SEC1 EC or RSA key (PEM). */
  static async fromPem(certPem: string, keyPem: string, opts: { intermediates?: string[]; rootBundle?: string } = {}): Promise<CertificateAuthority> {
    const x509 = await loadX509();
    const cert = new x509.X509Certificate(certPem);
    const keyObj = createPrivateKey(keyPem);
    const params =
      keyObj.asymmetricKeyType === 'ec' ? { name: 'ECDSA', namedCurve: keyObj.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'P-384' : 'P-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    const key = await webcrypto.subtle.importKey('pkcs8', keyObj.export({ type: 'pkcs8', format: 'der' }), params, true, ['sign']);
    return new CertificateAuthority(x509, key, cert, opts.intermediates ?? [], opts.rootBundle ?? cert.toString('pem') + '\n');
  }

  /** The private key as PKCS#8 PEM (to persist a CA). */
  async privateKeyPem(): Promise<string> {
    const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', this.signingKey));
    return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
  }

  private signingAlgorithm(): webcrypto.EcdsaParams | webcrypto.Algorithm {
    const a = this.signingKey.algorithm as webcrypto.EcKeyAlgorithm;
    if (a.name === 'ECDSA') return { name: 'ECDSA', hash: a.namedCurve === 'P-384' ? 'SHA-384' : 'SHA-256' };
    return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  }

  private aki: Promise<InstanceType<X509Lib['AuthorityKeyIdentifierExtension']>> | undefined;

  private authorityKeyId() {
    this.aki ??= this.x509.AuthorityKeyIdentifierExtension.create(this.cert as never);
    return this.aki;
  }

  /** An intermediate CA signed by this one (tests use it for three-element chains). */
  async createIntermediate(organization: string): Promise<CertificateAuthority> {
    const x509 = this.x509;
    const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serialHex(),
      subject: [{ '2.5.4.10': [organization] }, { '2.5.4.3': ['intermediate'] }],
      issuer: this.cert.subject,
      notBefore: new Date(now - 120_000),
      notAfter: new Date(Math.min(this.notAfter, now + 365 * 86_400_000)),
      publicKey: keys.publicKey as never,
      signingKey: this.signingKey as never,
      signingAlgorithm: this.signingAlgorithm() as never,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(this.cert as never),
      ],
    });
    return new CertificateAuthority(x509, keys.privateKey, cert, [cert.toString('pem') + '\n', ...this.intermediates], this.rootBundle);
  }

  /**
   * Signs a CSR with istiod's leaf profile and returns the chain elements istiod returns:
   * [leaf, intermediates…, root bundle], each ending in "\n".
   */
  async sign(csrPem: string, opts: SignOptions): Promise<string[]> {
    const x509 = this.x509;
    let csr: InstanceType<X509Lib['Pkcs10CertificateRequest']>;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch (err) {
      throw new CaRequestError('failed to parse CSR', 3, { cause: err });
    }
    if (opts.verifyCsr !== false && !(await csr.verify())) throw new CaRequestError('CSR signature verification failed');
    let ttl = opts.ttlSeconds;
    if (ttl <= 0) ttl = DEFAULT_WORKLOAD_CERT_TTL_S;
    if (ttl > MAX_WORKLOAD_CERT_TTL_S) throw new CaRequestError(`requested TTL ${ttl}s is greater than the max allowed TTL ${MAX_WORKLOAD_CERT_TTL_S}s`);
    let ids: readonly string[] | undefined = opts.identities;
    if (!ids) {
      const san = csr.getExtension('2.5.29.17') as InstanceType<X509Lib['SubjectAlternativeNameExtension']> | null;
      ids = san ? san.names.items.filter((n) => n.type === 'url').map((n) => n.value) : [];
    }
    if (ids.length === 0) throw new CaRequestError('no identity to issue a certificate for');
    const now = opts.now ?? Date.now();
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: serialHex(),
      subject: [],
      issuer: this.cert.subject,
      notBefore: new Date(now - 120_000),
      notAfter: new Date(Math.min(now + ttl * 1000, this.notAfter)),
      publicKey: csr.publicKey,
      signingKey: this.signingKey as never,
      signingAlgorithm: this.signingAlgorithm() as never,
      extensions: [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.BasicConstraintsExtension(false, undefined, true),
        await this.authorityKeyId(),
        new x509.SubjectAlternativeNameExtension(
          ids.map((id) => (id.includes('://') ? { type: 'url' as const, value: id } : { type: 'dns' as const, value: id })),
          true,
        ),
      ],
    });
    return [leaf.toString('pem') + '\n', ...this.intermediates, this.rootBundle];
  }
}
