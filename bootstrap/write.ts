// The I/O shell: which bootstrap Envoy gets (Istio's Agent.initializeEnvoyAgent in
// pkg/istio-agent/agent.go, GetEffectiveTemplatePath in pkg/bootstrap/instance.go), and writing
// the generated one atomically to `<configPath>/envoy-rev.json`.
//
// Selection, in Istio's order:
// 1. ProxyConfig customConfigFile non-empty → Envoy is handed that file; nothing is generated.
// 2. A custom *template* (ISTIO_BOOTSTRAP, or --templateFile / ProxyConfig
//    proxyBootstrapTemplatePath) → BootstrapError. Those are Go text/templates rendered with
//    Istio's internal parameter map; we build the bootstrap as objects and do not run Go
//    templates. Pointing either setting at the stock template path is accepted (it is what we
//    render anyway).
// 3. Otherwise render and write.
import { mkdir, unlink } from 'node:fs/promises';
import { posix } from 'node:path';
import type { AgentConfig } from '../config/index.js';
import { splitHostPort } from '../lib/hostport.js';
import { buildInfo } from '../config/version.js';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { scope } from '../lib/log.js';
import type { Bootstrap } from './envoy-api.js';
import { BootstrapError } from './errors.js';
import { platformFromEnv, type Platform } from './platform.js';
import { lightstepTokenPath, renderBootstrap, type BootstrapInput } from './render.js';

export const BOOTSTRAP_FILE = 'envoy-rev.json';
/** Where Istio's image and packages install the stock template (which is what we render). */
export const STOCK_TEMPLATE_PATH = '/var/lib/istio/envoy/envoy_bootstrap_tmpl.json';

const log = scope('bootstrap');

/** Run-time facts the bootstrap needs that AgentConfig does not carry. */
export interface BootstrapRuntime {
  /**
   * The platform (metadata, locality fallback, instance labels). Undefined means "from the
   * environment" (platformFromEnv: GCP_METADATA, or Istio's Unknown platform); pass one to use
   * another source, e.g. a metadata-server probe.
   */
  platform?: Platform | undefined;
  /** A live external SDS socket at ./var/run/secrets/credential-uds/socket (metadata `credential`). */
  credentialSocketExists?: boolean | undefined;
  /** An external SDS server owns the workload socket; the agent serves files on files-socket. */
  customCredentialsFileExists?: boolean | undefined;
  /** Root for XDS TLS; defaults to XDS_ROOT_CA. Carried for custom use, not printed. */
  xdsRootCert?: string | undefined;
  /** Replaces the PILOT_SAN Istio derives from the discovery address. */
  pilotSubjectAltName?: readonly string[] | undefined;
  /** ISTIO_VERSION to report; defaults to buildInfo().Version. */
  istioVersion?: string | undefined;
  /** Where warnings go; defaults to the `bootstrap` log scope. */
  warn?: ((message: string) => void) | undefined;
}

/**
 * Istio's PILOT_SAN: the discovery host when the control plane is reached over mTLS, with
 * `localhost` (local debugging) mapped to the name istiod's certificate carries.
 */
export function pilotSubjectAltName(cfg: AgentConfig): string[] {
  const pc = cfg.proxyConfig;
  if (pc.controlPlaneAuthPolicy !== 'MUTUAL_TLS') return [];
  // Istio takes the text before the first ':', which mangles a bracketed IPv6 address; the
  // proper host split gives the same answer for every other address.
  let host = splitHostPort(pc.discoveryAddress)?.host ?? pc.discoveryAddress.split(':')[0] ?? '';
  if (host === 'localhost') host = 'istiod.istio-system.svc';
  return host ? [host] : [];
}

/** Everything renderBootstrap needs, from the agent's configuration and the run-time facts. */
export function bootstrapInputFrom(cfg: AgentConfig, runtime: BootstrapRuntime = {}): BootstrapInput {
  const env = cfg.env;
  const warn = runtime.warn ?? ((m: string) => log.warn(m));
  return {
    nodeId: cfg.identity.serviceNode,
    proxyConfig: cfg.proxyConfig,
    envs: Object.entries(cfg.environ),
    instanceIps: cfg.identity.ipAddresses,
    // AgentConfig keeps an empty map for an absent file; an empty file behaves the same except
    // for a corner of Istio's LABELS/STATIC_LABELS aliasing that no user relies on.
    podLabels: cfg.podLabels.size ? cfg.podLabels : undefined,
    podAnnotations: cfg.podAnnotations.size ? cfg.podAnnotations : undefined,
    platform: runtime.platform ?? platformFromEnv(env, warn),
    pilotSubjectAltName: runtime.pilotSubjectAltName ?? pilotSubjectAltName(cfg),
    outlierLogPath: cfg.flags.outlierLogPath,
    stsPort: cfg.flags.stsPort,
    credentialSocketExists: runtime.credentialSocketExists ?? false,
    customCredentialsFileExists: runtime.customCredentialsFileExists ?? false,
    xdsRootCert: runtime.xdsRootCert ?? env.XDS_ROOT_CA,
    envoyStatusPort: env.ENVOY_STATUS_PORT,
    envoyPrometheusPort: env.ENVOY_PROMETHEUS_PORT,
    envoySecureMetricsPort: env.ENVOY_SECURE_METRICS_PORT,
    envoySecureMergedMetricsPort: env.ENVOY_SECURE_MERGED_METRICS_PORT,
    exitOnZeroActiveConnections: env.EXIT_ON_ZERO_ACTIVE_CONNECTIONS,
    metadataDiscovery: env.PEER_METADATA_DISCOVERY,
    envoySkipDeprecatedLogs: env.ENVOY_SKIP_DEPRECATED_LOGS,
    workloadIdentitySocketFile: env.WORKLOAD_IDENTITY_SOCKET_FILE,
    compliancePolicy: env.COMPLIANCE_POLICY,
    logAsJson: cfg.log.asJson,
    istioVersion: runtime.istioVersion ?? buildInfo().Version,
    dnsProxyAddr: env.DNS_PROXY_ADDR,
    process: {
      deltaXds: env.ISTIO_DELTA_XDS,
      dualStack: env.ISTIO_DUAL_STACK,
      statusPortProxyProtocol: env.ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL,
      stripFragmentFromPath: env.HTTP_STRIP_FRAGMENT_FROM_PATH_UNSAFE_IF_DISABLED,
      hostIp: env.HOST_IP,
    },
    warn,
  };
}

function isStockTemplate(p: string): boolean {
  return posix.resolve('/', p) === STOCK_TEMPLATE_PATH;
}

/** The custom template setting that is in force, if any (ISTIO_BOOTSTRAP wins, as in Istio). */
export function customTemplate(cfg: AgentConfig): { setting: string; path: string } | undefined {
  const env = cfg.env.ISTIO_BOOTSTRAP;
  if (env !== '') return isStockTemplate(env) ? undefined : { setting: 'ISTIO_BOOTSTRAP', path: env };
  const tpl = cfg.proxyConfig.proxyBootstrapTemplatePath ?? '';
  if (tpl !== '' && !isStockTemplate(tpl)) {
    const setting = cfg.flags.templateFile !== '' ? '--templateFile' : 'ProxyConfig proxyBootstrapTemplatePath';
    return { setting, path: tpl };
  }
  return undefined;
}

/** The bootstrap as written to disk: indented JSON, so operators can read it. */
export function serializeBootstrap(b: Bootstrap): string {
  return `${JSON.stringify(b, null, 2)}\n`;
}

/**
 * Decides which bootstrap Envoy gets and, unless it is a custom config file, renders and writes
 * it. Returns the path exactly as Envoy's `-c` gets it (Istio's cleaned relative path, e.g.
 * `etc/istio/proxy/envoy-rev.json`).
 */
export async function writeBootstrap(cfg: AgentConfig, runtime: BootstrapRuntime): Promise<{ path: string; generated: boolean }> {
  if (cfg.proxyConfig.customConfigFile) return { path: cfg.proxyConfig.customConfigFile, generated: false };
  const tpl = customTemplate(cfg);
  if (tpl) {
    throw new BootstrapError(
      `${tpl.setting}=${tpl.path} selects a custom bootstrap template (a Go text/template), which this agent does not render. ` +
        `Render it yourself and set ProxyConfig customConfigFile to the resulting file, or keep the generated bootstrap and put your changes in a file named by ISTIO_BOOTSTRAP_OVERRIDE, which Envoy merges over it.`,
    );
  }

  return { path: await writeGeneratedBootstrap(bootstrapInputFrom(cfg, runtime)), generated: true };
}

/**
 * Renders the bootstrap for `input` and writes it to `<configPath>/envoy-rev.json` (directory
 * created 0700), plus the Lightstep token file when that tracer is configured. Nothing is
 * written when rendering fails. Returns the cleaned path of the bootstrap file.
 */
export async function writeGeneratedBootstrap(input: BootstrapInput): Promise<string> {
  const pc = input.proxyConfig;
  // Render first: a bad input fails here, before anything touches the disk.
  const text = serializeBootstrap(renderBootstrap(input));
  const path = posix.join(pc.configPath, BOOTSTRAP_FILE);
  try {
    await mkdir(pc.configPath, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new BootstrapError(`failed to create bootstrap directory ${pc.configPath}`, { cause: err });
  }
  const lightstep = pc.tracing?.lightstep;
  const tokenPath = lightstep ? lightstepTokenPath(pc.configPath) : undefined;
  try {
    // Istio writes the token with mode 0666 (before umask); Envoy may run as another user.
    if (tokenPath) await writeFileAtomic(tokenPath, lightstep?.accessToken ?? '', 0o666);
    await writeFileAtomic(path, text, 0o666);
  } catch (err) {
    if (tokenPath) await unlink(tokenPath).catch(() => {});
    throw new BootstrapError(`failed to write Envoy bootstrap ${path}`, { cause: err });
  }
  return path;
}
