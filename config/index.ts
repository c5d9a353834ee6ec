// Public surface of config/: the configuration model of pilot-agent.
export { agentEnv, type AgentEnvDefs } from './env.js';
export { parseDownwardApi, formatDownwardApi, DownwardApiError } from './downward.js';
export {
  canonicalIp,
  defaultDnsDomain,
  ipModeOf,
  parseProxyType,
  resolveIdentity,
  usableInterfaceIps,
  InvalidProxyTypeError,
  PROXY_TYPES,
  type InterfaceAddress,
  type IpMode,
  type ProxyIdentity,
  type ProxyType,
} from './identity.js';
export {
  applyOverlay,
  ConfigError,
  defaultProxyConfig,
  parseMeshConfigFile,
  parseProxyConfigOverlay,
  proxyConfigSchema,
  proxyConfigToJson,
  validateProxyAddress,
  validateProxyConfig,
  type ClientTlsSettings,
  type ProxyConfig,
  type RemoteService,
  type Tracing,
  type YamlParser,
} from './proxy-config.js';
export { formatProtoDuration, parseProtoDuration } from './proto-json.js';
export {
  ANNOTATION_DISCOVERY_ADDRESS,
  ANNOTATION_EXCLUDE_INTERFACES,
  ANNOTATION_PROXY_CONFIG,
  ANNOTATION_STATUS_PORT,
  defaultProxyFlags,
  resolveAgentConfig,
  type AgentConfig,
  type AgentEnv,
  type ProxyFlags,
  type ResolveInputs,
  type Resolution,
} from './resolve.js';
export { jsonThenYaml, listInterfaceAddresses, loadAgentConfig, POD_ANNOTATIONS_FILE, POD_LABELS_FILE, type LoadOptions } from './load.js';
