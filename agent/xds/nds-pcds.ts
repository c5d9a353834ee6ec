// The resources the agent consumes itself instead of forwarding to Envoy (Istio's
// pkg/istio-agent/xds_proxy.go, rewriteAndForward and the handlers registered in initXdsProxy):
// NDS (the DNS proxy's name table) and PCDS (ProxyConfig, whose trust anchors go to the secret
// manager). Decoded with protobufjs from the project's protos/, loaded the first time such a
// resource arrives.
import type { Type } from 'protobufjs';
import { decodeMessage, loadProtoRoot, PROJECT_PROTOS_DIR } from '../protos.js';

/** istio.networking.nds.v1.NameTable.NameInfo, as decoded (empty fields left out). */
export interface NameInfo {
  ips?: string[];
  registry?: string;
  shortname?: string;
  namespace?: string;
  alt_hosts?: string[];
}

/** istio.networking.nds.v1.NameTable: host name → resolution. */
export interface NameTable {
  table?: Record<string, NameInfo>;
  name_info?: NameInfo;
}

interface AgentProtos {
  nameTable: Type;
  proxyConfig: Type;
}

let protos: Promise<AgentProtos> | undefined;

function load(): Promise<AgentProtos> {
  protos ??= loadProtoRoot(['istio/networking/nds/v1/nds.proto', 'istio/mesh/v1alpha1/proxy.proto'], [PROJECT_PROTOS_DIR]).then((root) => ({
    nameTable: root.lookupType('istio.networking.nds.v1.NameTable'),
    proxyConfig: root.lookupType('istio.mesh.v1alpha1.ProxyConfig'),
  }));
  return protos;
}

/** Decodes an NDS resource. Throws (with protobufjs's message) on malformed bytes. */
export async function decodeNameTable(value: Uint8Array): Promise<NameTable> {
  return decodeMessage<NameTable>((await load()).nameTable, value);
}

/** The trust anchors of a PCDS resource (ProxyConfig.ca_certificates_pem), in order. */
export async function decodeTrustAnchors(value: Uint8Array): Promise<string[]> {
  return decodeMessage<{ ca_certificates_pem?: string[] }>((await load()).proxyConfig, value).ca_certificates_pem ?? [];
}
