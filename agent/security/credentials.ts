// How the agent authenticates to istiod, for both the CA client and the XDS proxy: which root
// verifies istiod (with Istio's precedence), the TLS server name, the optional client
// certificate (PROV_CERT / file-mounted), the bearer token re-read on every call, and the
// extra gRPC metadata. Path choices are pure; the loaders do the file I/O.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { scope } from '../../lib/log.js';
import { keyMatchesCertificate, notAfter, parseCertificates } from './pem.js';
import { AgentError, errorMessage } from '../../lib/errors.js';

const log = scope('security');

/** Projected service-account token (audience istio-ca) Istio reads for XDS and CA calls. */
export const TOKEN_PATH = './var/run/secrets/tokens/istio-token';
/** The `istio-ca-root-cert` ConfigMap mount: the default root for istiod's TLS. */
export const DEFAULT_ISTIOD_ROOT_PATH = './var/run/secrets/istio/root-cert.pem';
/** Legacy mounted certs (and the VM `OUTPUT_CERTS=/etc/certs` layout). */
export const ETC_CERTS_DIR = './etc/certs';
export const ETC_CERTS_ROOT_PATH = './etc/certs/root-cert.pem';
/** The SAN istiod's serving certificate carries; used when the address is `localhost`. */
export const ISTIOD_DEFAULT_SAN = 'istiod.istio-system.svc';

export class RootCertError extends AgentError {
  static override readonly code: string = 'SECURITY_ROOT_CERT';
}

/** Where the root that verifies istiod comes from. */
export type RootCertSource = { kind: 'system'; via: string } | { kind: 'file'; path: string; via: 'CA_ROOT_CA' | 'XDS_ROOT_CA' | 'custom' | 'etc-certs' | 'PROV_CERT' | 'file-mounted' | 'default' };

export interface CaRootInputs {
  CA_ROOT_CA: string;
  PILOT_CERT_PROVIDER: string;
  PROV_CERT: string;
}

/**
 * The root file for the CA connection (Istio's Agent.FindRootCAForCA in
 * pkg/istio-agent/agent.go), first match wins: CA_ROOT_CA=SYSTEM, CA_ROOT_CA,
 * PILOT_CERT_PROVIDER=custom → ./etc/certs/root-cert.pem, PROV_CERT/root-cert.pem (chosen
 * without an existence check), PILOT_CERT_PROVIDER=none → error, else the ConfigMap root.
 */
export function caRootCertSource(env: CaRootInputs): RootCertSource {
  if (env.CA_ROOT_CA === 'SYSTEM') return { kind: 'system', via: 'CA_ROOT_CA' };
  if (env.CA_ROOT_CA !== '') return { kind: 'file', path: env.CA_ROOT_CA, via: 'CA_ROOT_CA' };
  if (env.PILOT_CERT_PROVIDER === 'custom') return { kind: 'file', path: ETC_CERTS_ROOT_PATH, via: 'custom' };
  if (env.PROV_CERT !== '') return { kind: 'file', path: join(env.PROV_CERT, 'root-cert.pem'), via: 'PROV_CERT' };
  if (env.PILOT_CERT_PROVIDER === 'none') throw new RootCertError('root CA not found: PILOT_CERT_PROVIDER=none');
  return { kind: 'file', path: DEFAULT_ISTIOD_ROOT_PATH, via: 'default' };
}

export interface XdsRootInputs {
  XDS_ROOT_CA: string;
  PILOT_CERT_PROVIDER: string;
  PROV_CERT: string;
  FILE_MOUNTED_CERTS: boolean;
}

/**
 * The root file for the XDS connection (Istio's Agent.FindRootCAForXDS in
 * pkg/istio-agent/agent.go): XDS_ROOT_CA=SYSTEM, XDS_ROOT_CA, ./etc/certs/root-cert.pem if it
 * exists, PROV_CERT/root-cert.pem, with FILE_MOUNTED_CERTS the proxyMetadata
 * ISTIO_META_TLS_CLIENT_ROOT_CERT, PILOT_CERT_PROVIDER=none → error, else the ConfigMap root.
 * `proxyMetadata` is ProxyConfig.proxyMetadata (not the environment).
 */
export function xdsRootCertSource(env: XdsRootInputs, proxyMetadata: Readonly<Record<string, string>>, fileExists: (p: string) => boolean): RootCertSource {
  if (env.XDS_ROOT_CA === 'SYSTEM') return { kind: 'system', via: 'XDS_ROOT_CA' };
  if (env.XDS_ROOT_CA !== '') return { kind: 'file', path: env.XDS_ROOT_CA, via: 'XDS_ROOT_CA' };
  if (fileExists(ETC_CERTS_ROOT_PATH)) return { kind: 'file', path: ETC_CERTS_ROOT_PATH, via: 'etc-certs' };
  if (env.PROV_CERT !== '') return { kind: 'file', path: join(env.PROV_CERT, 'root-cert.pem'), via: 'PROV_CERT' };
  if (env.FILE_MOUNTED_CERTS) return { kind: 'file', path: proxyMetadata.ISTIO_META_TLS_CLIENT_ROOT_CERT ?? '', via: 'file-mounted' };
  if (env.PILOT_CERT_PROVIDER === 'none') throw new RootCertError('root CA not found: PILOT_CERT_PROVIDER=none');
  return { kind: 'file', path: DEFAULT_ISTIOD_ROOT_PATH, via: 'default' };
}

export interface ClientCertPaths {
  keyPath: string;
  certPath: string;
}

/** Client certificate for the CA connection: PROV_CERT/{key.pem,cert-chain.pem} when set. */
export function caClientCertPaths(provCert: string): ClientCertPaths | undefined {
  return provCert === '' ? undefined : { keyPath: join(provCert, 'key.pem'), certPath: join(provCert, 'cert-chain.pem') };
}

/**
 * Client certificate for the XDS connection: PROV_CERT's pair, or with FILE_MOUNTED_CERTS the
 * proxyMetadata ISTIO_META_TLS_CLIENT_KEY / ISTIO_META_TLS_CLIENT_CERT_CHAIN.
 */
export function xdsClientCertPaths(env: { PROV_CERT: string; FILE_MOUNTED_CERTS: boolean }, proxyMetadata: Readonly<Record<string, string>>): ClientCertPaths | undefined {
  if (env.PROV_CERT !== '') return caClientCertPaths(env.PROV_CERT);
  if (env.FILE_MOUNTED_CERTS) {
    const keyPath = proxyMetadata.ISTIO_META_TLS_CLIENT_KEY ?? '';
    const certPath = proxyMetadata.ISTIO_META_TLS_CLIENT_CERT_CHAIN ?? '';
    if (keyPath !== '' && certPath !== '') return { keyPath, certPath };
  }
  return undefined;
}

/**
 * TLS server name for istiod: the host part of the address; any host containing `localhost`
 * becomes istiod.istio-system.svc; `istiodSan` (ISTIOD_SAN) overrides when given. The CA client
 * passes ISTIOD_SAN only when CA_ADDR is unset, as Istio does.
 */
export function istiodServerName(address: string, istiodSan = ''): string {
  if (istiodSan !== '') return istiodSan;
  let host = address;
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(address);
  if (bracket) host = bracket[1]!;
  else if (address.lastIndexOf(':') > 0 && address.indexOf(':') === address.lastIndexOf(':')) host = address.slice(0, address.lastIndexOf(':'));
  return host.includes('localhost') ? ISTIOD_DEFAULT_SAN : host;
}

/** Loads the root PEM for a source; a file must exist and hold at least one certificate. */
export async function loadRootCert(src: RootCertSource): Promise<string | undefined> {
  if (src.kind === 'system') return undefined;
  let pem: string;
  try {
    pem = await readFile(src.path, 'utf8');
  } catch (err) {
    throw new RootCertError(`${src.path}`, { cause: err });
  }
  if (parseCertificates(pem).length === 0) throw new RootCertError(`${src.path}: no PEM certificate found`);
  return pem;
}

/**
 * Loads a client key pair as Istio does at each handshake: a pair that is missing, does not
 * parse, does not match or has expired is skipped (undefined) with a log line, so token
 * authentication still works.
 */
export async function loadClientCertificate(paths: ClientCertPaths | undefined, now = Date.now()): Promise<{ key: string; certChain: string } | undefined> {
  if (!paths) return undefined;
  let key: string;
  let certChain: string;
  try {
    [key, certChain] = await Promise.all([readFile(paths.keyPath, 'utf8'), readFile(paths.certPath, 'utf8')]);
  } catch (err) {
    log.debug(`no client certificate: ${errorMessage(err)}`);
    return undefined;
  }
  const leaf = parseCertificates(certChain)[0];
  if (!leaf) {
    log.warn(`client certificate ${paths.certPath} does not parse; connecting without it`);
    return undefined;
  }
  if (notAfter(leaf) <= now) {
    log.warn(`client certificate ${paths.certPath} expired at ${new Date(notAfter(leaf)).toISOString()}; connecting without it`);
    return undefined;
  }
  try {
    if (!keyMatchesCertificate(key, leaf)) {
      log.warn(`client key ${paths.keyPath} does not match ${paths.certPath}; connecting without a client certificate`);
      return undefined;
    }
  } catch (err) {
    log.warn(`client key ${paths.keyPath} does not parse (${errorMessage(err)}); connecting without a client certificate`);
    return undefined;
  }
  return { key, certChain };
}

/**
 * The bearer token, re-read on every call (kubelet rotates the projected token in place) and
 * trimmed. A missing or unreadable file gives '' and a warning: the call goes out without an
 * authorization header, so mTLS-only authentication (PROV_CERT) still works.
 */
export async function readBearerToken(path: string = TOKEN_PATH): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (err) {
    log.warn(`failed to read token file ${path}: ${errorMessage(err)}; sending no authorization header`);
    return '';
  }
}

/**
 * Headers from a prefix family (`CA_HEADER_<NAME>`, `XDS_HEADER_<NAME>`), sorted by name so the
 * order is stable. gRPC lower-cases the keys on the wire.
 */
export function prefixedHeaders(family: ReadonlyMap<string, string>): [string, string][] {
  return [...family.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
