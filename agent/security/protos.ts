// Protobuf definitions the security subsystem speaks: Envoy's SDS (from the protos shipped in
// @grpc/grpc-js-xds's deps/) and Istio's CA service (protos/ in this repo), loaded with the
// agent's shared loader (agent/protos.ts). Everything here is imported lazily, when the SDS
// subsystem starts.
import type { ServiceDefinition } from '@grpc/grpc-js';
import type { Root, Type } from 'protobufjs';
import { decodeMessage, encodeMessage, envoyProtoDirs, loadProtoRoot, PROJECT_PROTOS_DIR, serviceDefinition } from '../protos.js';

export { decodeMessage, encodeMessage, serviceDefinition };

export const SECRET_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
export const SDS_SERVICE = 'envoy.service.secret.v3.SecretDiscoveryService';
export const CA_SERVICE = 'istio.v1.auth.IstioCertificateService';

export interface SdsProtos {
  root: Root;
  service: ServiceDefinition;
  secret: Type;
}

let sds: Promise<SdsProtos> | undefined;

/** SecretDiscoveryService + the Secret message (memoised; first call parses Envoy's protos). */
export function loadSdsProtos(): Promise<SdsProtos> {
  sds ??= (async () => {
    const root = await loadProtoRoot(['envoy/service/secret/v3/sds.proto', 'envoy/extensions/transport_sockets/tls/v3/secret.proto'], envoyProtoDirs());
    return { root, service: serviceDefinition(root, SDS_SERVICE), secret: root.lookupType('envoy.extensions.transport_sockets.tls.v3.Secret') };
  })();
  return sds;
}

export interface CaProtos {
  root: Root;
  service: ServiceDefinition;
}

let ca: Promise<CaProtos> | undefined;

/** IstioCertificateService (protos/istio/v1/auth/ca.proto; memoised). */
export function loadCaProtos(): Promise<CaProtos> {
  ca ??= (async () => {
    const root = await loadProtoRoot(['istio/v1/auth/ca.proto'], [PROJECT_PROTOS_DIR]);
    return { root, service: serviceDefinition(root, CA_SERVICE) };
  })();
  return ca;
}

// Shapes of the messages as this code reads and writes them (keepCase field names).

export interface DiscoveryRequest {
  version_info?: string;
  node?: { id?: string; cluster?: string; metadata?: unknown; user_agent_name?: string };
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string };
}

export interface DiscoveryResponse {
  version_info: string;
  resources: { type_url: string; value: Uint8Array }[];
  type_url: string;
  nonce: string;
}

/** google.protobuf.* types come from protobufjs's bundled copies, whose field names are camelCase. */
export interface IstioCertificateRequest {
  csr: string;
  validity_duration: string | number;
  metadata?: { fields?: Record<string, { stringValue?: string }> };
}

export interface IstioCertificateResponse {
  cert_chain?: string[];
}
