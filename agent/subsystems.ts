// Which subsystems the agent runs, in Istio's start order (pkg/istio-agent/agent.go Run): the
// status server, SDS, the VM health checker, the XDS proxy (with the gRPC bootstrap), then Envoy.
import { scope } from '../lib/log.js';
import type { AgentConfig } from '../config/index.js';
import type { ShutdownController, Subsystem } from './agent.js';
import { createEnvoySubsystem, type PrepareBootstrap } from './envoy/subsystem.js';
import type { HealthCheckSubsystem } from './health/subsystem.js';
import type { SdsSubsystem } from './security/index.js';
import { envoyAdminHost, EnvoyReadinessProbe, StatusServer, statusServerOptions } from './status/index.js';

const log = scope('default');

export interface SubsystemDeps {
  /** Overrides how the Envoy bootstrap file is produced (tests). */
  prepareBootstrap?: PrepareBootstrap;
  /** `false` leaves the SDS subsystem out (tests of the Envoy lifecycle alone). */
  sds?: false;
  /** `false` leaves the XDS proxy out (tests of the Envoy lifecycle alone). */
  xds?: false;
}

export async function buildSubsystems(config: AgentConfig, shutdown: ShutdownController, deps: SubsystemDeps = {}): Promise<Subsystem[]> {
  const subsystems: Subsystem[] = [];
  // The status server, first (before Envoy exists). Its options are parsed here, so a bad
  // ISTIO_KUBE_APP_PROBERS or ISTIO_PROMETHEUS_ANNOTATIONS is one start-up error.
  let status: StatusServer | undefined;
  if (config.proxyConfig.statusPort > 0) {
    status = new StatusServer(statusServerOptions(config), shutdown);
    subsystems.push(status);
  }
  // Envoy's binary is checked now (inside createEnvoySubsystem): a bad binaryPath fails start-up
  // before any subsystem creates a socket or a file. Envoy itself starts last.
  let sds: SdsSubsystem | undefined;
  const envoy = config.env.DISABLE_ENVOY ? undefined : await createEnvoySubsystem(config, shutdown, { prepareBootstrap: deps.prepareBootstrap, serveOnlyFiles: () => sds?.serveOnlyFiles ?? false });
  // The SDS socket decision, secret manager + CA client, SDS server (or the proxyless fetch
  // loop). Constructing it validates the security options, so bad ones fail start-up.
  if (deps.sds !== false) {
    const { SdsSubsystem } = await import('./security/subsystem.js');
    sds = new SdsSubsystem(config);
    subsystems.push(sds);
    status?.addMetricsSource(sds);
  }
  // VMs: ProxyConfig readinessProbe (the WorkloadGroup's probe) is checked after Envoy's readiness;
  // its transitions go to istiod through the XDS proxy (`health.onHealthEvent(...)`).
  let health: HealthCheckSubsystem | undefined;
  if (config.proxyConfig.readinessProbe) {
    const { HealthCheckSubsystem } = await import('./health/subsystem.js');
    const envoyProbe = config.env.DISABLE_ENVOY ? undefined : new EnvoyReadinessProbe({ adminHost: envoyAdminHost(config), adminPort: config.proxyConfig.proxyAdminPort });
    health = new HealthCheckSubsystem(config, envoyProbe ? { envoyProbe } : {});
    subsystems.push(health);
  }
  // The XDS proxy (root CA checked, socket bound; gRPC loads once Envoy runs) and the gRPC
  // bootstrap file. PCDS trust anchors, when enabled, go to the SDS secret manager.
  if (deps.xds !== false) {
    const { XdsSubsystem } = await import('./xds/index.js');
    const trustBundle = sds ? { trustBundle: async (pems: string[]) => sds?.secretManager?.updateConfigTrustBundle(pems) } : {};
    const xds = new XdsSubsystem(config, trustBundle);
    subsystems.push(xds);
    status?.addMetricsSource(xds);
    health?.onHealthEvent((e) => xds.sendHealth(e));
  }
  if (envoy) subsystems.push(envoy);
  else log.info('DISABLE_ENVOY is set: the agent runs without Envoy');
  return subsystems;
}
