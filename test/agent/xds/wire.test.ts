// The relay's wire reader and writer against protobufjs with Envoy's own protos: whatever a
// real encoder produces (random messages, every field), the reader finds the type URL, version,
// nonce, resource count and first resource; what the writer produces decodes to exactly the
// request meant. Plus Istio's termination classification and the forwarding rule.
import fc from 'fast-check';
import t from 'tap';
import { classifyTermination, forwardedToEnvoy, shortType } from '../../../agent/xds/index.js';
import { encodeRequest, readResponse, requestTypeUrl } from '../../../agent/xds/wire.js';
import { loadEnvoyProtos } from '../../support/envoy-protos.js';

const root = loadEnvoyProtos(['envoy/service/discovery/v3/ads.proto', 'envoy/config/cluster/v3/cluster.proto']);
const T = (n: string) => root.lookupType(`envoy.service.discovery.v3.${n}`);
const enc = (type: string, o: object) => Buffer.from(T(type).encode(T(type).fromObject(o)).finish());
const dec = (type: string, b: Uint8Array) => T(type).toObject(T(type).decode(b), { longs: String, enums: String, defaults: false }) as Record<string, any>;

const str = fc.string({ unit: 'grapheme', maxLength: 40 });
const typeUrl = fc.oneof(fc.constantFrom('type.googleapis.com/envoy.config.cluster.v3.Cluster', 'type.googleapis.com/istio.networking.nds.v1.NameTable', ''), str);
const any = fc.record({ type_url: str, value: fc.uint8Array({ maxLength: 64 }) });
const node = fc.record({ id: str, cluster: str, metadata: fc.constant({ fields: { NAMESPACE: { stringValue: 'default' } } }) }, { requiredKeys: ['id'] });
const status = fc.record({ code: fc.integer({ min: 0, max: 16 }), message: str });

t.test('requestTypeUrl: the type of any DiscoveryRequest / DeltaDiscoveryRequest a real encoder writes', async (t) => {
  fc.assert(
    fc.property(fc.record({ version_info: str, node, resource_names: fc.array(str, { maxLength: 4 }), type_url: typeUrl, response_nonce: str, error_detail: status }, { requiredKeys: [] }), (m) => {
      return requestTypeUrl(enc('DiscoveryRequest', m), 'sotw') === (m.type_url ?? '');
    }),
  );
  fc.assert(
    fc.property(
      fc.record(
        {
          node,
          type_url: typeUrl,
          resource_names_subscribe: fc.array(str, { maxLength: 4 }),
          resource_names_unsubscribe: fc.array(str, { maxLength: 4 }),
          initial_resource_versions: fc.dictionary(str, str, { maxKeys: 3 }),
          response_nonce: str,
          error_detail: status,
        },
        { requiredKeys: [] },
      ),
      (m) => requestTypeUrl(enc('DeltaDiscoveryRequest', m), 'delta') === (m.type_url ?? ''),
    ),
  );
  t.pass('100 random messages of each kind');
});

t.test('readResponse: type, version, nonce, count and first resource of any response', async (t) => {
  fc.assert(
    fc.property(
      fc.record(
        { version_info: str, resources: fc.array(any, { maxLength: 5 }), canary: fc.boolean(), type_url: typeUrl, nonce: str, control_plane: fc.record({ identifier: str }) },
        { requiredKeys: [] },
      ),
      (m) => {
        const r = readResponse(enc('DiscoveryResponse', m), 'sotw', true);
        const res = m.resources ?? [];
        const first = res[0];
        return (
          r.typeUrl === (m.type_url ?? '') &&
          r.versionInfo === (m.version_info ?? '') &&
          r.nonce === (m.nonce ?? '') &&
          r.resourceCount === res.length &&
          (first ? r.first?.typeUrl === first.type_url && Buffer.from(r.first.value).equals(Buffer.from(first.value)) : r.first === undefined)
        );
      },
    ),
  );
  fc.assert(
    fc.property(
      fc.record(
        {
          system_version_info: str,
          resources: fc.array(fc.record({ name: str, version: str, resource: any, aliases: fc.array(str, { maxLength: 2 }) }, { requiredKeys: ['resource'] }), { maxLength: 5 }),
          type_url: typeUrl,
          removed_resources: fc.array(str, { maxLength: 3 }),
          nonce: str,
        },
        { requiredKeys: [] },
      ),
      (m) => {
        const r = readResponse(enc('DeltaDiscoveryResponse', m), 'delta', true);
        const res = m.resources ?? [];
        const first = res[0]?.resource;
        return (
          r.typeUrl === (m.type_url ?? '') &&
          r.versionInfo === (m.system_version_info ?? '') &&
          r.nonce === (m.nonce ?? '') &&
          r.resourceCount === res.length &&
          (first ? r.first?.typeUrl === first.type_url && Buffer.from(r.first.value).equals(Buffer.from(first.value)) : r.first === undefined)
        );
      },
    ),
  );
  t.pass('100 random messages of each kind');
  t.throws(() => readResponse(Buffer.from([0x12, 0xff, 0x01]), 'sotw'), 'a truncated message is an error, not a wrong answer');
});

t.test('encodeRequest: what the agent writes decodes to exactly the request meant', async (t) => {
  fc.assert(
    fc.property(fc.record({ typeUrl: str, versionInfo: str, responseNonce: str, errorDetail: status }, { requiredKeys: ['typeUrl'] }), (r) => {
      const sotw = dec('DiscoveryRequest', encodeRequest(r, 'sotw'));
      const delta = dec('DeltaDiscoveryRequest', encodeRequest(r, 'delta'));
      const err =
        r.errorDetail && (r.errorDetail.code || r.errorDetail.message)
          ? { ...(r.errorDetail.code ? { code: r.errorDetail.code } : {}), ...(r.errorDetail.message ? { message: r.errorDetail.message } : {}) }
          : r.errorDetail
            ? {}
            : undefined;
      const want = (delta: boolean) => ({
        ...(!delta && r.versionInfo ? { version_info: r.versionInfo } : {}),
        ...(r.typeUrl ? { type_url: r.typeUrl } : {}),
        ...(r.responseNonce ? { response_nonce: r.responseNonce } : {}),
        ...(err ? { error_detail: err } : {}),
      });
      return JSON.stringify(sotw) === JSON.stringify(want(false)) && JSON.stringify(delta) === JSON.stringify(want(true));
    }),
  );
  t.pass('100 random requests, both flavours');
  // Byte-identical to protobufjs's own encoding (fields in number order).
  const ack = { typeUrl: 'type.googleapis.com/istio.networking.nds.v1.NameTable', versionInfo: 'v3', responseNonce: 'n7', errorDetail: { code: 13, message: 'bad table' } };
  t.same(encodeRequest(ack, 'sotw'), enc('DiscoveryRequest', { version_info: 'v3', type_url: ack.typeUrl, response_nonce: 'n7', error_detail: { code: 13, message: 'bad table' } }));
  t.same(encodeRequest(ack, 'delta'), enc('DeltaDiscoveryRequest', { type_url: ack.typeUrl, response_nonce: 'n7', error_detail: { code: 13, message: 'bad table' } }));
});

t.test("classifyTermination: Istio's graceful / expected / unexpected", async (t) => {
  t.equal(classifyTermination(null), 'graceful', 'EOF');
  t.equal(classifyTermination({ code: 1, details: 'Call cancelled' }), 'expected');
  t.equal(classifyTermination({ code: 4, details: 'Deadline exceeded' }), 'expected');
  t.equal(classifyTermination({ code: 14, details: 'Connection dropped' }), 'expected', 'grpc-js: the connection went away');
  t.equal(classifyTermination({ code: 14, details: 'transport is closing' }), 'expected', 'grpc-go wording');
  t.equal(classifyTermination({ code: 14, details: 'client disconnected' }), 'expected');
  t.equal(classifyTermination({ code: 13, details: 'Received RST_STREAM with code 0 (Call ended without gRPC status)' }), 'expected', 'RST_STREAM NO_ERROR');
  t.equal(classifyTermination({ code: 14, details: 'No connection established. Last error: connect ECONNREFUSED' }), 'unexpected');
  t.equal(classifyTermination({ code: 16, details: 'authentication failure' }), 'unexpected');
  t.equal(classifyTermination({ code: 13, details: 'Received RST_STREAM with code 2 (Internal server error)' }), 'unexpected');
});

t.test('forwarding rule and short type names', async (t) => {
  t.ok(forwardedToEnvoy('type.googleapis.com/envoy.config.listener.v3.Listener'));
  t.ok(forwardedToEnvoy('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret'));
  t.ok(forwardedToEnvoy('type.googleapis.com/istio.workload.Workload'));
  t.notOk(forwardedToEnvoy('type.googleapis.com/istio.networking.nds.v1.NameTable'));
  t.notOk(forwardedToEnvoy('type.googleapis.com/istio.workload.Address'));
  t.notOk(forwardedToEnvoy('envoy.config.listener.v3.Listener'), 'the prefix is required');
  t.equal(shortType('type.googleapis.com/envoy.config.cluster.v3.Cluster'), 'Cluster');
});
