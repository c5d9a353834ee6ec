// Public surface of agent/health: the probe primitives (shared by the status server's rewritten
// Kubernetes probes and the VM health checker) and the workload health checker (Istio's
// pkg/istio-agent/health).
export { ProbeError } from './probe-error.js';
export {
  execProbe,
  grpcHealthProbe,
  httpGetProbe,
  isRedirect,
  tcpProbe,
  type GrpcProbeOptions,
  type HttpGetTarget,
  type HttpProbeOptions,
  type HttpProbeResult,
  type RedirectPolicy,
  type TcpProbeOptions,
} from './probers.js';
export {
  ReadinessProbeConfigError,
  WorkloadHealthChecker,
  workloadProbeConfig,
  type HealthCheckerDeps,
  type HealthEvent,
  type ProbeTargetDefaults,
  type ReadinessCheck,
  type WorkloadProbeConfig,
} from './checker.js';
export { HealthCheckSubsystem } from './subsystem.js';
