// A test CA speaking istio.v1.auth.IstioCertificateService over gRPC with TLS, like Istio's mock
// CA server (security/pkg/nodeagent/test/mock/caserver.go) but with switches for what the
// agent's tests need: TTL override, delays, failures (count or until further notice), empty /
// one-element answers, chains that do not verify, certificates for another key, identity
// override, token and client-certificate authentication, and root rotation. It listens on
// 127.0.0.1:<ephemeral> and is addressed as localhost:<port>, so clients verify
// istiod.istio-system.svc.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { generateKeyAndCsr, loadCaProtos, type IstioCertificateRequest, type IstioCertificateResponse } from '../../agent/security/index.js';
import { CertificateAuthority } from '../../agent/security/local-ca/index.js';

export interface CaRequestRecord {
  csr: string;
  ttlSeconds: number;
  metadata: Record<string, string>;
  certSigner: string | undefined;
  /** Whether the client presented a certificate on the TLS connection. */
  clientCert: boolean;
}

export interface TestCaOptions {
  /** Serve plaintext instead of TLS. */
  plaintext?: boolean;
  /** Ask for client certificates and fail calls that do not present one signed by the CA. */
  requireClientCert?: boolean;
}

/** A gRPC status the test CA answers with (grpc-js reads `code` and `details`). */
class GrpcStatusError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(details);
  }
}

export class TestCaServer {
  /** Lifetime of issued certificates (seconds); undefined = what the client asks for. */
  ttlSeconds: number | undefined;
  /** Wait before answering, ms. */
  delayMs = 0;
  /** Fail this many next calls with `failCode`. */
  failCount = 0;
  failCode = grpc.status.UNAVAILABLE;
  failMessage = 'CA server is not available';
  /** Fail every call while true (the CA is "down"). */
  down = false;
  /** Answer with only this many chain elements (0 = empty, 1 = leaf only). */
  truncateChain: number | undefined;
  /** Sign with a CA unrelated to the root in the answer. */
  badChain = false;
  /** Certify a different public key than the CSR's. */
  wrongKey = false;
  /** Identities to issue instead of the CSR's SAN. */
  identities: string[] | undefined;
  /** Required bearer token (`authorization: Bearer <token>`), if set. */
  requiredToken: string | undefined;
  readonly requests: CaRequestRecord[] = [];
  calls = 0;

  private constructor(
    private readonly server: grpc.Server,
    readonly port: number,
    /** Signs workload certificates. */
    public ca: CertificateAuthority,
    /** The root that verifies the server's own TLS certificate. */
    readonly serverRootPem: string,
    private readonly other: CertificateAuthority,
  ) {}

  get address(): string {
    return `localhost:${this.port}`;
  }

  /** The trust bundle returned as the last chain element. */
  get rootBundle(): string {
    return this.ca.rootBundle;
  }

  static async start(opts: TestCaOptions = {}): Promise<TestCaServer> {
    const ca = await CertificateAuthority.createRoot({ organization: 'cluster.local', commonName: 'test CA' });
    const other = await CertificateAuthority.createRoot({ organization: 'cluster.local', commonName: 'unrelated CA' });
    const protos = await loadCaProtos();
    const server = new grpc.Server();
    const ref: { self?: TestCaServer } = {};
    server.addService(protos.service, {
      CreateCertificate: (call: grpc.ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>, cb: grpc.sendUnaryData<IstioCertificateResponse>) => {
        void ref.self!.handle(call).then(
          (res) => cb(null, res),
          (err: GrpcStatusError) => cb(err as unknown as grpc.ServiceError),
        );
      },
    });
    let creds: grpc.ServerCredentials;
    if (opts.plaintext) {
      creds = grpc.ServerCredentials.createInsecure();
    } else {
      const kc = await generateKeyAndCsr({ eccSignatureAlgorithm: 'ECDSA', eccCurve: 'P256', rsaKeySize: 2048, pkcs8: false }, 'spiffe://cluster.local/ns/istio-system/sa/istiod');
      const [leaf] = await ca.sign(kc.csrPem, { ttlSeconds: 86400, identities: ['istiod.istio-system.svc'] });
      creds = grpc.ServerCredentials.createSsl(Buffer.from(ca.certPem), [{ private_key: Buffer.from(kc.privateKeyPem), cert_chain: Buffer.from(leaf!) }], !!opts.requireClientCert);
    }
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
    ref.self = new TestCaServer(server, port, ca, ca.certPem, other);
    return ref.self;
  }

  /** Writes the root that verifies this server (for ./var/run/secrets/istio/root-cert.pem). */
  writeServerRoot(path: string): void {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, this.serverRootPem);
  }

  /**
   * Root rotation: a new root signs from now on; the bundle holds the new root and, with
   * `keepOld`, the old one too (what istiod hands out during a rotation).
   */
  async rotateRoot(keepOld = true): Promise<void> {
    const next = await CertificateAuthority.createRoot({ organization: 'cluster.local', commonName: `test CA ${Date.now()}` });
    if (keepOld) next.rootBundle = next.certPem + this.ca.rootBundle;
    this.ca = next;
  }

  /** A CA signing through an intermediate (three-element chains). */
  async useIntermediate(): Promise<void> {
    this.ca = await this.ca.createIntermediate('cluster.local');
  }

  private async handle(call: grpc.ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>): Promise<IstioCertificateResponse> {
    this.calls++;
    const md: Record<string, string> = {};
    for (const [k, v] of Object.entries(call.metadata.getMap())) md[k] = String(v);
    const peer = (call as unknown as { getAuthContext?: () => { sslPeerCertificate?: unknown } }).getAuthContext?.();
    const req = call.request;
    this.requests.push({
      csr: req.csr,
      ttlSeconds: Number(req.validity_duration ?? 0),
      metadata: md,
      certSigner: req.metadata?.fields?.CertSigner?.stringValue,
      clientCert: !!peer?.sslPeerCertificate,
    });
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.down) throw new GrpcStatusError(this.failCode, this.failMessage);
    if (this.failCount > 0) {
      this.failCount--;
      throw new GrpcStatusError(this.failCode, this.failMessage);
    }
    if (this.requiredToken !== undefined && md.authorization !== `Bearer ${this.requiredToken}`) {
      throw new GrpcStatusError(grpc.status.UNAUTHENTICATED, md.authorization ? 'request authenticate failure' : 'no HTTP authorization header exists');
    }
    let csr = req.csr;
    if (this.wrongKey) csr = (await generateKeyAndCsr({ eccSignatureAlgorithm: 'ECDSA', eccCurve: 'P256', rsaKeySize: 2048, pkcs8: false }, 'spiffe://x/ns/y/sa/z')).csrPem;
    const signer = this.badChain ? this.other : this.ca;
    let chain: string[];
    try {
      // Like Istio's mock CA, the CSR's self-signature is not checked (istiod does check it).
      chain = await signer.sign(csr, { ttlSeconds: this.ttlSeconds ?? Number(req.validity_duration ?? 0), verifyCsr: false, ...(this.identities ? { identities: this.identities } : {}) });
    } catch (err) {
      throw new GrpcStatusError((err as { grpcCode?: number }).grpcCode ?? grpc.status.INTERNAL, (err as Error).message);
    }
    if (this.badChain) chain[chain.length - 1] = this.ca.rootBundle;
    if (this.truncateChain !== undefined) chain = chain.slice(0, this.truncateChain);
    return { cert_chain: chain };
  }

  async stop(): Promise<void> {
    this.server.forceShutdown();
  }
}
