// Istio's standard metric labels. Their order matters: a metric carries a prefix of this list
// (requests: all 25; gRPC message counts: the 20 peer labels; TCP: 23), as in istio/proxy
// extensions/stats/plugin.h STD_ISTIO_DIMENSIONS.
import { NodeInfo, clusterIdOf, namespaceOf, workloadNameOf } from '../common/flatnode';
import { CanonicalServiceLabelName, CanonicalServiceRevisionLabelName, Protocol, RequestInfo, authPolicyString, protocolString } from './request-info';

export const StandardLabels: string[] = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_cluster',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
  'response_code',
  'grpc_response_status',
];

export const reporter = 0;
export const source_workload = 1;
export const source_workload_namespace = 2;
export const source_principal = 3;
export const source_app = 4;
export const source_version = 5;
export const source_canonical_service = 6;
export const source_canonical_revision = 7;
export const source_cluster = 8;
export const destination_workload = 9;
export const destination_workload_namespace = 10;
export const destination_principal = 11;
export const destination_app = 12;
export const destination_version = 13;
export const destination_service = 14;
export const destination_service_name = 15;
export const destination_service_namespace = 16;
export const destination_canonical_service = 17;
export const destination_canonical_revision = 18;
export const destination_cluster = 19;
export const request_protocol = 20;
export const response_flags = 21;
export const connection_security_policy = 22;
export const response_code = 23;
export const grpc_response_status = 24;

export const countStandardLabels = 25;
/** Labels about the two peers: up to destination_cluster. */
export const countPeerLabels = destination_cluster + 1;
/** Labels of TCP metrics: up to connection_security_policy. */
export const countTcpLabels = connection_security_policy + 1;

const Latest = 'latest';
const Unknown = 'unknown';

/** Fills the source_* or destination_* labels from a node (absent fields become "", then "unknown" later). */
export function mapNode(instance: string[], isSource: bool, node: NodeInfo): void {
  const workload = isSource ? source_workload : destination_workload;
  const ns = isSource ? source_workload_namespace : destination_workload_namespace;
  const cluster = isSource ? source_cluster : destination_cluster;
  const app = isSource ? source_app : destination_app;
  const version = isSource ? source_version : destination_version;
  const canonicalService = isSource ? source_canonical_service : destination_canonical_service;
  const canonicalRevision = isSource ? source_canonical_revision : destination_canonical_revision;
  instance[workload] = workloadNameOf(node);
  instance[ns] = namespaceOf(node);
  instance[cluster] = clusterIdOf(node);
  if (node.labels !== null) {
    const a = node.label('app');
    instance[app] = a === null ? '' : a;
    const v = node.label('version');
    instance[version] = v === null ? '' : v;
    const name = node.label(CanonicalServiceLabelName);
    instance[canonicalService] = name === null ? workloadNameOf(node) : name;
    const rev = node.label(CanonicalServiceRevisionLabelName);
    instance[canonicalRevision] = rev === null ? Latest : rev;
  } else {
    instance[app] = '';
    instance[version] = '';
    instance[canonicalService] = '';
    instance[canonicalRevision] = Latest;
  }
  // The destination service's namespace label is the destination workload's namespace.
  if (!isSource) instance[destination_service_namespace] = namespaceOf(node);
}

function mapRequest(instance: string[], request: RequestInfo): void {
  instance[source_principal] = request.sourcePrincipal;
  instance[destination_principal] = request.destinationPrincipal;
  instance[destination_service] = request.destinationServiceHost;
  instance[destination_service_name] = request.destinationServiceName;
  instance[request_protocol] = protocolString(request.requestProtocol);
  instance[response_code] = request.responseCode.toString();
  instance[response_flags] = request.responseFlag;
  instance[connection_security_policy] = authPolicyString(request.serviceAuthPolicy);
}

/** Peer and request labels; local labels were filled at configuration. */
export function mapDimensions(instance: string[], outbound: bool, peer: NodeInfo, request: RequestInfo): void {
  mapNode(instance, !outbound, peer);
  mapRequest(instance, request);
  for (let i = 0; i < countStandardLabels; i++) if (instance[i].length == 0) instance[i] = Unknown;
  // Set after the "unknown" pass: HTTP requests report an empty grpc_response_status.
  instance[grpc_response_status] = request.requestProtocol == Protocol.GRPC ? request.grpcStatus.toString() : '';
}

/** A map key for a whole label vector: length-prefixed, so distinct vectors never collide. */
export function dimensionsKey(instance: string[]): string {
  let key = '';
  for (let i = 0; i < instance.length; i++) key += instance[i].length.toString() + ':' + instance[i] + '|';
  return key;
}
