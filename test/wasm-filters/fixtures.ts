// The setup of istio/proxy's envoye2e telemetry tests (test/envoye2e/stats_plugin,
// http_metadata_exchange; testdata/*_node_metadata.json.tmpl, listener/cluster templates), as
// a client sidecar (node id `client`, outbound) and a server sidecar (node id `server`,
// inbound) in the stand-in host, and the exact label sets their expectations list.
import { Direction, type Sidecar, type ChainStream, type Sample, type SidecarOptions } from '../support/proxy-wasm-host/index.js';
import type { PropertyMap } from '../support/proxy-wasm-host/properties.js';

export const clientNodeMetadata: PropertyMap = {
  APP_CONTAINERS: 'test,bonzai',
  CONFIG_NAMESPACE: 'default',
  INCLUDE_INBOUND_PORTS: '9080',
  INSTANCE_IPS: '10.52.0.34,fe80::a075:11ff:fe5e:f1cd',
  INTERCEPTION_MODE: 'REDIRECT',
  ISTIO_PROXY_SHA: 'istio-proxy:47e4559b8e4f0d516c0d17b233d127a3deb3d7ce',
  ISTIO_VERSION: '1.5-dev',
  LABELS: {
    app: 'productpage',
    'pod-template-hash': '84975bc778',
    version: 'v1',
    'service.istio.io/canonical-name': 'productpage-v1',
    'service.istio.io/canonical-revision': 'version-1',
  },
  MESH_ID: 'mesh',
  NAME: 'productpage-v1-84975bc778-pxz2w',
  NAMESPACE: 'default',
  CLUSTER_ID: 'client-cluster',
  OWNER: 'kubernetes://apis/apps/v1/namespaces/default/deployments/productpage-v1',
  PLATFORM_METADATA: { gcp_gke_cluster_name: 'test-cluster', gcp_location: 'us-east4-b', gcp_project: 'test-project', gcp_project_number: '123' },
  POD_NAME: 'productpage-v1-84975bc778-pxz2w',
  SERVICE_ACCOUNT: 'bookinfo-productpage',
  WORKLOAD_NAME: 'productpage-v1',
  app: 'productpage',
  istio: 'sidecar',
  version: 'v1',
};

export const serverNodeMetadata: PropertyMap = {
  APP_CONTAINERS: 'server',
  CONFIG_NAMESPACE: 'default',
  INSTANCE_IPS: '10.52.0.34,fe80::a075:11ff:fe5e:f1cd',
  INTERCEPTION_MODE: 'REDIRECT',
  ISTIO_VERSION: '1.5-dev',
  LABELS: {
    app: 'ratings',
    'pod-template-hash': '84975bc778',
    version: 'v1',
    'service.istio.io/canonical-name': 'ratings',
    'service.istio.io/canonical-revision': 'version-1',
  },
  MESH_ID: 'proj-123',
  NAME: 'ratings-v1-84975bc778-pxz2w',
  NAMESPACE: 'default',
  CLUSTER_ID: 'server-cluster',
  OWNER: 'kubernetes://apis/apps/v1/namespaces/default/deployments/ratings-v1',
  PLATFORM_METADATA: { gcp_gke_cluster_name: 'test-cluster', gcp_location: 'us-east4-b', gcp_project: 'test-project' },
  POD_NAME: 'ratings-v1-84975bc778-pxz2w',
  SERVICE_ACCOUNT: 'bookinfo-ratings',
  WORKLOAD_NAME: 'ratings-v1',
};

/** testdata/filters/mx_{inbound,outbound}.yaml.tmpl */
export const mxConfig = '{ "max_peer_cache_size": 20 }';

/** `filter_metadata.istio.services` of server-outbound-cluster and server-inbound-cluster. */
export const serverClusterMetadata: PropertyMap = {
  filter_metadata: { istio: { services: [{ host: 'server.default.svc.cluster.local', name: 'server', namespace: 'default' }] } },
};

/** The address the e2e client calls (its listener): what the host header carries. */
export const clientAuthority = '127.0.0.1:21001';

export interface ExchangeOptions {
  /** Client route's cluster: `server-outbound-cluster` (with istio metadata) or e.g. `host_header` (none). */
  clientCluster?: string;
  /** Drop the istio metadata of server-inbound-cluster (ElideServerMetadata). */
  elideServerMetadata?: boolean;
  responseCode?: number;
  responseFlags?: number;
  grpc?: { status: number };
  /** Extra attributes for both sides (e.g. upstream_host_metadata). */
  clientAttributes?: PropertyMap;
  serverAttributes?: PropertyMap;
}

/** Sidecar options of the e2e client (outbound). */
export function clientOptions(overrides: Partial<SidecarOptions> = {}): SidecarOptions {
  return { nodeId: 'client', metadata: clientNodeMetadata, direction: Direction.Outbound, mxConfig, statsConfig: '{}', ...overrides };
}

export function serverOptions(overrides: Partial<SidecarOptions> = {}): SidecarOptions {
  return { nodeId: 'server', metadata: serverNodeMetadata, direction: Direction.Inbound, mxConfig, statsConfig: '{}', ...overrides };
}

export interface Exchange {
  client: ChainStream;
  server: ChainStream;
}

/**
 * One HTTP request from the client sidecar through the server sidecar to a backend answering
 * 200 "hello, world!", as in the e2e tests (no TLS): request headers leave the client as its
 * filters left them, the response comes back as the server's filters left it.
 */
export function exchange(client: Sidecar, server: Sidecar | undefined, o: ExchangeOptions = {}): Exchange {
  const code = BigInt(o.responseCode ?? 200);
  const requestHeaders: [string, string][] = [
    [':method', 'GET'],
    [':path', '/'],
    [':authority', clientAuthority],
  ];
  if (o.grpc) requestHeaders.push(['content-type', 'application/grpc']);
  const response: PropertyMap = { code, flags: BigInt(o.responseFlags ?? 0), total_size: 120n, ...(o.grpc ? { grpc_status: BigInt(o.grpc.status) } : {}) };
  const request: PropertyMap = { protocol: o.grpc ? 'HTTP/2' : 'HTTP/1.1', duration: 2_500_000n, total_size: 80n };
  const clientCluster = o.clientCluster ?? 'server-outbound-cluster';
  const c = client.stream(
    {
      route_name: 'client_route',
      cluster_name: clientCluster,
      ...(clientCluster === 'server-outbound-cluster' ? { cluster_metadata: serverClusterMetadata } : {}),
      request,
      response,
      ...o.clientAttributes,
    },
    requestHeaders,
  );
  c.requestHeaders();
  const responseHeaders: [string, string | Uint8Array][] = [
    [':status', String(code)],
    ['content-type', o.grpc ? 'application/grpc' : 'text/plain'],
  ];
  let s: ChainStream | undefined;
  if (server !== undefined) {
    s = server.stream(
      {
        route_name: 'server_route',
        cluster_name: 'server-inbound-cluster',
        ...(o.elideServerMetadata ? {} : { cluster_metadata: serverClusterMetadata }),
        connection: { mtls: false },
        request,
        response,
        ...o.serverAttributes,
      },
      c.info.requestHeaders.entries,
    );
    s.requestHeaders();
    s.responseHeaders(responseHeaders);
    c.responseHeaders(s.info.responseHeaders.entries);
    s.end();
  } else {
    c.responseHeaders(responseHeaders);
  }
  c.end();
  return { client: c, server: s! };
}

/** The e2e baseline label set of `istio_requests_total` for the client ("C") or the server ("S"). */
export function baselineLabels(side: 'client' | 'server'): Record<string, string> {
  return {
    reporter: side === 'client' ? 'source' : 'destination',
    source_workload: 'productpage-v1',
    source_canonical_service: 'productpage-v1',
    source_canonical_revision: 'version-1',
    source_workload_namespace: 'default',
    source_principal: 'unknown',
    source_app: 'productpage',
    source_version: 'v1',
    source_cluster: 'client-cluster',
    destination_workload: 'ratings-v1',
    destination_workload_namespace: 'default',
    destination_principal: 'unknown',
    destination_app: 'ratings',
    destination_version: 'v1',
    destination_service: 'server.default.svc.cluster.local',
    destination_canonical_service: 'ratings',
    destination_canonical_revision: 'version-1',
    destination_service_name: 'server',
    destination_service_namespace: 'default',
    destination_cluster: 'server-cluster',
    request_protocol: 'http',
    response_code: '200',
    grpc_response_status: '',
    response_flags: '-',
    connection_security_policy: side === 'client' ? 'unknown' : 'none',
  };
}

/** Like the e2e driver's ExactStat: the family has exactly one sample, with these labels. */
export function onlySample(samples: Sample[], name: string): Sample | undefined {
  const family = samples.filter((s) => s.name === name);
  return family.length === 1 ? family[0] : undefined;
}

export function repeat(n: number, f: () => void): void {
  for (let i = 0; i < n; i++) f();
}
