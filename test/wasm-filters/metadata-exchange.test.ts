// The metadata-exchange filter in the stand-in host: istio/proxy's TestHTTPExchange (a server
// sidecar answering requests with no, partial and full peer headers), the exact encoding of what
// a sidecar sends, what it stores for the stats filter, the peer cache, and the direction rules.
import t from 'tap';
import protobuf from 'protobufjs';
import { Direction, Sidecar, decodeFlatNode, WasmType } from '../support/proxy-wasm-host/index.js';
import type { PropertyMap } from '../support/proxy-wasm-host/properties.js';
import { clientNodeMetadata, mxConfig, serverNodeMetadata } from './fixtures.js';

const PEER = 'x-envoy-peer-metadata';
const PEER_ID = 'x-envoy-peer-metadata-id';

/** The client's whole node metadata as a google.protobuf.Struct, encoded by protobufjs (not by the module). */
function structBytes(md: PropertyMap): Uint8Array {
  const root = protobuf.Root.fromJSON(protobuf.common.get('google/protobuf/struct.proto')!);
  const Struct = root.lookupType('google.protobuf.Struct');
  const value = (v: unknown): object => (typeof v === 'string' ? { stringValue: v } : { structValue: { fields: Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, value(x)])) } });
  return Struct.encode(Struct.fromObject({ fields: Object.fromEntries(Object.entries(md).map(([k, v]) => [k, value(v)])) })).finish();
}

/** What the upstream test sends: the whole client metadata, base64 without padding. */
const clientHeader = Buffer.from(structBytes(clientNodeMetadata)).toString('base64').replace(/=+$/, '');

/** Istio's reduced client metadata: 708 bytes, deterministic, padded base64 (measured against protobufjs). */
const goldenClientMetadata =
  'Ch8KDkFQUF9DT05UQUlORVJTEg0aC3Rlc3QsYm9uemFpCh4KCkNMVVNURVJfSUQSEBoOY2xpZW50LWNsdXN0ZXIKNgoMSU5TVEFOQ0VfSVBTEiYaJDEwLjUyLjAuMzQsZmU4MDo6YTA3NToxMWZmOmZlNWU6ZjFjZAoaCg1JU1RJT19WRVJTSU9OEgkaBzEuNS1kZXYKwQEKBkxBQkVMUxK2ASqzAQoUCgNhcHASDRoLcHJvZHVjdHBhZ2UKIQoRcG9kLXRlbXBsYXRlLWhhc2gSDBoKODQ5NzViYzc3OAozCh9zZXJ2aWNlLmlzdGlvLmlvL2Nhbm9uaWNhbC1uYW1lEhAaDnByb2R1Y3RwYWdlLXYxCjIKI3NlcnZpY2UuaXN0aW8uaW8vY2Fub25pY2FsLXJldmlzaW9uEgsaCXZlcnNpb24tMQoPCgd2ZXJzaW9uEgQaAnYxChEKB01FU0hfSUQSBhoEbWVzaAopCgROQU1FEiEaH3Byb2R1Y3RwYWdlLXYxLTg0OTc1YmM3NzgtcHh6MncKFgoJTkFNRVNQQUNFEgkaB2RlZmF1bHQKUgoFT1dORVISSRpHa3ViZXJuZXRlczovL2FwaXMvYXBwcy92MS9uYW1lc3BhY2VzL2RlZmF1bHQvZGVwbG95bWVudHMvcHJvZHVjdHBhZ2UtdjEKmwEKEVBMQVRGT1JNX01FVEFEQVRBEoUBKoIBCiYKFGdjcF9na2VfY2x1c3Rlcl9uYW1lEg4aDHRlc3QtY2x1c3RlcgocCgxnY3BfbG9jYXRpb24SDBoKdXMtZWFzdDQtYgodCgtnY3BfcHJvamVjdBIOGgx0ZXN0LXByb2plY3QKGwoSZ2NwX3Byb2plY3RfbnVtYmVyEgUaAzEyMwohCg1XT1JLTE9BRF9OQU1FEhAaDnByb2R1Y3RwYWdlLXYx';

async function mxSidecar(nodeId: string, metadata: PropertyMap, direction: number, config = mxConfig): Promise<Sidecar> {
  return Sidecar.start({ nodeId, metadata, direction: direction as 1 | 2, mxConfig: config });
}

void t.test('TestHTTPExchange: a server answers only the exchange headers its client sent', async (t) => {
  const server = await mxSidecar('server', serverNodeMetadata, Direction.Inbound);
  const call = (headers: [string, string][]) => {
    const s = server.stream({}, [[':path', '/'], ...headers]);
    s.requestHeaders();
    const toApp = s.info.requestHeaders;
    s.responseHeaders([[':status', '200']]);
    s.end();
    return { toApp, response: s.info.responseHeaders, filterState: s.info.filterState };
  };

  const none = call([]);
  t.notOk(none.response.has(PEER_ID), 'no id header without an id in the request');
  t.notOk(none.response.has(PEER), 'no metadata header without metadata in the request');
  t.equal(none.filterState.size, 0, 'nothing stored');

  const idOnly = call([[PEER_ID, 'client']]);
  t.equal(idOnly.response.getString(PEER_ID), 'server');
  t.notOk(idOnly.response.has(PEER), 'metadata only when the client sent its own');
  t.notOk(idOnly.toApp.has(PEER_ID), 'inbound strips the id before the application');
  t.equal(Buffer.from(idOnly.filterState.get('wasm.downstream_peer_id')!.value).toString(), 'client');

  const both = call([
    [PEER_ID, 'client'],
    [PEER, clientHeader],
  ]);
  t.equal(both.response.getString(PEER_ID), 'server');
  t.ok(both.response.getString(PEER)!.length > 0, 'server metadata returned');
  t.notOk(both.toApp.has(PEER) || both.toApp.has(PEER_ID), 'inbound never forwards exchange headers to the application');
  const peer = both.filterState.get('wasm.downstream_peer')!;
  t.equal(peer.type, WasmType.FlatBuffers, 'stored with the FlatBuffers prototype declare_property gave');
  t.ok(peer.schema.length > 0, 'with the FlatNode schema');
  t.same(
    decodeFlatNode(peer.value),
    {
      name: 'productpage-v1-84975bc778-pxz2w',
      namespace: 'default',
      owner: 'kubernetes://apis/apps/v1/namespaces/default/deployments/productpage-v1',
      workload_name: 'productpage-v1',
      istio_version: '1.5-dev',
      mesh_id: 'mesh',
      cluster_id: 'client-cluster',
      labels: clientNodeMetadata.LABELS,
      platform_metadata: clientNodeMetadata.PLATFORM_METADATA,
      app_containers: ['test', 'bonzai'],
      instance_ips: ['10.52.0.34', 'fe80::a075:11ff:fe5e:f1cd'],
    },
    'the peer node keeps exactly the FlatNode fields of what the client sent',
  );
});

void t.test('a sidecar sends its node metadata reduced to the exchanged fields, deterministically', async (t) => {
  const client = await mxSidecar('client', clientNodeMetadata, Direction.Outbound);
  const s = client.stream({}, [[':path', '/']]);
  s.requestHeaders();
  t.equal(s.info.requestHeaders.getString(PEER), goldenClientMetadata, 'byte-identical to the deterministic Struct encoding');
  t.equal(s.info.requestHeaders.getString(PEER_ID), 'client');
  // The upstream answer comes back stripped and stored as the upstream peer.
  const server = await mxSidecar('server', serverNodeMetadata, Direction.Inbound);
  const ss = server.stream({}, s.info.requestHeaders.entries);
  ss.requestHeaders();
  ss.responseHeaders([[':status', '200']]);
  s.responseHeaders(ss.info.responseHeaders.entries);
  t.notOk(s.info.responseHeaders.has(PEER) || s.info.responseHeaders.has(PEER_ID), 'outbound never returns exchange headers to the application');
  t.equal(Buffer.from(s.info.filterState.get('wasm.upstream_peer_id')!.value).toString(), 'server');
  const node = decodeFlatNode(s.info.filterState.get('wasm.upstream_peer')!.value);
  t.equal(node.workload_name, 'ratings-v1');
  t.same(node.app_containers, ['server']);
  // The server's own encoding round-trips through the client's decoder: no other key survives.
  t.notOk('POD_NAME' in node, 'non-exchanged metadata is not sent');
  s.end();
  ss.end();
});

void t.test('empty labels and lists are always sent by the local node, omitted for peers', async (t) => {
  const bare = await mxSidecar('bare', { WORKLOAD_NAME: 'w' }, Direction.Outbound);
  const s = bare.stream({}, []);
  s.requestHeaders();
  const sent = s.info.requestHeaders.getString(PEER)!;
  const root = protobuf.Root.fromJSON(protobuf.common.get('google/protobuf/struct.proto')!);
  const decoded = root.lookupType('google.protobuf.Struct').toObject(root.lookupType('google.protobuf.Struct').decode(Buffer.from(sent, 'base64')));
  t.same(
    decoded,
    { fields: { APP_CONTAINERS: { stringValue: '' }, INSTANCE_IPS: { stringValue: '' }, LABELS: { structValue: {} }, PLATFORM_METADATA: { structValue: {} }, WORKLOAD_NAME: { stringValue: 'w' } } },
    'LABELS, PLATFORM_METADATA, APP_CONTAINERS, INSTANCE_IPS always present',
  );
  const server = await mxSidecar('server', serverNodeMetadata, Direction.Inbound);
  const ss = server.stream({}, s.info.requestHeaders.entries);
  ss.requestHeaders();
  t.same(
    decodeFlatNode(ss.info.filterState.get('wasm.downstream_peer')!.value),
    { workload_name: 'w', app_containers: [''], instance_ips: [''] },
    'peer: empty maps omitted, "" splits to one empty entry',
  );
});

void t.test('an unspecified direction adds the headers both ways', async (t) => {
  const sc = await mxSidecar('middle', serverNodeMetadata, Direction.Unspecified);
  const s = sc.stream({}, [
    [PEER_ID, 'client'],
    [PEER, clientHeader],
  ]);
  s.requestHeaders();
  t.equal(s.info.requestHeaders.getString(PEER_ID), 'middle', "own id forwarded upstream (replacing the peer's)");
  s.responseHeaders([[':status', '200']]);
  t.equal(s.info.responseHeaders.getString(PEER_ID), 'middle', 'and returned downstream');
});

void t.test('the peer cache: a known id is served from cache, bad metadata stores nothing', async (t) => {
  const server = await mxSidecar('server', serverNodeMetadata, Direction.Inbound);
  const send = (id: string, md: string) => {
    const s = server.stream({}, [
      [PEER_ID, id],
      [PEER, md],
    ]);
    s.requestHeaders();
    const fs = s.info.filterState;
    s.end();
    return fs;
  };
  t.ok(send('client', clientHeader).has('wasm.downstream_peer'));
  const cached = send('client', 'not base64 !!!');
  t.equal(decodeFlatNode(cached.get('wasm.downstream_peer')!.value).workload_name, 'productpage-v1', 'same id: the cached node, header not decoded');
  // Envoy's decoder turns bad base64 into no bytes, and no bytes parse as an empty Struct.
  const bad = send('other', 'not base64 !!!');
  t.same(decodeFlatNode(bad.get('wasm.downstream_peer')!.value), {}, 'bad base64 stores an empty peer node, as upstream does');
  const notStruct = send('another', 'AAAA');
  t.notOk(notStruct.has('wasm.downstream_peer'), 'bytes that are not a Struct (field number 0) store no peer');
  t.ok(notStruct.has('wasm.downstream_peer_id'), 'the id is still stored');
  // Cache size 0 disables caching: a known id is decoded again.
  const nocache = await mxSidecar('server', serverNodeMetadata, Direction.Inbound, '{"max_peer_cache_size": "0"}');
  const s1 = nocache.stream({}, [
    [PEER_ID, 'client'],
    [PEER, clientHeader],
  ]);
  s1.requestHeaders();
  const s2 = nocache.stream({}, [
    [PEER_ID, 'client'],
    [PEER, 'AAAA'],
  ]);
  s2.requestHeaders();
  t.notOk(s2.info.filterState.has('wasm.downstream_peer'), 'not served from a cache');
  // Many distinct peers: the cache keeps working past its size.
  for (let i = 0; i < 100; i++) t.ok(send(`peer-${i}`, clientHeader).has('wasm.downstream_peer'));
});

void t.test('configuration errors keep the defaults; declare_property declares both peer keys', async (t) => {
  const sc = await mxSidecar('server', serverNodeMetadata, Direction.Inbound, '{not json');
  t.ok(sc.filters[0]!.configured, 'on_configure still returns true');
  t.ok(
    sc.host.logs().some((l) => l.message.includes('cannot parse plugin configuration JSON string')),
    'a warning names the bad configuration',
  );
  const vm = sc.host.vms[0]!;
  for (const key of ['upstream_peer', 'downstream_peer']) {
    const p = vm.declaredProperty(key);
    t.equal(p?.type, WasmType.FlatBuffers, `${key} declared as FlatBuffers`);
    t.equal(p?.span, 1, `${key} lives as long as the downstream request`);
  }
  const empty = await mxSidecar('server', serverNodeMetadata, Direction.Inbound, '');
  t.ok(empty.filters[0]!.configured, 'no configuration at all is fine (Istio sends 0 bytes)');
});
