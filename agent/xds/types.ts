// The xDS type URLs the proxy looks at, and which responses may reach Envoy (Istio's
// pkg/istio-agent/xds_proxy.go, handleUpstreamResponse).
const PREFIX = 'type.googleapis.com/';

export const LISTENER_TYPE = `${PREFIX}envoy.config.listener.v3.Listener`;
export const CLUSTER_TYPE = `${PREFIX}envoy.config.cluster.v3.Cluster`;
export const ROUTE_TYPE = `${PREFIX}envoy.config.route.v3.RouteConfiguration`;
export const ENDPOINT_TYPE = `${PREFIX}envoy.config.endpoint.v3.ClusterLoadAssignment`;
/** ECDS: Istio's Wasm conversion watches these; this agent forwards them as they are. */
export const EXTENSION_CONFIG_TYPE = `${PREFIX}envoy.config.core.v3.TypedExtensionConfig`;
/** NDS: the DNS name table, consumed by the agent. */
export const NAME_TABLE_TYPE = `${PREFIX}istio.networking.nds.v1.NameTable`;
/** PCDS: ProxyConfig pushed by istiod (trust anchors), consumed by the agent. */
export const PROXY_CONFIG_TYPE = `${PREFIX}istio.mesh.v1alpha1.ProxyConfig`;
/** Health of the workload, sent by the agent to istiod for WorkloadEntry auto-registration. */
export const HEALTH_INFO_TYPE = `${PREFIX}istio.v1.HealthInformation`;
/** Ambient workloads: not an Envoy type, but Envoy-based proxies consume it. */
export const WORKLOAD_TYPE = `${PREFIX}istio.workload.Workload`;

/** Istio's IsEnvoyType: any type in Envoy's API packages. */
export function isEnvoyType(typeUrl: string): boolean {
  return typeUrl.startsWith(`${PREFIX}envoy.`);
}

/** Whether a response of this type is forwarded to Envoy (anything else is dropped and logged). */
export function forwardedToEnvoy(typeUrl: string): boolean {
  return isEnvoyType(typeUrl) || typeUrl === WORKLOAD_TYPE;
}

/** Istio's GetShortType: the message name after the last `/` and `.` (for logs). */
export function shortType(typeUrl: string): string {
  const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
  return name.slice(name.lastIndexOf('.') + 1);
}
