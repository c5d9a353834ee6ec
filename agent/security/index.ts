// Public surface of agent/security: workload certificates (SDS server, secret cache, CA client)
// and the credential helpers the XDS proxy shares with the CA client (istiod root precedence,
// server name, client certificate, bearer token, extra headers).
export { SdsStartError, SdsSubsystem, type SdsSubsystemDeps } from './subsystem.js';
export { SecretManager, UnknownResourceError, OS_CA_BUNDLES, type SecretManagerOptions, type SecretManagerMetrics } from './secret-manager.js';
export { SdsServer, toEnvoySecret, type SecretSource, type SdsServerOptions, type SdsMetrics } from './sds-server.js';
export { SdsConnection, StreamError, rfc3339Local, nextVersion } from './sds-stream.js';
export { CitadelClient, CaCallError, goStatusText, type CitadelClientOptions } from './ca-client.js';
export {
  caClientCertPaths,
  caRootCertSource,
  istiodServerName,
  loadClientCertificate,
  loadRootCert,
  prefixedHeaders,
  readBearerToken,
  xdsClientCertPaths,
  xdsRootCertSource,
  RootCertError,
  DEFAULT_ISTIOD_ROOT_PATH,
  ETC_CERTS_DIR,
  ETC_CERTS_ROOT_PATH,
  ISTIOD_DEFAULT_SAN,
  TOKEN_PATH,
  type ClientCertPaths,
  type RootCertSource,
} from './credentials.js';
export { securityOptions, SecurityConfigError, CRL_PATH, ETC_CERT_FILES, type CaOptions, type CertFiles, type SecurityOptions } from './options.js';
export { generateKeyAndCsr, keyAlgorithm, spiffeIdentity, CsrError, type KeyOptions, type KeyAndCsr } from './keycsr.js';
export { concatCerts, keyMatchesCertificate, mergeTrustAnchors, notAfter, notBefore, parseCertificate, parseCertificates, pemBlocks, spiffeIds, verifyChain, type PemBlock } from './pem.js';
export { ExponentialBackoff, LongTimer, MAX_TIMEOUT_MS, DEFAULT_BACKOFF, retryUntilSuccess, rotationDelay, sleep, systemClock, type BackoffOptions, type Clock } from './backoff.js';
export { writeOutputCerts, OUTPUT_CERT_CHAIN_FILE, OUTPUT_KEY_FILE, OUTPUT_ROOT_FILE } from './output-certs.js';
export { CertWatcher } from './file-watch.js';
export {
  loadCaProtos,
  loadSdsProtos,
  serviceDefinition,
  encodeMessage,
  decodeMessage,
  SECRET_TYPE_URL,
  SDS_SERVICE,
  CA_SERVICE,
  type DiscoveryRequest,
  type DiscoveryResponse,
  type IstioCertificateRequest,
  type IstioCertificateResponse,
} from './protos.js';
export { FILE_CERT_PREFIX, FILE_ROOT_PREFIX, ROOT_CERT_RESOURCE, WORKLOAD_KEY_CERT_RESOURCE, type CaClient, type SecretItem } from './types.js';
