// Converting a node between its three forms: Envoy node metadata (properties `node.metadata.*`),
// the google.protobuf.Struct carried in `x-envoy-peer-metadata`, and the FlatNode kept in filter
// state. The rules are istio/proxy extensions/common/context.cc extractLocalNodeFlatBuffer and
// proto_util.cc extractNodeFlatBufferFromStruct / extractStructFromNodeFlatBuffer.
import { getProperty, getPropertyString } from '../sdk/host';
import { decodePairs } from '../sdk/pairs';
import { compareCodePoints } from './bytes';
import { KeyVal, NodeInfo } from './flatnode';
import { PbStruct, PbValue } from './proto';

function byKey(a: KeyVal, b: KeyVal): i32 {
  return compareCodePoints(a.key, b.key);
}

/** Sorted by key, as flatbuffers' CreateVectorOfSortedTables stores them. */
export function sortKeyVals(items: KeyVal[]): KeyVal[] {
  items.sort(byKey);
  return items;
}

function metadataString(key: string): string | null {
  return getPropertyString(['node', 'metadata', key]);
}

function metadataMap(key: string): KeyVal[] {
  const out = new Array<KeyVal>(0);
  const bytes = getProperty(['node', 'metadata', key]);
  if (bytes === null) return out;
  const pairs = decodePairs(bytes);
  if (pairs === null) return out;
  for (let i = 0; i < pairs.length; i++) out.push(new KeyVal(pairs[i].key, pairs[i].value));
  return sortKeyVals(out);
}

function metadataList(key: string): string[] {
  const s = metadataString(key);
  return s === null ? new Array<string>(0) : s.split(',');
}

/**
 * The local node from `node.metadata.*`. LABELS, PLATFORM_METADATA, APP_CONTAINERS and
 * INSTANCE_IPS are always present (possibly empty), the string fields only when set.
 */
export function localNodeFromProperties(): NodeInfo {
  const n = new NodeInfo();
  n.name = metadataString('NAME');
  n.namespace_ = metadataString('NAMESPACE');
  n.owner = metadataString('OWNER');
  n.workloadName = metadataString('WORKLOAD_NAME');
  n.istioVersion = metadataString('ISTIO_VERSION');
  n.meshId = metadataString('MESH_ID');
  n.clusterId = metadataString('CLUSTER_ID');
  n.labels = metadataMap('LABELS');
  n.platformMetadata = metadataMap('PLATFORM_METADATA');
  n.appContainers = metadataList('APP_CONTAINERS');
  n.instanceIps = metadataList('INSTANCE_IPS');
  return n;
}

function keyVals(v: PbValue): KeyVal[] {
  const s = v.structValue();
  const keys = s.fields.keys();
  const out = new Array<KeyVal>(0);
  for (let i = 0; i < keys.length; i++) out.push(new KeyVal(keys[i], s.fields.get(keys[i]).stringValue()));
  return sortKeyVals(out);
}

/**
 * A peer node from the Struct it sent. Known keys are taken whatever their value kind (a
 * non-string reads as ""); empty label maps and lists are left out, unlike the local node.
 */
export function nodeFromStruct(s: PbStruct): NodeInfo {
  const n = new NodeInfo();
  const keys = s.fields.keys();
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const v = s.fields.get(key);
    if (key == 'NAME') n.name = v.stringValue();
    else if (key == 'NAMESPACE') n.namespace_ = v.stringValue();
    else if (key == 'OWNER') n.owner = v.stringValue();
    else if (key == 'WORKLOAD_NAME') n.workloadName = v.stringValue();
    else if (key == 'ISTIO_VERSION') n.istioVersion = v.stringValue();
    else if (key == 'MESH_ID') n.meshId = v.stringValue();
    else if (key == 'CLUSTER_ID') n.clusterId = v.stringValue();
    else if (key == 'LABELS') {
      const l = keyVals(v);
      n.labels = l.length > 0 ? l : null;
    } else if (key == 'PLATFORM_METADATA') {
      const p = keyVals(v);
      n.platformMetadata = p.length > 0 ? p : null;
    } else if (key == 'APP_CONTAINERS') n.appContainers = v.stringValue().split(',');
    else if (key == 'INSTANCE_IPS') n.instanceIps = v.stringValue().split(',');
  }
  return n;
}

function structOf(items: KeyVal[]): PbStruct {
  const s = new PbStruct();
  for (let i = 0; i < items.length; i++) s.set(items[i].key, PbValue.ofString(items[i].value));
  return s;
}

/** The Struct a node sends as its peer metadata: only the fields FlatNode has. */
export function structFromNode(n: NodeInfo): PbStruct {
  const s = new PbStruct();
  if (n.name !== null) s.set('NAME', PbValue.ofString(changetype<string>(n.name)));
  if (n.namespace_ !== null) s.set('NAMESPACE', PbValue.ofString(changetype<string>(n.namespace_)));
  if (n.owner !== null) s.set('OWNER', PbValue.ofString(changetype<string>(n.owner)));
  if (n.workloadName !== null) s.set('WORKLOAD_NAME', PbValue.ofString(changetype<string>(n.workloadName)));
  if (n.istioVersion !== null) s.set('ISTIO_VERSION', PbValue.ofString(changetype<string>(n.istioVersion)));
  if (n.meshId !== null) s.set('MESH_ID', PbValue.ofString(changetype<string>(n.meshId)));
  if (n.clusterId !== null) s.set('CLUSTER_ID', PbValue.ofString(changetype<string>(n.clusterId)));
  if (n.labels !== null) s.set('LABELS', PbValue.ofStruct(structOf(changetype<KeyVal[]>(n.labels))));
  if (n.platformMetadata !== null) s.set('PLATFORM_METADATA', PbValue.ofStruct(structOf(changetype<KeyVal[]>(n.platformMetadata))));
  if (n.appContainers !== null) s.set('APP_CONTAINERS', PbValue.ofString(changetype<string[]>(n.appContainers).join(',')));
  if (n.instanceIps !== null) s.set('INSTANCE_IPS', PbValue.ofString(changetype<string[]>(n.instanceIps).join(',')));
  return s;
}
