// Security options from the agent configuration (Istio's pilot-agent options/security.go and
// agent.go): which certificate mode, which CA, which files, which key. Pure apart from the
// file-existence probe it is handed; every path is resolved against the agent's working
// directory, as Istio's relative paths are.
import { isAbsolute, join, resolve } from 'node:path';
import type { AgentConfig } from '../../config/index.js';
import { DEFAULT_SDS_SOCKET_NAME, FILES_SDS_SOCKET_PATH, WORKLOAD_CREDENTIALS_DIR, WORKLOAD_SDS_DIR } from '../../config/paths.js';
import { caClientCertPaths, caRootCertSource, istiodServerName, prefixedHeaders, TOKEN_PATH, type ClientCertPaths, type RootCertSource } from './credentials.js';
import { spiffeIdentity, type KeyOptions } from './keycsr.js';
import { AgentError, errorMessage } from '../../lib/errors.js';

export class SecurityConfigError extends AgentError {
  static override readonly code: string = 'SECURITY_CONFIG';
}

export const CRL_PATH = '/var/run/secrets/istio/crl/ca-crl.pem';

/** Files whose presence switches the agent to file-mounted certificates. */
export interface CertFiles {
  certChain: string;
  key: string;
  root: string;
}

export const ETC_CERT_FILES: CertFiles = { certChain: './etc/certs/cert-chain.pem', key: './etc/certs/key.pem', root: './etc/certs/root-cert.pem' };
const certFilePaths = (f: CertFiles): string[] => [f.certChain, f.key, f.root];

const WORKLOAD_IDENTITY_FILES: CertFiles = {
  certChain: join(WORKLOAD_CREDENTIALS_DIR, 'cert-chain.pem'),
  key: join(WORKLOAD_CREDENTIALS_DIR, 'key.pem'),
  root: join(WORKLOAD_CREDENTIALS_DIR, 'root-cert.pem'),
};
const GKE_FILES: CertFiles = {
  certChain: join(WORKLOAD_CREDENTIALS_DIR, 'certificates.pem'),
  key: join(WORKLOAD_CREDENTIALS_DIR, 'private_key.pem'),
  root: join(WORKLOAD_CREDENTIALS_DIR, 'ca_certificates.pem'),
};

export type CaProvider = 'Citadel' | 'local';

export interface CaOptions {
  provider: string;
  /** CA_ADDR, or the discovery address when CA_ADDR is empty */
  address: string;
  /** undefined when the address ends in :15010 (plaintext) */
  tls?: { root: RootCertSource | { kind: 'error'; message: string }; serverName: string; clientCert?: ClientCertPaths };
  tokenPath?: string;
  clusterId: string;
  certSigner: string;
  headers: [string, string][];
  keepaliveMs: number;
  keepaliveTimeoutMs: number;
  /** CA_PROVIDER=local: where the local CA root lives (absolute) */
  localCaDir: string;
}

export interface SecurityOptions {
  /** No CA client: certificates come from files only. */
  fileMountedCerts: boolean;
  /** Why file-mounted mode was chosen (for the log), if it was. */
  fileMountedReason?: string;
  /** The existing-certificate paths (absolute) served for `default` / `ROOTCA` when present. */
  certFiles: CertFiles;
  /**
   * Whether the certFiles are used when they exist even without file-mounted mode (Istio's
   * implicit ./etc/certs); false when OUTPUT_CERTS is that directory (the agent would never rotate).
   */
  useExistingCertFiles: boolean;
  ca: CaOptions;
  workloadIdentity: string;
  ttlSeconds: number;
  graceRatio: number;
  graceJitter: number;
  key: KeyOptions;
  /** OUTPUT_CERTS (absolute) or undefined */
  outputDir?: string;
  /** Mode of cert-chain.pem / root-cert.pem in OUTPUT_CERTS; key.pem is always 0600. */
  outputCertMode: number;
  /** ProxyConfig caCertificatesPem, merged into ROOTCA */
  trustAnchors: string[];
  fileDebounceMs: number;
  /** CRL file added to every validation context when it exists (PILOT_ENABLE_CA_CRL). */
  crlPath?: string;
  /** The SDS socket Envoy uses (absolute) and the one to serve files on if that one is taken. */
  workloadSocketPath: string;
  workloadSocketIsDefault: boolean;
  filesSocketPath: string;
  disableEnvoy: boolean;
}

function abs(cwd: string, p: string): string {
  return isAbsolute(p) ? p : resolve(cwd, p);
}

/**
 * Builds the options, failing like Istio's start-up on: PROV_CERT with FILE_MOUNTED_CERTS, an
 * unsupported credential fetcher, GKE certificates without their three files, a socket file
 * name that is a path.
 */
export function securityOptions(config: AgentConfig, io: { cwd: string; fileExists: (p: string) => boolean }): { options: SecurityOptions; infos: string[]; warnings: string[] } {
  const env = config.env;
  const infos: string[] = [];
  const warnings: string[] = [];
  const { cwd, fileExists } = io;
  const a = (p: string) => abs(cwd, p);

  if (env.PROV_CERT !== '' && env.FILE_MOUNTED_CERTS) {
    throw new SecurityConfigError('invalid options: PROV_CERT and FILE_MOUNTED_CERTS are mutually exclusive');
  }

  let tokenPath: string | undefined;
  switch (env.CREDENTIAL_FETCHER_TYPE) {
    case '':
    case 'JWT':
      tokenPath = a(TOKEN_PATH);
      break;
    case 'GoogleComputeEngine':
    case 'Mock':
      throw new SecurityConfigError(`failed to create credential fetcher: CREDENTIAL_FETCHER_TYPE=${env.CREDENTIAL_FETCHER_TYPE} is not supported by this agent (use JWT)`);
    default:
      throw new SecurityConfigError(`failed to create credential fetcher: invalid credential fetcher type ${JSON.stringify(env.CREDENTIAL_FETCHER_TYPE)}`);
  }
  if (env.JWT_POLICY === 'first-party-jwt') warnings.push('Using deprecated JWT policy first-party-jwt; treating as third-party-jwt');
  else if (env.JWT_POLICY !== 'third-party-jwt') infos.push('Using existing certs');

  let provider = env.CA_PROVIDER;
  let certFiles = ETC_CERT_FILES;
  let fileMounted = env.FILE_MOUNTED_CERTS;
  let fileMountedReason = fileMounted ? 'FILE_MOUNTED_CERTS=true' : undefined;
  if (provider === 'GkeWorkloadCertificate') {
    const missing = certFilePaths(GKE_FILES).filter((p) => !fileExists(a(p)));
    if (missing.length) throw new SecurityConfigError(`GKE workload certificate files (${missing.join(', ')}) not present`);
    certFiles = GKE_FILES;
    fileMounted = true;
    fileMountedReason = 'CA_PROVIDER=GkeWorkloadCertificate';
  } else if (certFilePaths(WORKLOAD_IDENTITY_FILES).every((p) => fileExists(a(p)))) {
    certFiles = WORKLOAD_IDENTITY_FILES;
    fileMounted = true;
    fileMountedReason = `workload identity credentials found in ${WORKLOAD_CREDENTIALS_DIR}`;
  }
  if (env.CA_ADDR.includes('googleapis.com')) provider = 'GoogleCA';

  const socketName = env.WORKLOAD_IDENTITY_SOCKET_FILE;
  if (socketName === '' || socketName.includes('/') || socketName === '.' || socketName === '..') {
    throw new SecurityConfigError(`invalid WORKLOAD_IDENTITY_SOCKET_FILE ${JSON.stringify(socketName)}: must be a file name, not a path`);
  }

  const caAddress = env.CA_ADDR !== '' ? env.CA_ADDR : config.proxyConfig.discoveryAddress;
  const plaintext = caAddress.endsWith(':15010');
  const ca: CaOptions = {
    provider,
    address: caAddress,
    clusterId: env.ISTIO_META_CLUSTER_ID,
    certSigner: env.ISTIO_META_CERT_SIGNER,
    headers: prefixedHeaders(env.CA_HEADER_),
    keepaliveMs: env.GRPC_KEEPALIVE_INTERVAL,
    keepaliveTimeoutMs: env.GRPC_KEEPALIVE_TIMEOUT,
    localCaDir: a(env.ISTIO_AGENT_LOCAL_CA_DIR),
    ...(tokenPath !== undefined ? { tokenPath } : {}),
  };
  if (!plaintext) {
    let root: RootCertSource | { kind: 'error'; message: string };
    try {
      root = caRootCertSource(env);
      if (root.kind === 'file') root = { ...root, path: a(root.path) };
    } catch (err) {
      // Reported when a CA client is created: file-mounted modes never need this root.
      root = { kind: 'error', message: errorMessage(err) };
    }
    ca.tls = {
      root,
      // ISTIOD_SAN applies to the CA connection only when CA_ADDR is unset.
      serverName: istiodServerName(caAddress, env.CA_ADDR === '' ? env.ISTIOD_SAN : ''),
      ...(env.PROV_CERT !== '' ? { clientCert: absPaths(caClientCertPaths(env.PROV_CERT)!, a) } : {}),
    };
  }

  const outputDir = env.OUTPUT_CERTS !== '' ? a(env.OUTPUT_CERTS) : undefined;
  const absFiles: CertFiles = { certChain: a(certFiles.certChain), key: a(certFiles.key), root: a(certFiles.root) };
  const useExisting = outputDir === undefined || outputDir !== resolve(a(absFiles.certChain), '..');

  const options: SecurityOptions = {
    fileMountedCerts: fileMounted,
    ...(fileMountedReason ? { fileMountedReason } : {}),
    certFiles: absFiles,
    useExistingCertFiles: useExisting,
    ca,
    workloadIdentity: spiffeIdentity(env.TRUST_DOMAIN, env.POD_NAMESPACE, env.SERVICE_ACCOUNT),
    ttlSeconds: Math.trunc(env.SECRET_TTL / 1000),
    graceRatio: env.SECRET_GRACE_PERIOD_RATIO,
    graceJitter: env.SECRET_GRACE_PERIOD_RATIO_JITTER,
    key: { eccSignatureAlgorithm: env.ECC_SIGNATURE_ALGORITHM, eccCurve: env.ECC_CURVE, rsaKeySize: env.WORKLOAD_RSA_KEY_SIZE, pkcs8: env.PKCS8_KEY },
    ...(outputDir ? { outputDir } : {}),
    outputCertMode: env.KUBERNETES_SERVICE_HOST !== '' ? 0o644 : 0o600,
    trustAnchors: [...(config.proxyConfig.caCertificatesPem ?? [])],
    fileDebounceMs: env.FILE_DEBOUNCE_DURATION,
    ...(env.PILOT_ENABLE_CA_CRL ? { crlPath: CRL_PATH } : {}),
    workloadSocketPath: a(join(WORKLOAD_SDS_DIR, socketName)),
    workloadSocketIsDefault: socketName === DEFAULT_SDS_SOCKET_NAME,
    filesSocketPath: a(FILES_SDS_SOCKET_PATH),
    disableEnvoy: env.DISABLE_ENVOY,
  };
  return { options, infos, warnings };
}

function absPaths(p: ClientCertPaths, a: (p: string) => string): ClientCertPaths {
  return { keyPath: a(p.keyPath), certPath: a(p.certPath) };
}
