// Well-known paths and names that more than one part of the agent must agree on: the sockets the
// agent serves and the Envoy clusters the bootstrap points at them. Relative paths are resolved
// against the agent's working directory (`/` in the image and the VM unit), as Istio's are
// (pkg/security/security.go, pkg/istio-agent/xds_proxy.go, pkg/bootstrap/config.go).

/** Envoy's cluster for the agent's XDS proxy (the bootstrap's ADS cluster). */
export const XDS_CLUSTER = 'xds-grpc';
/** Envoy's cluster for the agent's SDS server. */
export const SDS_CLUSTER = 'sds-grpc';
/** Envoy's cluster for the file-certificate SDS socket. */
export const FILES_SDS_CLUSTER = 'sds-files-grpc';

/** Directory of the workload SDS socket (Istio's security.WorkloadIdentityPath). */
export const WORKLOAD_SDS_DIR = './var/run/secrets/workload-spiffe-uds';
/** Default socket file name in WORKLOAD_SDS_DIR (WORKLOAD_IDENTITY_SOCKET_FILE overrides it). */
export const DEFAULT_SDS_SOCKET_NAME = 'socket';
/** Directory of the external credential sockets (security.CredentialNameSocketPath). */
export const CREDENTIAL_UDS_DIR = './var/run/secrets/credential-uds';
/** An external credential SDS (not served by the agent; only its presence is reported). */
export const CREDENTIAL_SOCKET_PATH = './var/run/secrets/credential-uds/socket';
/** Where the agent serves file certificates when someone else owns the workload socket. */
export const FILES_SDS_SOCKET_PATH = './var/run/secrets/credential-uds/files-socket';
/** Certificates mounted for the workload identity (security.WorkloadIdentityCredentialsPath). */
export const WORKLOAD_CREDENTIALS_DIR = './var/run/secrets/workload-spiffe-credentials';

/** The XDS proxy's socket file name inside ProxyConfig configPath (filepath.Join(ConfigPath, "XDS")). */
export const XDS_SOCKET_NAME = 'XDS';

/** The XDS proxy's socket as the bootstrap names it: `<configPath>/XDS`. */
export function xdsSocketIn(configPath: string): string {
  return `${configPath}/${XDS_SOCKET_NAME}`;
}
