// `pilot-agent proxy [type]`: log flags and version, resolve the configuration, run the agent
// until SIGTERM/SIGINT (or a subsystem such as Envoy ends), then exit 0 as Istio does.
import { scope } from '../../lib/log.js';
import { Agent, ShutdownController } from '../agent.js';
import type { ProxyInvocation } from './invocation.js';
import { loadAgentConfig, proxyConfigToJson } from '../../config/index.js';
import { buildSubsystems } from '../subsystems.js';
import { longForm } from '../../config/version.js';

const log = scope('default');

export async function runProxy(input: ProxyInvocation): Promise<number> {
  // The handler is installed from the first moment (a pod deleted during start-up still shuts
  // down cleanly) and stays for the whole run: a second SIGTERM during the drain must not kill the
  // agent (Node's default) and orphan Envoy; Istio ignores it too.
  const shutdown = new ShutdownController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (shutdown.signal.aborted) log.info(`received signal: ${sig}; already shutting down`);
    else shutdown.shutdown(`received signal: ${sig}`);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    return await runAgent(input, shutdown);
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

async function runAgent(input: ProxyInvocation, shutdown: ShutdownController): Promise<number> {
  for (const line of input.flagLines) log.info(line);
  log.info(`Version ${longForm()}`);

  const { config, warnings, infos } = await loadAgentConfig({
    proxyTypeArg: input.typeArg,
    flags: input.flags,
    log: input.logOptions,
    env: process.env,
  });
  for (const w of warnings) log.warn(w);
  for (const i of infos) log.info(i);
  const id = config.identity;
  log.info('Proxy role', { ips: `[${id.ipAddresses.join(' ')}]`, type: id.type, id: id.id, domain: id.dnsDomain });
  // Istio logs this as YAML; JSON keeps the YAML parser off the start path and reads the same.
  log.info(`Effective config: ${JSON.stringify(proxyConfigToJson(config.proxyConfig), null, 2)}`);

  const agent = new Agent(config, await buildSubsystems(config, shutdown));
  await agent.run(shutdown.signal);
  return 0;
}
