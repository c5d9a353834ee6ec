// Istio's HTTP metadata exchange (istio.metadata_exchange), after istio/proxy
// extensions/metadata_exchange/plugin.cc as shipped through Istio 1.17.
//
// Each sidecar sends its own node metadata (x-envoy-peer-metadata, a base64 Struct) and node id
// (x-envoy-peer-metadata-id) to its peer: the client on the request, the server on the
// response. What the peer sent is removed from the headers and stored as filter state for the
// stats filter: `downstream_peer` / `downstream_peer_id` on requests, `upstream_peer` /
// `upstream_peer_id` on responses. Inbound listeners never forward the headers to the
// application, outbound ones never return them to it.
import { Action, MapType } from '../sdk/abi';
import { RootContext, StreamContext } from '../sdk/context';
import { callForeignFunction, getHeaderBytes, getPluginConfiguration, getPropertyInt64, getPropertyString, logDebug, logWarn, removeHeader, replaceHeaderBytes, setProperty } from '../sdk/host';
import { base64DecodeWithoutPadding, base64Encode } from '../common/base64';
import { ByteWriter, bytesKey } from '../common/bytes';
import { encodeFlatNode } from '../common/flatnode';
import { jsonInt64, parseJsonObject } from '../common/json';
import { localNodeFromProperties, nodeFromStruct, structFromNode } from '../common/node';
import { encodeStruct, parseStruct } from '../common/proto';
import { flatNodeSchema } from '../common/schema';

export const ExchangeMetadataHeader = 'x-envoy-peer-metadata';
export const ExchangeMetadataHeaderId = 'x-envoy-peer-metadata-id';
const DefaultNodeCacheMaxSize: i64 = 500;

// Filter state keys shared with the stats filter (istio/proxy extensions/common/context.h).
export const UpstreamMetadataIdKey = 'upstream_peer_id';
export const UpstreamMetadataKey = 'upstream_peer';
export const DownstreamMetadataIdKey = 'downstream_peer_id';
export const DownstreamMetadataKey = 'downstream_peer';

/** envoy.config.core.v3.TrafficDirection, from property `listener_direction`. */
export namespace TrafficDirection {
  export const Unspecified: i64 = 0;
  export const Inbound: i64 = 1;
  export const Outbound: i64 = 2;
}

/** The listener's direction; older Envoys serve it top-level, newer ones under `xds.`. */
export function trafficDirection(): i64 {
  let d = getPropertyInt64(['listener_direction']);
  if (!d.found) d = getPropertyInt64(['xds', 'listener_direction']);
  return d.found ? d.value : TrafficDirection.Unspecified;
}

/** envoy.source.extensions.common.wasm.DeclarePropertyArguments for one FlatNode filter state key. */
function declarePropertyArguments(name: string): ArrayBuffer {
  const w = new ByteWriter(512);
  const n = String.UTF8.encode(name);
  w.u8(0x0a); // name = 1
  w.varint(<u64>n.byteLength);
  w.bytes(n);
  w.u8(0x18); // type = 3: WasmType.FlatBuffers (2)
  w.varint(2);
  const schema = flatNodeSchema();
  w.u8(0x22); // schema = 4
  w.varint(<u64>schema.byteLength);
  w.bytes(schema);
  w.u8(0x28); // span = 5: LifeSpan.DownstreamRequest (1)
  w.varint(1);
  return w.toArrayBuffer();
}

export class MetadataExchangeRoot extends RootContext {
  /** This node's metadata, encoded once per configuration (base64 of a deterministic Struct). */
  metadataValue: ArrayBuffer = new ArrayBuffer(0);
  nodeId: ArrayBuffer = new ArrayBuffer(0);
  maxPeerCacheSize: i64 = DefaultNodeCacheMaxSize;
  /** Peer id (as bytes) → the FlatNode decoded from its metadata. */
  private cache: Map<string, ArrayBuffer> = new Map<string, ArrayBuffer>();
  private cacheOrder: string[] = [];

  onConfigure(size: u32): bool {
    // Round-trip through FlatNode so only the exchanged fields survive (plugin.cc updateMetadataValue).
    this.metadataValue = base64Encode(encodeStruct(structFromNode(localNodeFromProperties())));
    const id = getPropertyString(['node', 'id']);
    if (id === null) logDebug('cannot get node ID');
    this.nodeId = String.UTF8.encode(id === null ? '' : id);
    if (size > 0 && !this.configure(size)) logWarn('configuration has errors, but initialization can continue.');
    callForeignFunction('declare_property', declarePropertyArguments(UpstreamMetadataKey), false);
    callForeignFunction('declare_property', declarePropertyArguments(DownstreamMetadataKey), false);
    // A false result makes Envoy reject the configuration; metadata exchange has sane defaults.
    return true;
  }

  private configure(size: u32): bool {
    const text = String.UTF8.decode(getPluginConfiguration(size));
    const json = parseJsonObject(text);
    if (json === null) {
      logWarn('cannot parse plugin configuration JSON string: ' + text);
      return false;
    }
    const max = jsonInt64(json, 'max_peer_cache_size');
    if (max.ok) this.maxPeerCacheSize = max.value;
    return true;
  }

  /** Decodes a peer's metadata header into filter state `key`; false when it is not a valid Struct. */
  updatePeer(key: string, peerId: ArrayBuffer, peerHeader: ArrayBuffer): bool {
    const id = bytesKey(peerId);
    if (this.maxPeerCacheSize > 0 && this.cache.has(id)) {
      setProperty(key, this.cache.get(id));
      return true;
    }
    const bytes = base64DecodeWithoutPadding(changetype<usize>(peerHeader), peerHeader.byteLength);
    const metadata = parseStruct(changetype<usize>(bytes), bytes.byteLength);
    if (metadata === null) return false;
    const flat = encodeFlatNode(nodeFromStruct(metadata));
    setProperty(key, flat);
    if (this.maxPeerCacheSize > 0) {
      // Never let the cache grow past its size: drop a quarter of it (upstream erases the first
      // max/4 entries of an unordered map, i.e. arbitrary ones; these are the oldest).
      if (<i64>this.cache.size > this.maxPeerCacheSize) {
        const drop = <i32>(this.maxPeerCacheSize / 4);
        for (let i = 0; i < drop && i < this.cacheOrder.length; i++) this.cache.delete(this.cacheOrder[i]);
        this.cacheOrder = this.cacheOrder.slice(drop);
        logDebug('cleaned cache, new cache_size:' + this.cache.size.toString());
      }
      if (!this.cache.has(id)) this.cacheOrder.push(id);
      this.cache.set(id, flat);
    }
    return true;
  }

  createStream(id: u32): StreamContext {
    return new MetadataExchangeStream(id, this);
  }
}

function nonEmpty(b: ArrayBuffer | null): bool {
  return b !== null && b.byteLength > 0;
}

export class MetadataExchangeStream extends StreamContext {
  private direction: i64;
  private metadataReceived: bool = true;
  private metadataIdReceived: bool = true;

  constructor(id: u32, root: RootContext) {
    super(id, root);
    this.direction = trafficDirection();
  }

  private get mx(): MetadataExchangeRoot {
    return changetype<MetadataExchangeRoot>(this.root);
  }

  onRequestHeaders(_headers: u32, _endOfStream: bool): u32 {
    const peerId = getHeaderBytes(MapType.HttpRequestHeaders, ExchangeMetadataHeaderId);
    let peerIdBytes = new ArrayBuffer(0);
    if (nonEmpty(peerId)) {
      peerIdBytes = changetype<ArrayBuffer>(peerId);
      removeHeader(MapType.HttpRequestHeaders, ExchangeMetadataHeaderId);
      setProperty(DownstreamMetadataIdKey, peerIdBytes);
    } else {
      this.metadataIdReceived = false;
    }

    const peerMetadata = getHeaderBytes(MapType.HttpRequestHeaders, ExchangeMetadataHeader);
    if (nonEmpty(peerMetadata)) {
      removeHeader(MapType.HttpRequestHeaders, ExchangeMetadataHeader);
      if (!this.mx.updatePeer(DownstreamMetadataKey, peerIdBytes, changetype<ArrayBuffer>(peerMetadata))) {
        logDebug('cannot set downstream peer node');
      }
    } else {
      this.metadataReceived = false;
    }

    // An inbound sidecar does not pass the exchange headers on to its application.
    if (this.direction != TrafficDirection.Inbound) {
      const root = this.mx;
      if (root.metadataValue.byteLength > 0) replaceHeaderBytes(MapType.HttpRequestHeaders, ExchangeMetadataHeader, root.metadataValue);
      if (root.nodeId.byteLength > 0) replaceHeaderBytes(MapType.HttpRequestHeaders, ExchangeMetadataHeaderId, root.nodeId);
    }
    return Action.Continue;
  }

  onResponseHeaders(_headers: u32, _endOfStream: bool): u32 {
    const peerId = getHeaderBytes(MapType.HttpResponseHeaders, ExchangeMetadataHeaderId);
    let peerIdBytes = new ArrayBuffer(0);
    if (nonEmpty(peerId)) {
      peerIdBytes = changetype<ArrayBuffer>(peerId);
      removeHeader(MapType.HttpResponseHeaders, ExchangeMetadataHeaderId);
      setProperty(UpstreamMetadataIdKey, peerIdBytes);
    }

    const peerMetadata = getHeaderBytes(MapType.HttpResponseHeaders, ExchangeMetadataHeader);
    if (nonEmpty(peerMetadata)) {
      removeHeader(MapType.HttpResponseHeaders, ExchangeMetadataHeader);
      if (!this.mx.updatePeer(UpstreamMetadataKey, peerIdBytes, changetype<ArrayBuffer>(peerMetadata))) {
        logDebug('cannot set upstream peer node');
      }
    }

    // An outbound sidecar does not return the exchange headers to its application; a server
    // answers only what its client asked for.
    if (this.direction != TrafficDirection.Outbound) {
      const root = this.mx;
      if (root.metadataValue.byteLength > 0 && this.metadataReceived) {
        replaceHeaderBytes(MapType.HttpResponseHeaders, ExchangeMetadataHeader, root.metadataValue);
      }
      if (root.nodeId.byteLength > 0 && this.metadataIdReceived) {
        replaceHeaderBytes(MapType.HttpResponseHeaders, ExchangeMetadataHeaderId, root.nodeId);
      }
    }
    return Action.Continue;
  }
}

export function createMetadataExchangeRoot(id: u32, rootId: string): RootContext {
  return new MetadataExchangeRoot(id, rootId);
}
