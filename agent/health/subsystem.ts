// The VM health checker as an agent subsystem: built (and its ProxyConfig `readinessProbe`
// validated) with the others, probing from afterStart (Envoy has been exec'd by then; its
// readiness is the first link of the probe chain). Its events go to whoever listens through
// onHealthEvent — the XDS proxy, which sends them to istiod as HealthInformation requests.
import type { Subsystem } from '../agent.js';
import type { AgentConfig } from '../../config/index.js';
import { ReadinessProbeConfigError, WorkloadHealthChecker, workloadProbeConfig, type HealthEvent, type ReadinessCheck } from './checker.js';

export interface HealthCheckSubsystemDeps {
  /** Envoy's readiness without the shutdown check (status/ EnvoyReadinessProbe); absent with DISABLE_ENVOY */
  envoyProbe?: ReadinessCheck;
}

export class HealthCheckSubsystem implements Subsystem {
  readonly name = 'health checker';
  readonly checker: WorkloadHealthChecker;

  /** Throws ReadinessProbeConfigError (naming the field) for a malformed readinessProbe. */
  constructor(config: AgentConfig, deps: HealthCheckSubsystemDeps = {}) {
    const raw = config.proxyConfig.readinessProbe;
    if (!raw) throw new ReadinessProbeConfigError('ProxyConfig readinessProbe is not set');
    const ipv6 = config.identity.ipMode === 'v6';
    const defaultHost = config.env.REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION ? 'localhost' : (config.identity.ipAddresses[0] ?? 'localhost');
    this.checker = new WorkloadHealthChecker(workloadProbeConfig(raw, { defaultHost }), {
      ...(deps.envoyProbe ? { envoyProbe: deps.envoyProbe } : {}),
      localAddress: ipv6 ? '::6' : '127.0.0.6',
    });
  }

  /** Adds a listener for health state changes (transitions only); returns the remover. */
  onHealthEvent(cb: (e: HealthEvent) => void): () => void {
    return this.checker.onHealthEvent(cb);
  }

  async start(): Promise<void> {}

  afterStart(): void {
    this.checker.start();
  }

  async stop(): Promise<void> {
    this.checker.stop();
  }
}
