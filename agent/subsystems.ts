// Which subsystems the agent runs, in start order (spec §5): DNS proxy, SDS, XDS proxy, gRPC
// bootstrap, then Envoy. Each later issue adds its subsystem here.
import { scope } from '../lib/log.js';
import type { ShutdownController, Subsystem } from './agent.js';
import type { AgentConfig } from './config/index.js';
import type { BootstrapRuntime } from '../bootstrap/index.js';
import { envoySubsystem, type PrepareBootstrap } from './envoy.js';

const log = scope('default');

export interface SubsystemDeps {
  /** Overrides how the Envoy bootstrap file is produced (tests). */
  prepareBootstrap?: PrepareBootstrap;
}

/**
 * The bootstrap step Envoy starts with: bootstrap/ `writeBootstrap` picks the file (ProxyConfig
 * customConfigFile as written, generated: false; otherwise `<configPath>/envoy-rev.json`, generated:
 * true, deleted when Envoy exits; a custom template is one clear error). Imported when Envoy
 * starts, so `DISABLE_ENVOY` runs never load it.
 */
function bootstrapStep(config: AgentConfig, runtime: BootstrapRuntime = {}): PrepareBootstrap {
  return async () => {
    const { writeBootstrap } = await import('../bootstrap/index.js');
    return writeBootstrap(config, runtime);
  };
}

export async function buildSubsystems(config: AgentConfig, shutdown: ShutdownController, deps: SubsystemDeps = {}): Promise<Subsystem[]> {
  const subsystems: Subsystem[] = [];
  if (config.env.DISABLE_ENVOY) {
    log.info('DISABLE_ENVOY is set: the agent runs without Envoy');
  } else {
    subsystems.push(envoySubsystem(config, shutdown, { prepareBootstrap: deps.prepareBootstrap ?? bootstrapStep(config) }));
  }
  return subsystems;
}
