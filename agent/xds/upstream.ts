// How the XDS proxy reaches istiod (Istio's pkg/istio-agent/xds_proxy.go,
// buildUpstreamClientDialOpts and getTLSOptions): the address, TLS with Istio's root precedence
// (or plaintext with controlPlaneAuthPolicy NONE), the server name, the optional client
// certificate, and the metadata of every stream — `authorization: Bearer <token>` read afresh
// for each stream, `ClusterID`, and every XDS_HEADER_<NAME>. The choices are pure
// (xdsUpstreamConfig); the root check at start and the per-stream credentials do the file I/O.
//
// Each downstream stream gets a fresh connection, so everything is read when a stream opens:
// a new root file, a rotated token or a new PROV_CERT key pair take effect on Envoy's next
// stream without a file watcher (Istio rebuilds its dial options from a watcher on the root
// file; the effect is the same). A root file that stops parsing keeps the last good root, as
// Istio keeps its last dial options when the rebuild fails.
import { isAbsolute, resolve } from 'node:path';
import type * as grpcTypes from '@grpc/grpc-js';
import { scope } from '../../lib/log.js';
import type { AgentConfig } from '../../config/index.js';
import {
  istiodServerName,
  loadClientCertificate,
  loadRootCert,
  prefixedHeaders,
  readBearerToken,
  RootCertError,
  TOKEN_PATH,
  xdsClientCertPaths,
  xdsRootCertSource,
  type ClientCertPaths,
  type RootCertSource,
} from '../security/credentials.js';
import { AgentError, errorMessage } from '../../lib/errors.js';

const log = scope('xdsproxy');

/** Istio's defaultClientMaxReceiveMessageSize (math.MaxInt32). */
export const UPSTREAM_MAX_RECEIVE_MESSAGE = 2 ** 31 - 1;
/** Initial HTTP/2 window of the upstream connection and its streams (1 MiB, as Istio sets it). */
export const UPSTREAM_WINDOW = 1 << 20;

export class XdsConfigError extends AgentError {
  static override readonly code: string = 'XDS_CONFIG';
}

export interface XdsUpstreamConfig {
  /** ProxyConfig discoveryAddress (host:port, resolved by the OS resolver). */
  address: string;
  /** undefined: controlPlaneAuthPolicy NONE (plaintext). Paths are absolute. */
  tls?: { root: RootCertSource; serverName: string; clientCert?: ClientCertPaths };
  /** The projected token (absolute). */
  tokenPath: string;
  /** ISTIO_META_CLUSTER_ID, sent as `ClusterID`. */
  clusterId: string;
  /** XDS_HEADER_<NAME>=v as [NAME, v], sorted by name. */
  headers: [string, string][];
  keepaliveMs: number;
  keepaliveTimeoutMs: number;
}

function abs(cwd: string, p: string): string {
  return isAbsolute(p) ? p : resolve(cwd, p);
}

/**
 * The upstream settings from the agent configuration; relative paths resolve against `cwd`.
 * Throws XdsConfigError when TLS is on and no root can be chosen (PILOT_CERT_PROVIDER=none).
 */
export function xdsUpstreamConfig(config: AgentConfig, cwd: string, fileExists: (p: string) => boolean): XdsUpstreamConfig {
  const env = config.env;
  const pc = config.proxyConfig;
  const out: XdsUpstreamConfig = {
    address: pc.discoveryAddress,
    tokenPath: abs(cwd, TOKEN_PATH),
    clusterId: env.ISTIO_META_CLUSTER_ID,
    headers: prefixedHeaders(env.XDS_HEADER_),
    keepaliveMs: env.GRPC_KEEPALIVE_INTERVAL,
    keepaliveTimeoutMs: env.GRPC_KEEPALIVE_TIMEOUT,
  };
  if (pc.controlPlaneAuthPolicy === 'NONE') return out;
  const metadata = pc.proxyMetadata ?? {};
  let root: RootCertSource;
  try {
    root = xdsRootCertSource(env, metadata, (p) => fileExists(abs(cwd, p)));
  } catch (err) {
    throw new XdsConfigError(`failed to find root CA cert for XDS`, { cause: err });
  }
  if (root.kind === 'file') root = { ...root, path: abs(cwd, root.path) };
  const client = xdsClientCertPaths(env, metadata);
  out.tls = {
    root,
    serverName: istiodServerName(pc.discoveryAddress, env.ISTIOD_SAN),
    ...(client ? { clientCert: { keyPath: abs(cwd, client.keyPath), certPath: abs(cwd, client.certPath) } } : {}),
  };
  return out;
}

/**
 * What Istio fails start-up for (initIstiodDialOptions in pkg/istio-agent/xds_proxy.go): with
 * TLS, the root file must exist and hold at least one certificate. Returns the PEM (undefined
 * for the OS trust store).
 */
export async function checkXdsRoot(cfg: XdsUpstreamConfig): Promise<string | undefined> {
  if (!cfg.tls) return undefined;
  const root = cfg.tls.root;
  if (root.kind === 'system') return undefined;
  try {
    return await loadRootCert(root);
  } catch (err) {
    const msg = errorMessage(err);
    if (err instanceof RootCertError && /ENOENT/.test(msg)) throw new XdsConfigError(`failed to find root CA cert for XDS: root CA file for XDS does not exist ${root.path}`);
    throw new XdsConfigError(`failed to find root CA cert for XDS: ${msg}`);
  }
}

/** The `exp` of a JWT (ms since the epoch), or undefined when the token is not a JWT with one. */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** A connection to istiod for one downstream stream, with the stream's metadata. */
export interface UpstreamConnection {
  client: grpcTypes.Client;
  metadata: grpcTypes.Metadata;
}

/** Opens upstream connections, reading root, client certificate and token each time. */
export class UpstreamDialer {
  private lastGoodRoot: string | undefined;
  private rootWarned = false;

  constructor(
    private readonly grpc: typeof grpcTypes,
    readonly cfg: XdsUpstreamConfig,
    initialRoot?: string,
  ) {
    this.lastGoodRoot = initialRoot;
  }

  private async rootPem(root: RootCertSource): Promise<string | undefined> {
    if (root.kind === 'system') return undefined;
    try {
      const pem = await loadRootCert(root);
      this.lastGoodRoot = pem;
      this.rootWarned = false;
      return pem;
    } catch (err) {
      if (this.lastGoodRoot === undefined) throw err;
      if (!this.rootWarned) log.warn(`failed to reload the XDS root CA (${errorMessage(err)}); keeping the previous root`);
      this.rootWarned = true;
      return this.lastGoodRoot;
    }
  }

  private async credentials(options: grpcTypes.ChannelOptions): Promise<grpcTypes.ChannelCredentials> {
    const tls = this.cfg.tls;
    if (!tls) return this.grpc.credentials.createInsecure();
    const [root, client] = await Promise.all([this.rootPem(tls.root), loadClientCertificate(tls.clientCert)]);
    options['grpc.ssl_target_name_override'] = tls.serverName;
    options['grpc.default_authority'] = tls.serverName;
    return this.grpc.credentials.createSsl(root === undefined ? null : Buffer.from(root), client ? Buffer.from(client.key) : null, client ? Buffer.from(client.certChain) : null);
  }

  private async metadata(): Promise<grpcTypes.Metadata> {
    const md = new this.grpc.Metadata();
    // Sent over plaintext too (istiod on :15010 still authenticates), so it goes in the
    // metadata rather than in call credentials, which grpc-js refuses on insecure channels.
    const token = await readBearerToken(this.cfg.tokenPath);
    if (token !== '') {
      const exp = jwtExpiry(token);
      if (exp !== undefined && exp <= Date.now()) log.warn(`XDS token ${this.cfg.tokenPath} expired at ${new Date(exp).toISOString()}; istiod will reject the stream until the token is renewed`);
      md.set('authorization', `Bearer ${token}`);
    }
    md.set('clusterid', this.cfg.clusterId);
    for (const [k, v] of this.cfg.headers) md.set(k.toLowerCase(), v);
    return md;
  }

  /** A new connection (its own subchannel) and the metadata for its stream. Throws when the TLS material cannot be loaded. */
  async dial(): Promise<UpstreamConnection> {
    const options: grpcTypes.ChannelOptions = {
      'grpc.keepalive_time_ms': this.cfg.keepaliveMs,
      'grpc.keepalive_timeout_ms': this.cfg.keepaliveTimeoutMs,
      'grpc.max_receive_message_length': UPSTREAM_MAX_RECEIVE_MESSAGE,
      'grpc-node.flow_control_window': UPSTREAM_WINDOW,
      // A relayed stream is never replayed: no retry buffering of what Envoy sent.
      'grpc.enable_retries': 0,
      // Istio dials a new connection for every downstream stream (a reconnecting Envoy may land
      // on another istiod); a private subchannel pool keeps grpc-js from sharing one.
      'grpc.use_local_subchannel_pool': 1,
      'grpc.service_config_disable_resolution': 1,
    };
    const [creds, metadata] = await Promise.all([this.credentials(options), this.metadata()]);
    return { client: new this.grpc.Client(this.cfg.address, creds, options), metadata };
  }
}
