// Which subsystems the agent runs, in start order (spec §5): DNS proxy, SDS, XDS proxy, gRPC
// bootstrap, then Envoy. Each later issue adds its subsystem here.
import type { Subsystem } from './agent.js';
import type { AgentConfig } from './config/index.js';

export async function buildSubsystems(config: AgentConfig, _shutdown: AbortController): Promise<Subsystem[]> {
  const subsystems: Subsystem[] = [];
  // 7b/7c: SDS socket decision, secret manager + CA client, SDS server (or the proxyless fetch
  // loop). Constructing it validates the security options (step 3), so bad ones fail start-up.
  const { SdsSubsystem } = await import('./security/subsystem.js');
  subsystems.push(new SdsSubsystem(config));
  return subsystems;
}
