// Public surface of envoy/: Envoy's command line, the child process and its supervision, the
// admin API client, and the drain that ends it.
export { allIpv6, envoyArgs, splitComponentLog, type ComponentLogSplit, type EnvoyArgsOptions } from './args.js';
export { BootstrapOverrideError, bootstrapOverrideToJson, readBootstrapOverride, substituteHostIp, type YamlToData } from './override.js';
export { countActiveConnections, knownIstioListeners, type ActiveConnections, type KnownListenerPorts } from './connections.js';
export {
  activeProxyConnections,
  adminGet,
  adminRequest,
  drainListeners,
  EnvoyAdminError,
  getServerInfo,
  getStats,
  isReady,
  quitQuitQuit,
  type AdminAddress,
  type AdminRequest,
  type AdminResponse,
} from './admin.js';
export { checkEnvoyBinary, describeExit, EnvoyProcess, EnvoyStartError, type EnvoyExit, type EnvoySpawnOptions } from './process.js';
export { EnvoySupervisor, type DrainOptions, type SupervisorOptions } from './supervisor.js';
export { envoyLaunchPlan, FIPS_GRPC_SSL_CIPHER_SUITES, PROXY_UID, type EnvoyLaunchPlan, type LaunchInputs } from './plan.js';
