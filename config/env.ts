// Every environment variable pilot-agent reads, declared once (name → type, default, meaning).
// Values are read in resolve() with Go's parsing rules and handed to subsystems through
// AgentConfig.env; no other module reads process.env. The README table is generated from here.
import { bool, duration, float, int, optBool, optStr, prefix, str } from '../lib/env.js';

const ID = 'Identity and configuration';
const SEC = 'Certificates, CA and control plane';
const ENVOY = 'Envoy and lifecycle';
const STATUS = 'Status server, probes and metrics';
const NET = 'DNS and gRPC tuning';
const LOCAL = 'This implementation only';

export const agentEnv = {
  // Identity and configuration
  POD_NAME: str('', 'Pod or instance name: proxy ID, node metadata NAME.', ID),
  POD_NAMESPACE: str('', 'Namespace: proxy ID, DNS domain, CSR identity, node metadata NAMESPACE.', ID),
  INSTANCE_IP: str('', 'Primary IP: first IP of the node ID, app-probe destination.', ID),
  SERVICE_ACCOUNT: str('', 'Service account: CSR identity, node metadata SERVICE_ACCOUNT.', ID),
  HOST_IP: str('', 'Node IP, substituted for `$(HOST_IP)` in the bootstrap override file and tracer addresses.', ID),
  PROXY_CONFIG: str('', 'ProxyConfig overlay in YAML or JSON, applied over the mesh config file.', ID),
  ISTIO_CPU_LIMIT: int(0, 'Envoy concurrency when ProxyConfig sets none (the injector passes the CPU limit).', ID),
  ISTIO_META_: prefix('Each `ISTIO_META_<KEY>=v` becomes node metadata `<KEY>: "v"`.', ID),
  ISTIO_METAJSON_: prefix('Value is a JSON object whose keys are merged into node metadata; `ISTIO_METAJSON_LABELS` also sets LABELS.', ID),
  ISTIO_META_CLUSTER_ID: str('', 'Cluster ID; also sent as gRPC metadata `ClusterID` to istiod (XDS and CA).', ID),
  ISTIO_META_DNS_CAPTURE: bool(false, 'Enable the DNS proxy (sidecars).', ID),
  ISTIO_META_ENABLE_DNS_SERVER: bool(false, 'Enable the DNS proxy for any proxy type.', ID),
  ISTIO_META_CERT_SIGNER: str('', 'Sent in CSR metadata `CertSigner`.', ID),
  XDS_HEADER_: prefix('Each `XDS_HEADER_<NAME>=v` is sent as gRPC metadata `<NAME>: v` on the XDS stream.', ID),
  CA_HEADER_: prefix('Each `CA_HEADER_<NAME>=v` is sent as gRPC metadata `<NAME>: v` on CSR calls.', ID),
  CLOUD_PLATFORM: str('', 'aws, azure, gcp or none. Platform metadata comes from the environment only (GCP_METADATA); metadata servers are not probed at start.', ID),
  GCP_METADATA: str('', '`PROJECT_ID|PROJECT_NUMBER|CLUSTER_NAME|CLUSTER_LOCATION`: GCP platform metadata for the bootstrap (PLATFORM_METADATA).', ID),
  GCP_ZONE: str('', 'GCP zone: platform metadata gcp_zone and the locality fallback (region = zone minus its last `-part`).', ID),
  GCP_QUOTA_PROJECT: str('', 'GCP quota project: platform metadata gcp_quota_project.', ID),

  // Certificates, CA and control plane
  CA_ADDR: str('', 'CA endpoint (IstioCertificateService); empty means the discovery address. A `:15010` address is plaintext.', SEC),
  CA_PROVIDER: str('Citadel', '`Citadel` (istiod); `local` selects the embedded local CA of this implementation.', SEC),
  PILOT_CERT_PROVIDER: str('istiod', 'Which root verifies istiod: istiod, custom or none.', SEC),
  XDS_ROOT_CA: str('', 'Root file for XDS TLS; `SYSTEM` for the OS trust store.', SEC),
  CA_ROOT_CA: str('', 'Root file for CA TLS; `SYSTEM` for the OS trust store.', SEC),
  ISTIOD_SAN: str('', 'TLS server name override for istiod.', SEC),
  TRUST_DOMAIN: str('cluster.local', 'SPIFFE trust domain of the CSR.', SEC),
  JWT_POLICY: str('third-party-jwt', 'third-party-jwt or first-party-jwt; the token path is the same either way.', SEC),
  CREDENTIAL_FETCHER_TYPE: str('JWT', 'JWT (token file), GoogleComputeEngine or Mock.', SEC),
  CREDENTIAL_IDENTITY_PROVIDER: str('GoogleComputeEngine', 'Identity provider for the GCE credential fetcher.', SEC),
  PROV_CERT: str('', 'Directory with provisioning key.pem, cert-chain.pem, root-cert.pem (VMs).', SEC),
  OUTPUT_CERTS: str('', 'Directory where the workload key, chain and root are written (at start and on every rotation).', SEC),
  FILE_MOUNTED_CERTS: bool(false, 'Serve certificates from files instead of a CA.', SEC),
  SECRET_TTL: duration(24 * 3_600_000, 'Requested workload certificate lifetime.', SEC),
  SECRET_GRACE_PERIOD_RATIO: float(0.5, 'Rotate when this fraction of the lifetime remains.', SEC),
  SECRET_GRACE_PERIOD_RATIO_JITTER: float(0.01, 'Random jitter (±) on the grace period ratio.', SEC),
  WORKLOAD_RSA_KEY_SIZE: int(2048, 'RSA key size of workload keys.', SEC),
  ECC_SIGNATURE_ALGORITHM: str('', '`ECDSA` for EC workload keys.', SEC),
  ECC_CURVE: str('P256', 'P256 or P384 for EC workload keys.', SEC),
  PKCS8_KEY: bool(false, 'Encode workload keys as PKCS#8.', SEC),
  FILE_DEBOUNCE_DURATION: duration(100, 'Debounce for certificate file watches.', SEC),
  WORKLOAD_IDENTITY_SOCKET_FILE: str('socket', 'SDS socket file name under ./var/run/secrets/workload-spiffe-uds/ (bare name).', SEC),
  TOKEN_AUDIENCES: str('istio-ca', 'Accepted token audiences.', SEC),
  KUBERNETES_SERVICE_HOST: str('', 'When non-empty, OUTPUT_CERTS cert-chain.pem and root-cert.pem are mode 0644 instead of 0600 (key.pem stays 0600).', SEC),
  XDS_AUTH_PROVIDER: str('', 'Stored only; no effect.', SEC),
  PILOT_ENABLE_CA_CRL: bool(true, 'Add the CRL file /var/run/secrets/istio/crl/ca-crl.pem (when it exists) to the SDS validation contexts.', SEC),

  // Envoy and lifecycle
  ENVOY_STATUS_PORT: int(15021, 'Envoy health listener port.', ENVOY),
  ENVOY_PROMETHEUS_PORT: int(15090, 'Envoy Prometheus listener port (scraped for the merged metrics).', ENVOY),
  ENVOY_SECURE_METRICS_PORT: int(0, 'mTLS Envoy stats listener port (0 = off).', ENVOY),
  ENVOY_SECURE_MERGED_METRICS_PORT: int(0, 'mTLS listener routing to the merged metrics (0 = off).', ENVOY),
  ENVOY_SKIP_DEPRECATED_LOGS: bool(true, 'Pass `--skip-deprecated-logs` to Envoy.', ENVOY),
  ISTIO_ENVOY_ENABLE_CORE_DUMP: bool(false, 'Pass `--enable-core-dump` to Envoy.', ENVOY),
  ISTIO_BOOTSTRAP_OVERRIDE: str('', 'YAML/JSON file merged by Envoy via `--config-yaml`.', ENVOY),
  ISTIO_BOOTSTRAP: str('', 'Custom bootstrap template path (Go text/template; not rendered by this implementation — use customConfigFile).', ENVOY),
  MINIMUM_DRAIN_DURATION: duration(5_000, 'First wait in the exit-on-zero-connections drain.', ENVOY),
  EXIT_ON_ZERO_ACTIVE_CONNECTIONS: bool(false, 'Drain until Envoy has no active downstream connections.', ENVOY),
  DISABLE_ENVOY: bool(false, 'Run the agent without Envoy (proxyless gRPC).', ENVOY),
  GRPC_XDS_BOOTSTRAP: str('etc/istio/proxy/grpc-bootstrap.json', 'gRPC xDS bootstrap output path; empty disables it.', ENVOY),
  ISTIO_DELTA_XDS: bool(true, 'Envoy uses delta ADS.', ENVOY),
  PEER_METADATA_DISCOVERY: optBool('Forces the metadata-discovery bootstrap extension on or off.', ENVOY),
  ISTIO_DUAL_STACK: bool(false, 'Dual-stack bootstrap handling.', ENVOY),
  COMPLIANCE_POLICY: str('', 'fips-140-2 / fips-140-3 restrict Envoy and gRPC cipher suites.', ENVOY),
  HTTP_STRIP_FRAGMENT_FROM_PATH_UNSAFE_IF_DISABLED: bool(true, 'Runtime flag in the bootstrap.', ENVOY),
  ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL: bool(false, 'Proxy-protocol filter on the Envoy health listener.', ENVOY),
  ISTIO_AGENT_ENABLE_WASM_REMOTE_LOAD_CONVERSION: bool(true, 'Download remote Wasm modules referenced by ECDS.', ENVOY),
  WASM_INSECURE_REGISTRIES: str('', 'Registries allowed over plain HTTP or unverified TLS.', ENVOY),
  WASM_MODULE_EXPIRY: duration(24 * 3_600_000, 'Wasm cache entry expiry.', ENVOY),
  WASM_PURGE_INTERVAL: duration(3_600_000, 'Wasm cache purge interval.', ENVOY),
  WASM_HTTP_REQUEST_TIMEOUT: duration(15_000, 'Wasm module download timeout.', ENVOY),
  WASM_HTTP_REQUEST_MAX_RETRIES: int(5, 'Wasm module download retries.', ENVOY),
  PROXY_CONFIG_XDS_AGENT: bool(false, 'Subscribe to ProxyConfig over XDS (trust bundle updates).', ENVOY),

  // Status server, probes and metrics
  ISTIO_KUBE_APP_PROBERS: str('', 'JSON of rewritten application probes.', STATUS),
  ISTIO_PROMETHEUS_ANNOTATIONS: optStr("JSON scrape config; when set, the application's metrics are merged (sidecars).", STATUS),
  REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION: bool(false, 'Send app probes to localhost instead of INSTANCE_IP.', STATUS),
  ENABLE_PROBE_KEEPALIVE_CONNECTIONS: bool(false, 'Keep-alive on HTTP app-probe connections.', STATUS),
  ISTIO_ENABLE_HTTP2_PROBING: bool(true, 'HTTPS app probes negotiate h2.', STATUS),
  METRICS_LOCALHOST_ACCESS_ONLY: bool(false, 'Merged metrics only from loopback.', STATUS),
  PILOT_AGENT_MERGE_ENVOY_STATS: bool(true, 'Include Envoy stats in the merged metrics.', STATUS),

  // DNS and gRPC tuning
  DNS_PROXY_ADDR: optStr('DNS proxy address (effective default `localhost:15053`); also copied into node metadata when set.', NET),
  DNS_FORWARD_PARALLEL: bool(false, 'Query all upstream resolvers in parallel.', NET),
  DNS_FORWARD_TIMEOUT: duration(5_000, 'Upstream DNS timeout.', NET),
  GRPC_KEEPALIVE_INTERVAL: duration(30_000, 'XDS gRPC keepalive interval.', NET),
  GRPC_KEEPALIVE_TIMEOUT: duration(10_000, 'XDS gRPC keepalive timeout.', NET),
  ISTIO_GPRC_MAXSTREAMS: int(100000, 'Max concurrent streams of the downstream XDS server (sic).', NET),
  ISTIO_GPRC_MAXRECVMSGSIZE: int(4194304, 'Max receive message size of the downstream XDS server (sic).', NET),

  // This implementation only
  ISTIO_AGENT_LOCAL_CA_DIR: str('./var/lib/istio/local-ca', 'Where the embedded local CA (`CA_PROVIDER=local`) keeps its root key and certificate.', LOCAL),
} as const;

export type AgentEnvDefs = typeof agentEnv;
