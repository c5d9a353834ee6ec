// The Envoy subsystem (spec agent.md §5 step 7g, §6): the last to start, so the first to stop.
// Start: check the binary, get the bootstrap file (an injected step), build the command line,
// spawn. Its `done` resolves when Envoy exits by itself, which ends the agent. Stop: the drain
// sequence (or an immediate kill after /quitquitquit or /drain). A generated bootstrap is deleted
// whenever Envoy is gone; a customConfigFile is never touched.
import { rm } from 'node:fs/promises';
import { scope } from '../lib/log.js';
import { checkEnvoyBinary, envoyLaunchPlan, EnvoySupervisor, readBootstrapOverride } from '../envoy/index.js';
import type { ShutdownController, Subsystem } from './agent.js';
import type { AgentConfig } from './config/index.js';

const log = scope('default');

/** The bootstrap Envoy is started with; `generated` files are deleted when Envoy exits. */
export interface BootstrapFile {
  path: string;
  generated: boolean;
}

/** Produces the bootstrap file right before Envoy starts (bootstrap/ writeBootstrap, or a test's). */
export type PrepareBootstrap = () => Promise<BootstrapFile>;

export interface EnvoySubsystemDeps {
  prepareBootstrap: PrepareBootstrap;
}

async function deleteBootstrap(path: string): Promise<void> {
  try {
    await rm(path);
  } catch (err) {
    log.warn(`Failed to delete config file ${path}: ${(err as Error).message}`);
  }
}

async function bootstrapOverride(config: AgentConfig): Promise<string | undefined> {
  const file = config.env.ISTIO_BOOTSTRAP_OVERRIDE;
  if (file === '') return undefined;
  try {
    return await readBootstrapOverride(file, config.env.HOST_IP);
  } catch (err) {
    log.warn(`Failed to read bootstrap override: ${(err as Error).message}`);
    return undefined;
  }
}

export function envoySubsystem(config: AgentConfig, controller: ShutdownController, deps: EnvoySubsystemDeps): Subsystem {
  let supervisor: EnvoySupervisor | undefined;
  return {
    name: 'Envoy',
    async start() {
      // Before anything is written for Envoy: a bad binaryPath is one error and no leftovers.
      await checkEnvoyBinary(config.proxyConfig.binaryPath, config.environ.PATH);
      const bootstrap = await deps.prepareBootstrap();
      const cleanup = bootstrap.generated ? () => deleteBootstrap(bootstrap.path) : undefined;
      try {
        const plan = envoyLaunchPlan(config, {
          bootstrapPath: bootstrap.path,
          configYaml: await bootstrapOverride(config),
          agentIsRoot: process.getuid?.() === 0,
        });
        log.info(`Envoy command: [${plan.args.join(' ')}]`);
        supervisor = await EnvoySupervisor.start({ ...plan, ...(cleanup ? { cleanup } : {}) });
      } catch (err) {
        if (!supervisor && cleanup) await cleanup(); // EnvoySupervisor.start cleans up after itself; this covers the steps before it
        throw err;
      }
      const s = supervisor;
      controller.setDrainer(() => s.drainNow());
    },
    get done() {
      return supervisor?.exited.then(() => undefined);
    },
    async stop() {
      if (!supervisor) return;
      controller.setDrainer(undefined);
      await supervisor.terminate(controller.skipDrain);
    },
  };
}
