// The Envoy subsystem (Istio's pkg/envoy/agent.go and proxy.go): the last to start, so the first
// to stop. Created: the binary is checked (a bad binaryPath fails start-up before any other
// subsystem creates a socket or a file). Start: write the bootstrap, build the command line,
// spawn. Its `done` resolves when Envoy exits by itself, which ends the agent. Stop: the drain
// sequence (or an immediate kill after /quitquitquit or /drain). A generated bootstrap is deleted
// whenever Envoy is gone; a customConfigFile is never touched.
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { BootstrapRuntime } from '../../bootstrap/index.js';
import { CREDENTIAL_SOCKET_PATH } from '../../config/paths.js';
import { errorMessage } from '../../lib/errors.js';
import { scope } from '../../lib/log.js';
import { checkEnvoyBinary, envoyLaunchPlan, EnvoySupervisor, readBootstrapOverride } from '../../envoy/index.js';
import type { ShutdownController, Subsystem } from '../agent.js';
import type { AgentConfig } from '../../config/index.js';

const log = scope('default');

/** The bootstrap Envoy is started with; `generated` files are deleted when Envoy exits. */
export interface BootstrapFile {
  path: string;
  generated: boolean;
}

/** Produces the bootstrap file right before Envoy starts (bootstrap/ writeBootstrap, or a test's). */
export type PrepareBootstrap = () => Promise<BootstrapFile>;

export interface EnvoySubsystemDeps {
  /** Overrides how the bootstrap file is produced (tests); default: bootstrap/ writeBootstrap. */
  prepareBootstrap?: PrepareBootstrap | undefined;
  /** Whether the agent serves only file certificates (an external SDS owns the workload socket). */
  serveOnlyFiles?: () => boolean;
}

/**
 * The bootstrap step Envoy starts with: bootstrap/ `writeBootstrap` picks the file (ProxyConfig
 * customConfigFile as written, generated: false; otherwise `<configPath>/envoy-rev.json`, generated:
 * true, deleted when Envoy exits; a custom template is one clear error). Imported when Envoy
 * starts, so `DISABLE_ENVOY` runs never load it. The runtime facts come from the subsystems that
 * started before Envoy (the SDS socket decision) and from the pod (an external credential socket).
 */
function writeBootstrapStep(config: AgentConfig, serveOnlyFiles: () => boolean): PrepareBootstrap {
  return async () => {
    const [{ writeBootstrap }, { socketHealthy }] = await Promise.all([import('../../bootstrap/index.js'), import('../uds.js')]);
    const runtime: BootstrapRuntime = {
      customCredentialsFileExists: serveOnlyFiles(),
      credentialSocketExists: existsSync(CREDENTIAL_SOCKET_PATH) && (await socketHealthy(CREDENTIAL_SOCKET_PATH)),
    };
    return writeBootstrap(config, runtime);
  };
}

async function deleteBootstrap(path: string): Promise<void> {
  try {
    await rm(path);
  } catch (err) {
    log.warn(`Failed to delete config file ${path}: ${errorMessage(err)}`);
  }
}

async function bootstrapOverride(config: AgentConfig): Promise<string | undefined> {
  const file = config.env.ISTIO_BOOTSTRAP_OVERRIDE;
  if (file === '') return undefined;
  try {
    return await readBootstrapOverride(file, config.env.HOST_IP);
  } catch (err) {
    log.warn(`Failed to read bootstrap override: ${errorMessage(err)}`);
    return undefined;
  }
}

/**
 * The Envoy subsystem, once its binary has been found: a bad binaryPath rejects here (an
 * EnvoyStartError), before the agent has started anything, so it leaves nothing behind.
 */
export async function createEnvoySubsystem(config: AgentConfig, controller: ShutdownController, deps: EnvoySubsystemDeps = {}): Promise<Subsystem> {
  await checkEnvoyBinary(config.proxyConfig.binaryPath, config.environ.PATH);
  const prepareBootstrap = deps.prepareBootstrap ?? writeBootstrapStep(config, deps.serveOnlyFiles ?? (() => false));
  let supervisor: EnvoySupervisor | undefined;
  return {
    name: 'Envoy',
    async start() {
      const bootstrap = await prepareBootstrap();
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
