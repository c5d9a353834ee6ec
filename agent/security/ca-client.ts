// Istiod's CA ("Citadel" provider): unary IstioCertificateService/CreateCertificate over gRPC.
// TLS unless the address ends in :15010; root, server name and client certificate as in
// credentials.ts; `authorization: Bearer <token>` re-read from the token file on every call,
// `clusterid` and CA_HEADER_* metadata. Retries as Istio's interceptor does (5 attempts,
// 100/200/400/800 ms ±10 %, on RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNAVAILABLE, with
// `x-retry-attempt`), and after any failure the connection is rebuilt with freshly loaded TLS
// material, which is how a new istiod root or PROV_CERT files that appear later are picked up.
import type * as grpcTypes from '@grpc/grpc-js';
import { scope } from '../../lib/log.js';
import { loadClientCertificate, loadRootCert, readBearerToken, type ClientCertPaths, type RootCertSource } from './credentials.js';
import { loadCaProtos, type IstioCertificateRequest, type IstioCertificateResponse } from './protos.js';
import type { CaClient } from './types.js';
import { AgentError } from '../../lib/errors.js';
import { rpcErrorText } from '../../lib/grpc-status.js';

const log = scope('citadelclient');

export interface CitadelClientOptions {
  /** host:port of the CA */
  address: string;
  /** undefined = plaintext (`:15010`) */
  tls?: {
    root: RootCertSource;
    serverName: string;
    clientCert?: ClientCertPaths;
  };
  /** Token file; undefined = never send a token. */
  tokenPath?: string;
  clusterId: string;
  certSigner: string;
  /** CA_HEADER_* as [name, value] */
  headers: readonly [string, string][];
  keepaliveMs: number;
  keepaliveTimeoutMs: number;
  /** Test hook: base wait of the first retry (Istio: 100 ms). */
  retryBaseMs?: number;
}

/** gRPC status codes Istio's retry interceptor actually retries. */
const RETRIED = new Set([8 /* RESOURCE_EXHAUSTED */, 10 /* ABORTED */, 13 /* INTERNAL */, 14 /* UNAVAILABLE */]);
const MAX_ATTEMPTS = 5;

/** A failed RPC as Go prints it: `rpc error: code = Unavailable desc = …`. */
export function goStatusText(err: { code?: number; details?: string; message?: string }): string {
  const code = err.code ?? 2;
  return rpcErrorText(code, err.details ?? err.message ?? '');
}

export class CaCallError extends AgentError {
  static override readonly code: string = 'SECURITY_CA_CALL';
  constructor(
    message: string,
    /** the gRPC status of the failed call, when there was one */
    readonly grpcCode?: number,
  ) {
    super(message);
  }
}

interface UnaryClient extends grpcTypes.Client {
  CreateCertificate(req: IstioCertificateRequest, md: grpcTypes.Metadata, cb: (err: grpcTypes.ServiceError | null, res?: IstioCertificateResponse) => void): grpcTypes.ClientUnaryCall;
}

export class CitadelClient implements CaClient {
  private client: UnaryClient | undefined;
  private closed = false;
  /** Counters read by the metrics (Istio's num_outgoing_retries{request_type="csr"}). */
  retries = 0;

  private constructor(
    private readonly grpc: typeof grpcTypes,
    private readonly ctor: grpcTypes.ServiceClientConstructor,
    private readonly o: CitadelClientOptions,
  ) {}

  /** Loads gRPC and the CA protos and starts connecting; a root file that is missing or holds no certificate throws RootCertError. */
  static async create(o: CitadelClientOptions): Promise<CitadelClient> {
    const [grpc, protos] = await Promise.all([import('@grpc/grpc-js'), loadCaProtos()]);
    const ctor = grpc.makeGenericClientConstructor(protos.service, 'IstioCertificateService');
    const client = new CitadelClient(grpc, ctor, o);
    // Connect now (still non-blocking): the TLS handshake overlaps key generation and the CSR.
    client.client = await client.dial();
    client.client.getChannel().getConnectivityState(true);
    return client;
  }

  private async dial(): Promise<UnaryClient> {
    const grpc = this.grpc;
    const options: grpcTypes.ChannelOptions = {
      'grpc.keepalive_time_ms': this.o.keepaliveMs,
      'grpc.keepalive_timeout_ms': this.o.keepaliveTimeoutMs,
      'grpc.max_receive_message_length': 2 ** 31 - 1,
      'grpc-node.flow_control_window': 1 << 20,
      'grpc.enable_retries': 0,
      // A private subchannel pool: a rebuilt client must really open a new connection.
      'grpc.use_local_subchannel_pool': 1,
      // No DNS TXT lookup for a service config (grpc-go's default too): it costs a DNS round
      // trip on every resolution, and nothing configures the CA connection that way.
      'grpc.service_config_disable_resolution': 1,
    };
    let creds: grpcTypes.ChannelCredentials;
    if (this.o.tls) {
      const root = await loadRootCert(this.o.tls.root);
      const client = await loadClientCertificate(this.o.tls.clientCert);
      creds = grpc.credentials.createSsl(root === undefined ? null : Buffer.from(root), client ? Buffer.from(client.key) : null, client ? Buffer.from(client.certChain) : null);
      options['grpc.ssl_target_name_override'] = this.o.tls.serverName;
      options['grpc.default_authority'] = this.o.tls.serverName;
    } else {
      creds = grpc.credentials.createInsecure();
    }
    return new this.ctor(this.o.address, creds, options) as unknown as UnaryClient;
  }

  private async metadata(attempt: number): Promise<grpcTypes.Metadata> {
    const md = new this.grpc.Metadata();
    // Per-call, also over plaintext: grpc-js refuses call credentials on insecure channels.
    if (this.o.tokenPath !== undefined) {
      const token = await readBearerToken(this.o.tokenPath);
      if (token !== '') md.set('authorization', `Bearer ${token}`);
    }
    md.set('clusterid', this.o.clusterId);
    for (const [k, v] of this.o.headers) md.set(k.toLowerCase(), v);
    if (attempt > 0) md.set('x-retry-attempt', String(attempt));
    return md;
  }

  private call(client: UnaryClient, req: IstioCertificateRequest, md: grpcTypes.Metadata): Promise<IstioCertificateResponse> {
    return new Promise((resolve, reject) => {
      client.CreateCertificate(req, md, (err, res) => (err ? reject(err) : resolve(res ?? {})));
    });
  }

  async csrSign(csrPem: string, ttlSeconds: number): Promise<string[]> {
    if (this.closed) throw new CaCallError('CA client is closed');
    const req: IstioCertificateRequest = {
      csr: csrPem,
      validity_duration: String(Math.trunc(ttlSeconds)),
      metadata: { fields: { CertSigner: { stringValue: this.o.certSigner } } },
    };
    const base = this.o.retryBaseMs ?? 100;
    let lastErr: grpcTypes.ServiceError | undefined;
    try {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        if (attempt > 0) {
          const wait = base * 2 ** (attempt - 1);
          await new Promise((r) => setTimeout(r, wait * (0.9 + Math.random() * 0.2)));
          this.retries++;
        }
        this.client ??= await this.dial();
        try {
          const res = await this.call(this.client, req, await this.metadata(attempt));
          const chain = res.cert_chain ?? [];
          if (chain.length <= 1) throw new CaCallError('invalid empty CertChain');
          return chain;
        } catch (err) {
          if (err instanceof CaCallError) throw err;
          lastErr = err as grpcTypes.ServiceError;
          if (!RETRIED.has(lastErr.code)) break;
          log.debug(`CSR attempt ${attempt + 1} failed: ${goStatusText(lastErr)}`);
        }
      }
      throw new CaCallError(`create certificate: ${goStatusText(lastErr ?? {})}`, lastErr?.code);
    } catch (err) {
      // Istio closes and re-dials after any failed CSRSign, reloading root and client certs.
      this.reset();
      throw err;
    }
  }

  async getRootCertBundle(): Promise<string[]> {
    return [];
  }

  private reset(): void {
    this.client?.close();
    this.client = undefined;
  }

  close(): void {
    this.closed = true;
    this.reset();
  }
}
