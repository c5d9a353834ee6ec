// The proxyless gRPC bootstrap (Istio's pkg/istio-agent/grpcxds/grpc_bootstrap.go): the file a
// gRPC application with xDS support reads (GRPC_XDS_BOOTSTRAP) to find its control plane — the
// agent's XDS socket — and its node identity. Written at start, after the XDS socket listens,
// to GRPC_XDS_BOOTSTRAP (default etc/istio/proxy/grpc-bootstrap.json): indented JSON, atomic,
// mode 0644, parent directory created 0700. The status server's readiness reads it back.
//
// Byte-compatible with Istio's (Go's encoding/json of its structs): key order, two-space
// indent, no trailing newline, `<`, `>`, `&` escaped as \u003c…, the node's
// `"UserAgentVersionType": null` (an artefact of Go serialising the proto struct, kept because
// it is harmless and tools diff this file), metadata keys sorted (protojson's order).
//
// One fix over Istio: the socket and certificate paths are made absolute against the agent's
// working directory. Istio writes `unix:///` + the path as configured, which is only right when
// the path is relative and the agent runs in `/` (the usual case, where the result is the
// same, `unix:///etc/istio/proxy/XDS`); an absolute configPath gave `unix:////etc/…`, and a
// relative OUTPUT_CERTS resolved against the application's directory instead of the agent's.
import { mkdir } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { writeFileAtomic } from '../../lib/atomic-file.js';
import { scope } from '../../lib/log.js';
import { buildNodeMetadata, encodeTypedMetadata, pilotSubjectAltName, type Locality } from '../../bootstrap/index.js';
import type { AgentConfig } from '../../config/index.js';
import { buildInfo } from '../../config/version.js';

const log = scope('default');

/** gRPC servers subscribe to their inbound listener under this name (`%s` = "ip:port"). */
export const SERVER_LISTENER_NAME_TEMPLATE = 'xds.istio.io/grpc/lds/inbound/%s';
/** How often gRPC re-reads the certificate files of the file_watcher provider (Istio: 15 minutes). */
const CERT_REFRESH_INTERVAL = '900s';

export interface GrpcBootstrap {
  xds_servers: { server_uri: string; channel_creds: { type: string }[]; server_features: string[] }[];
  node: { id: string; metadata: Record<string, unknown>; locality: Locality; UserAgentVersionType: null };
  certificate_providers?: Record<string, { plugin_name: string; config: { certificate_file: string; private_key_file: string; ca_certificate_file: string; refresh_interval: string } }>;
  server_listener_resource_name_template: string;
}

export interface GrpcBootstrapInput {
  /** The XDS socket the agent listens on (absolute). */
  xdsSocketPath: string;
  /** The agent's working directory (relative OUTPUT_CERTS resolves against it). */
  cwd: string;
  /** ISTIO_VERSION to report (default: the version this agent stands in for). */
  istioVersion?: string;
  warn?: (message: string) => void;
}

/** Object keys sorted at every level (protojson's order for Struct fields). */
function sortedKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortedKeys);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, sortedKeys((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/**
 * The bootstrap for this agent. Node metadata is what Istio's GetNodeMetaData gives the gRPC
 * bootstrap: the typed record only, built without the Envoy-only inputs (ports, drain, socket
 * file name, platform), plus GENERATOR "grpc". Throws BootstrapError on bad ISTIO_META_* values.
 */
export function grpcBootstrap(config: AgentConfig, input: GrpcBootstrapInput): GrpcBootstrap {
  const env = config.env;
  const { typed, locality } = buildNodeMetadata({
    proxyConfig: config.proxyConfig,
    envs: Object.entries(config.environ),
    instanceIps: config.identity.ipAddresses,
    podLabels: config.podLabels.size ? config.podLabels : undefined,
    podAnnotations: config.podAnnotations.size ? config.podAnnotations : undefined,
    pilotSubjectAltName: pilotSubjectAltName(config),
    outlierLogPath: '',
    stsPort: config.flags.stsPort,
    credentialSocketExists: false,
    customCredentialsFileExists: false,
    envoyStatusPort: 0,
    envoyPrometheusPort: 0,
    envoySecureMetricsPort: 0,
    envoySecureMergedMetricsPort: 0,
    exitOnZeroActiveConnections: false,
    metadataDiscovery: env.PEER_METADATA_DISCOVERY,
    envoySkipDeprecatedLogs: false,
    workloadIdentitySocketFile: '',
    istioVersion: input.istioVersion ?? buildInfo().Version,
    dnsProxyAddr: env.DNS_PROXY_ADDR,
    warn: input.warn ?? ((m) => log.warn(m)),
  });
  // gRPC needs istiod's "grpc" generator; set here rather than in the environment so the same
  // pod's Envoy keeps the default one.
  typed.GENERATOR = 'grpc';
  const b: GrpcBootstrap = {
    xds_servers: [{ server_uri: `unix://${input.xdsSocketPath}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: config.identity.serviceNode, metadata: sortedKeys(encodeTypedMetadata(typed)) as Record<string, unknown>, locality, UserAgentVersionType: null },
    server_listener_resource_name_template: SERVER_LISTENER_NAME_TEMPLATE,
  };
  const certDir = env.OUTPUT_CERTS;
  if (certDir !== '') {
    const dir = isAbsolute(certDir) ? certDir : resolve(input.cwd, certDir);
    const provider = {
      plugin_name: 'file_watcher',
      config: {
        certificate_file: join(dir, 'cert-chain.pem'),
        private_key_file: join(dir, 'key.pem'),
        ca_certificate_file: join(dir, 'root-cert.pem'),
        refresh_interval: CERT_REFRESH_INTERVAL,
      },
    };
    // Key order as Istio's struct: certificate_providers comes before the listener template.
    const { server_listener_resource_name_template, ...rest } = b;
    return { ...rest, certificate_providers: { default: provider }, server_listener_resource_name_template };
  }
  return b;
}

/** The file's text as Go's json.MarshalIndent writes it. */
export function serializeGrpcBootstrap(b: GrpcBootstrap): string {
  return JSON.stringify(b, null, 2).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Writes the bootstrap atomically (0644), creating the parent directory (0700). */
export async function writeGrpcBootstrap(path: string, b: GrpcBootstrap): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, serializeGrpcBootstrap(b), 0o644);
}
