// What the stats filter learns about one HTTP stream or TCP connection, and where it reads it:
// istio/proxy extensions/common/context.{h,cc} (RequestInfo, populateRequestInfo,
// populateHTTPRequestInfo, populateTCPRequestInfo, populateGRPCInfo, PeerNodeInfo).
import { MapType } from '../sdk/abi';
import { decodePairs } from '../sdk/pairs';
import { getHeader, getProperty, getPropertyBool, getPropertyInt64, getPropertyString } from '../sdk/host';
import { decodeFlatNodeBuffer, KeyVal, NodeInfo } from '../common/flatnode';
import { sortKeyVals } from '../common/node';
import { simpleAtoi } from '../common/json';
import { parseResponseFlag } from './response-flags';

export namespace Protocol {
  export const Unspecified: u32 = 0;
  export const TCP: u32 = 1;
  export const HTTP: u32 = 2;
  export const GRPC: u32 = 4;
}

export function protocolString(p: u32): string {
  if (p == Protocol.TCP) return 'tcp';
  if (p == Protocol.HTTP) return 'http';
  if (p == Protocol.GRPC) return 'grpc';
  return '';
}

export namespace AuthPolicy {
  export const Unspecified: i32 = 0;
  export const None: i32 = 1;
  export const MutualTLS: i32 = 2;
}

export function authPolicyString(p: i32): string {
  if (p == AuthPolicy.None) return 'none';
  if (p == AuthPolicy.MutualTLS) return 'mutual_tls';
  return '';
}

export const MetadataNotFoundValue = 'envoy.wasm.metadata_exchange.peer_unknown';
export const CanonicalServiceLabelName = 'service.istio.io/canonical-name';
export const CanonicalServiceRevisionLabelName = 'service.istio.io/canonical-revision';

const BlackHoleCluster = 'BlackHoleCluster';
const PassThroughCluster = 'PassthroughCluster';
const BlackHoleRouteName = 'block_all';
const PassThroughRouteName = 'allow_any';
const InboundPassthroughClusterIpv4 = 'InboundPassthroughClusterIpv4';
const InboundPassthroughClusterIpv6 = 'InboundPassthroughClusterIpv6';

export class RequestInfo {
  duration: i64 = 0;
  requestSize: i64 = 0;
  responseSize: i64 = 0;
  requestProtocol: u32 = Protocol.Unspecified;
  responseCode: u32 = 0;
  grpcStatus: u32 = 2;
  responseFlag: string = '';
  destinationServiceHost: string = '';
  destinationServiceName: string = '';
  serviceAuthPolicy: i32 = AuthPolicy.Unspecified;
  sourcePrincipal: string = '';
  destinationPrincipal: string = '';
  routeName: string = '';
  upstreamCluster: string = '';
  urlHost: string = '';
  tcpConnectionsOpened: u64 = 0;
  tcpConnectionsClosed: u64 = 0;
  tcpSentBytes: u64 = 0;
  tcpReceivedBytes: u64 = 0;
  isPopulated: bool = false;
  requestMessageCount: u64 = 0;
  responseMessageCount: u64 = 0;
  lastRequestMessageCount: u64 = 0;
  lastResponseMessageCount: u64 = 0;
}

/**
 * A property that Envoy serves top-level in the versions these filters shipped with and under
 * `xds.` today (cluster_name, route_name, cluster_metadata, upstream_host_metadata, ...).
 */
export function getXdsProperty(segments: string[]): ArrayBuffer | null {
  const v = getProperty(segments);
  if (v !== null) return v;
  const xds = new Array<string>(0);
  xds.push('xds');
  for (let i = 0; i < segments.length; i++) xds.push(segments[i]);
  return getProperty(xds);
}

function getXdsString(segments: string[]): string | null {
  const v = getXdsProperty(segments);
  return v === null ? null : String.UTF8.decode(v);
}

const GrpcContentTypes: string[] = ['application/grpc', 'application/grpc+proto', 'application/grpc+json'];

export function populateRequestProtocol(info: RequestInfo): void {
  const contentType = getHeader(MapType.HttpRequestHeaders, 'content-type');
  info.requestProtocol = contentType !== null && GrpcContentTypes.includes(contentType) ? Protocol.GRPC : Protocol.HTTP;
}

/** Used for destination_service on inbound without the host header: the local canonical name, else "unknown". */
function serviceNameFallback(): string {
  const labels = getProperty(['node', 'metadata', 'LABELS']);
  if (labels !== null) {
    const pairs = decodePairs(labels);
    if (pairs !== null) for (let i = 0; i < pairs.length; i++) if (pairs[i].key == CanonicalServiceLabelName) return pairs[i].value;
  }
  return 'unknown';
}

function populateDestinationService(outbound: bool, useHostHeader: bool, info: RequestInfo): void {
  if (useHostHeader) info.destinationServiceHost = info.urlHost;
  else info.destinationServiceHost = outbound ? 'unknown' : serviceNameFallback();

  if (info.routeName == BlackHoleRouteName) {
    info.destinationServiceName = BlackHoleCluster;
    return;
  }
  if (info.routeName == PassThroughRouteName) {
    info.destinationServiceName = PassThroughCluster;
    return;
  }
  const cluster = info.upstreamCluster;
  if (cluster == BlackHoleCluster || cluster == PassThroughCluster || cluster == InboundPassthroughClusterIpv4 || cluster == InboundPassthroughClusterIpv6) {
    info.destinationServiceName = cluster;
    return;
  }
  // The first service of an inbound cluster that several services share a port on is the oldest.
  const name = getXdsString(['cluster_metadata', 'filter_metadata', 'istio', 'services', '0', 'name']);
  if (name !== null) {
    info.destinationServiceName = name;
    const host = getXdsString(['cluster_metadata', 'filter_metadata', 'istio', 'services', '0', 'host']);
    if (host !== null) info.destinationServiceHost = host;
  } else {
    info.destinationServiceName = info.destinationServiceHost;
  }
}

/** The properties available at any time of a stream, read once (also from on_tick). */
export function populateRequestInfo(outbound: bool, useHostHeaderFallback: bool, info: RequestInfo): void {
  if (info.isPopulated) return;
  info.isPopulated = true;
  const cluster = getXdsString(['cluster_name']);
  if (cluster !== null) info.upstreamCluster = cluster;
  const route = getXdsString(['route_name']);
  if (route !== null) info.routeName = route;
  populateDestinationService(outbound, useHostHeaderFallback, info);
  if (outbound) {
    const peer = getPropertyString(['upstream', 'uri_san_peer_certificate']);
    if (peer !== null) info.destinationPrincipal = peer;
    const local = getPropertyString(['upstream', 'uri_san_local_certificate']);
    if (local !== null) info.sourcePrincipal = local;
  } else {
    const mtls = getPropertyBool(['connection', 'mtls']);
    if (mtls >= 0) info.serviceAuthPolicy = mtls == 1 ? AuthPolicy.MutualTLS : AuthPolicy.None;
    const local = getPropertyString(['connection', 'uri_san_local_certificate']);
    if (local !== null) info.destinationPrincipal = local;
    const peer = getPropertyString(['connection', 'uri_san_peer_certificate']);
    if (peer !== null) info.sourcePrincipal = peer;
  }
}

/** gRPC message counts from Envoy's grpc_stats filter state ("<request>,<response>"). */
export function populateGRPCInfo(info: RequestInfo): bool {
  const v = getPropertyString(['filter_state', 'envoy.filters.http.grpc_stats']);
  if (v === null) return false;
  const parts = v.split(',');
  if (parts.length != 2) return false;
  const req = simpleAtoi(parts[0]);
  if (!req.ok || req.value < 0) return false;
  info.requestMessageCount = <u64>req.value;
  const resp = simpleAtoi(parts[1]);
  if (!resp.ok || resp.value < 0) return false;
  info.responseMessageCount = <u64>resp.value;
  return true;
}

function readFlags(info: RequestInfo): void {
  const flags = getPropertyInt64(['response', 'flags']);
  if (flags.found) info.responseFlag = parseResponseFlag(<u64>flags.value);
}

/** Everything about an HTTP stream, read at its end (request headers are gone on ticks). */
export function populateHTTPRequestInfo(outbound: bool, useHostHeaderFallback: bool, info: RequestInfo): void {
  populateRequestProtocol(info);
  populateRequestInfo(outbound, useHostHeaderFallback, info);
  const code = getPropertyInt64(['response', 'code']);
  if (code.found) info.responseCode = <u32>code.value;
  readFlags(info);
  if (info.requestProtocol == Protocol.GRPC) {
    const status = getPropertyInt64(['response', 'grpc_status']);
    info.grpcStatus = status.found ? <u32>status.value : 2;
    populateGRPCInfo(info);
  }
  const duration = getPropertyInt64(['request', 'duration']);
  if (duration.found) info.duration = duration.value;
  const requestSize = getPropertyInt64(['request', 'total_size']);
  if (requestSize.found) info.requestSize = requestSize.value;
  const responseSize = getPropertyInt64(['response', 'total_size']);
  if (responseSize.found) info.responseSize = responseSize.value;
}

export function populateTCPRequestInfo(outbound: bool, info: RequestInfo): void {
  // The host header fallback is for HTTP and gRPC only.
  populateRequestInfo(outbound, false, info);
  readFlags(info);
  info.requestProtocol = Protocol.TCP;
}

/**
 * The peer as the stats filter sees it: the FlatNode that metadata exchange (HTTP, or Envoy's
 * native TCP filter) left in filter state, or a stand-in. Found only when both the peer id
 * (not the "peer unknown" sentinel) and the node are there.
 */
export class PeerNodeInfo {
  found: bool = false;
  peerId: string = '';
  node: NodeInfo = new NodeInfo();

  /** TCP metadata may still be on its way: no node yet and no "peer unknown" verdict. */
  maybeWaiting(): bool {
    return !this.found && this.peerId != MetadataNotFoundValue;
  }
}

export function lookupPeer(peerMetadataIdKey: string, peerMetadataKey: string, downstream: bool): PeerNodeInfo {
  const peer = new PeerNodeInfo();
  const id = getPropertyString([peerMetadataIdKey]);
  if (id !== null) peer.peerId = id;
  if (id !== null && id != MetadataNotFoundValue) {
    const bytes = getProperty([peerMetadataKey]);
    if (bytes !== null) {
      const node = decodeFlatNodeBuffer(bytes);
      if (node !== null) {
        peer.found = true;
        peer.node = node;
        return peer;
      }
    }
  }
  // Downstream peers are never in the endpoint metadata of the local host.
  if (downstream) return peer;
  const fallback = nodeFromUpstreamHostMetadata();
  if (fallback !== null) peer.node = fallback;
  return peer;
}

/**
 * The destination workload from the upstream endpoint's metadata
 * `filter_metadata.istio.workload` = "name;namespace;canonical service;canonical revision;cluster".
 */
function nodeFromUpstreamHostMetadata(): NodeInfo | null {
  const v = getXdsString(['upstream_host_metadata', 'filter_metadata', 'istio', 'workload']);
  if (v === null) return null;
  const parts = v.split(';');
  if (parts.length < 5) return null;
  const n = new NodeInfo();
  n.workloadName = parts[0];
  n.namespace_ = parts[1];
  const labels = new Array<KeyVal>(0);
  if (parts[2].length > 0) labels.push(new KeyVal(CanonicalServiceLabelName, parts[2]));
  if (parts[3].length > 0) labels.push(new KeyVal(CanonicalServiceRevisionLabelName, parts[3]));
  n.labels = sortKeyVals(labels);
  n.clusterId = parts[4];
  return n;
}
