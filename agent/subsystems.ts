// Which subsystems the agent runs, in start order (spec §5): DNS proxy, SDS, XDS proxy, gRPC
// bootstrap, then Envoy. Each later issue adds its subsystem here.
import type { Subsystem } from './agent.js';
import type { AgentConfig } from './config/index.js';

export async function buildSubsystems(_config: AgentConfig, _shutdown: AbortController): Promise<Subsystem[]> {
  return [];
}
