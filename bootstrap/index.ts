// Public surface of bootstrap/: Istio's Envoy bootstrap, built as a typed object.
export { BootstrapError } from './errors.js';
export type { Bootstrap, Cluster, Listener, Node, Locality } from './envoy-api.js';
export { buildNodeMetadata, encodeTypedMetadata, serviceCluster, type MetadataInput, type NodeMetadata, type NodeMetadataResult } from './metadata.js';
export { platformFromEnv, UNKNOWN_PLATFORM, type Platform, type PlatformEnv, type PlatformLocality, type PlatformName } from './platform.js';
export { ipFamily, lightstepTokenPath, renderBootstrap, type BootstrapInput } from './render.js';
export {
  BOOTSTRAP_FILE,
  bootstrapInputFrom,
  customTemplate,
  pilotSubjectAltName,
  serializeBootstrap,
  STOCK_TEMPLATE_PATH,
  writeBootstrap,
  writeGeneratedBootstrap,
  type BootstrapRuntime,
} from './write.js';
