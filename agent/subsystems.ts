// Which subsystems the agent runs, in start order (spec §5): the status server, DNS proxy, SDS,
// XDS proxy, gRPC bootstrap, the VM health checker, then Envoy. Each later issue adds its
// subsystem here.
import { existsSync } from 'node:fs';
import { scope } from '../lib/log.js';
import type { BootstrapRuntime } from '../bootstrap/index.js';
import { checkEnvoyBinary } from '../envoy/index.js';
import type { ShutdownController, Subsystem } from './agent.js';
import type { AgentConfig } from './config/index.js';
import { envoySubsystem, type PrepareBootstrap } from './envoy.js';
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

/**
 * The bootstrap step Envoy starts with: bootstrap/ `writeBootstrap` picks the file (ProxyConfig
 * customConfigFile as written, generated: false; otherwise `<configPath>/envoy-rev.json`, generated:
 * true, deleted when Envoy exits; a custom template is one clear error). Imported when Envoy
 * starts, so `DISABLE_ENVOY` runs never load it. The runtime facts come from the subsystems that
 * started before Envoy (the SDS socket decision).
 */
function bootstrapStep(config: AgentConfig, sds: SdsSubsystem | undefined): PrepareBootstrap {
  return async () => {
    // The two security modules directly, not security/index: that one also loads the SDS server,
    // CA client and proto modules, which are not needed before Envoy runs.
    const [{ writeBootstrap }, { socketHealthy }, { CREDENTIAL_SOCKET_PATH }] = await Promise.all([import('../bootstrap/index.js'), import('./security/subsystem.js'), import('./security/options.js')]);
    const runtime: BootstrapRuntime = {
      customCredentialsFileExists: sds?.serveOnlyFiles ?? false,
      credentialSocketExists: existsSync(CREDENTIAL_SOCKET_PATH) && (await socketHealthy(CREDENTIAL_SOCKET_PATH)),
    };
    return writeBootstrap(config, runtime);
  };
}

export async function buildSubsystems(config: AgentConfig, shutdown: ShutdownController, deps: SubsystemDeps = {}): Promise<Subsystem[]> {
  const subsystems: Subsystem[] = [];
  // Step 5: the status server, first (before Envoy exists). Its options are parsed here, so a bad
  // ISTIO_KUBE_APP_PROBERS or ISTIO_PROMETHEUS_ANNOTATIONS is one start-up error.
  let status: StatusServer | undefined;
  if (config.proxyConfig.statusPort > 0) {
    status = new StatusServer(statusServerOptions(config), shutdown);
    subsystems.push(status);
  }
  // A bad binaryPath fails start-up before any subsystem creates a socket or a file.
  if (!config.env.DISABLE_ENVOY) await checkEnvoyBinary(config.proxyConfig.binaryPath, config.environ.PATH);
  // 7b/7c: SDS socket decision, secret manager + CA client, SDS server (or the proxyless fetch
  // loop). Constructing it validates the security options (step 3), so bad ones fail start-up.
  let sds: SdsSubsystem | undefined;
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
  // 7d–7f: XDS proxy (root CA checked, socket bound; gRPC loads once Envoy runs) and the gRPC
  // bootstrap file. PCDS trust anchors, when enabled, go to the SDS secret manager.
  if (deps.xds !== false) {
    const { XdsSubsystem } = await import('./xds/index.js');
    const trustBundle = sds ? { trustBundle: async (pems: string[]) => sds.secretManager?.updateConfigTrustBundle(pems) } : {};
    const xds = new XdsSubsystem(config, trustBundle);
    subsystems.push(xds);
    status?.addMetricsSource(xds);
    health?.onHealthEvent((e) => xds.sendHealth(e));
  }
  if (config.env.DISABLE_ENVOY) {
    log.info('DISABLE_ENVOY is set: the agent runs without Envoy');
  } else {
    subsystems.push(envoySubsystem(config, shutdown, { prepareBootstrap: deps.prepareBootstrap ?? bootstrapStep(config, sds) }));
  }
  return subsystems;
}
