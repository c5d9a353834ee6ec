// From the agent's configuration to what the Envoy process needs: binary, argv, environment,
// user, and the drain settings. Pure (the bootstrap path, the converted override and whether the
// agent is root are inputs).
import type { AgentConfig } from '../config/index.js';
import { envoyArgs } from './args.js';
import { knownIstioListeners } from './connections.js';
import type { SupervisorOptions } from './supervisor.js';

/** Ciphers Istio limits Envoy's google_grpc TLS 1.2 client to under a FIPS compliance policy. */
export const FIPS_GRPC_SSL_CIPHER_SUITES = 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384';

/** The uid/gid Envoy runs as when the agent is root and the DNS proxy takes port 53. */
export const PROXY_UID = 1337;

export interface LaunchInputs {
  /** the bootstrap Envoy reads (`-c`) */
  bootstrapPath: string;
  /** ISTIO_BOOTSTRAP_OVERRIDE converted to JSON, when it could be read */
  configYaml?: string | undefined;
  /** whether the agent runs as uid 0 */
  agentIsRoot: boolean;
}

export type EnvoyLaunchPlan = Omit<SupervisorOptions, 'cleanup'>;

export function envoyLaunchPlan(cfg: AgentConfig, i: LaunchInputs): EnvoyLaunchPlan {
  const pc = cfg.proxyConfig;
  const env = cfg.env;
  const args = envoyArgs({
    configPath: i.bootstrapPath,
    drainDurationMs: pc.drainDuration ?? 45_000,
    nodeIps: cfg.identity.ipAddresses,
    fileFlushIntervalMs: pc.fileFlushInterval,
    fileFlushMinSizeKb: pc.fileFlushMinSizeKb,
    logLevel: cfg.flags.proxyLogLevel,
    componentLogLevel: cfg.flags.proxyComponentLogLevel,
    skipDeprecatedLogs: env.ENVOY_SKIP_DEPRECATED_LOGS,
    enableCoreDump: env.ISTIO_ENVOY_ENABLE_CORE_DUMP,
    configYaml: i.configYaml,
    concurrency: pc.concurrency,
  });
  const childEnv: Record<string, string> = { ...cfg.environ };
  const policy = env.COMPLIANCE_POLICY;
  if (policy === 'fips-140-2' || policy === 'fips-140-3') childEnv.GRPC_SSL_CIPHER_SUITES = FIPS_GRPC_SSL_CIPHER_SUITES;
  // Envoy keeps port 53 for the agent's DNS proxy only when it does not run as root itself.
  const asProxyUser = i.agentIsRoot && (env.DNS_PROXY_ADDR ?? '').endsWith(':53');
  return {
    binaryPath: pc.binaryPath,
    args,
    env: childEnv,
    ...(asProxyUser ? { uid: PROXY_UID, gid: PROXY_UID } : {}),
    adminPort: pc.proxyAdminPort,
    localhost: cfg.identity.localhost,
    inboundOnly: cfg.identity.type === 'sidecar',
    terminationDrainDurationMs: pc.terminationDrainDuration ?? 5_000,
    minDrainDurationMs: env.MINIMUM_DRAIN_DURATION,
    exitOnZeroActiveConnections: env.EXIT_ON_ZERO_ACTIVE_CONNECTIONS,
    knownListeners: knownIstioListeners({
      statusPort: env.ENVOY_STATUS_PORT,
      prometheusPort: env.ENVOY_PROMETHEUS_PORT,
      secureMetricsPorts: [env.ENVOY_SECURE_METRICS_PORT, env.ENVOY_SECURE_MERGED_METRICS_PORT],
    }),
  };
}
