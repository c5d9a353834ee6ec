// Which subsystems the agent runs, in start order (spec §5): DNS proxy, SDS, XDS proxy, gRPC
// bootstrap, then Envoy. Each later issue adds its subsystem here.
import { existsSync } from 'node:fs';
import { scope } from '../lib/log.js';
import type { BootstrapRuntime } from '../bootstrap/index.js';
import { checkEnvoyBinary } from '../envoy/index.js';
import type { ShutdownController, Subsystem } from './agent.js';
import type { AgentConfig } from './config/index.js';
import { envoySubsystem, type PrepareBootstrap } from './envoy.js';
import type { SdsSubsystem } from './security/index.js';

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
    const [{ writeBootstrap }, { CREDENTIAL_SOCKET_PATH, socketHealthy }] = await Promise.all([import('../bootstrap/index.js'), import('./security/index.js')]);
    const runtime: BootstrapRuntime = {
      customCredentialsFileExists: sds?.serveOnlyFiles ?? false,
      credentialSocketExists: existsSync(CREDENTIAL_SOCKET_PATH) && (await socketHealthy(CREDENTIAL_SOCKET_PATH)),
    };
    return writeBootstrap(config, runtime);
  };
}

export async function buildSubsystems(config: AgentConfig, shutdown: ShutdownController, deps: SubsystemDeps = {}): Promise<Subsystem[]> {
  const subsystems: Subsystem[] = [];
  // A bad binaryPath fails start-up before any subsystem creates a socket or a file.
  if (!config.env.DISABLE_ENVOY) await checkEnvoyBinary(config.proxyConfig.binaryPath, config.environ.PATH);
  // 7b/7c: SDS socket decision, secret manager + CA client, SDS server (or the proxyless fetch
  // loop). Constructing it validates the security options (step 3), so bad ones fail start-up.
  let sds: SdsSubsystem | undefined;
  if (deps.sds !== false) {
    const { SdsSubsystem } = await import('./security/subsystem.js');
    sds = new SdsSubsystem(config);
    subsystems.push(sds);
  }
  // 7d–7f: XDS proxy (root CA checked, socket bound; gRPC loads once Envoy runs) and the gRPC
  // bootstrap file. PCDS trust anchors, when enabled, go to the SDS secret manager.
  if (deps.xds !== false) {
    const { XdsSubsystem } = await import('./xds/index.js');
    const trustBundle = sds ? { trustBundle: async (pems: string[]) => sds.secretManager?.updateConfigTrustBundle(pems) } : {};
    subsystems.push(new XdsSubsystem(config, trustBundle));
  }
  if (config.env.DISABLE_ENVOY) {
    log.info('DISABLE_ENVOY is set: the agent runs without Envoy');
  } else {
    subsystems.push(envoySubsystem(config, shutdown, { prepareBootstrap: deps.prepareBootstrap ?? bootstrapStep(config, sds) }));
  }
  return subsystems;
}
