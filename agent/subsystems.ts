// Which subsystems the agent runs, in start order (spec §5): DNS proxy, SDS, XDS proxy, gRPC
// bootstrap, then Envoy. Each later issue adds its subsystem here.
import { scope } from '../lib/log.js';
import type { ShutdownController, Subsystem } from './agent.js';
import type { AgentConfig } from './config/index.js';
import { customConfigBootstrap, envoySubsystem, type PrepareBootstrap } from './envoy.js';

const log = scope('default');

export interface SubsystemDeps {
  /** Overrides how the Envoy bootstrap file is produced (tests). */
  prepareBootstrap?: PrepareBootstrap;
}

/**
 * The bootstrap step Envoy starts with.
 *
 * PLUG POINT (issue 4, bootstrap/): replace the body with
 *   `return () => writeBootstrap(config, runtime);`
 * (`writeBootstrap` and `BootstrapRuntime` from '../bootstrap/index.js'). writeBootstrap handles
 * customConfigFile itself (that path, generated: false) and otherwise writes
 * `<configPath>/envoy-rev.json` (generated: true — deleted when Envoy exits).
 */
function bootstrapStep(config: AgentConfig): PrepareBootstrap {
  const custom = customConfigBootstrap(config);
  if (custom) return custom;
  return async () => {
    throw new Error('Envoy bootstrap generation is not available in this build: set ProxyConfig customConfigFile to a bootstrap file');
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
