// Hostile input never traps the modules: a trap fails the VM, and with it the filter chain of an
// Envoy worker. The peer metadata header is attacker-controlled on every inbound listener, so
// it gets random strings, bad base64, random and truncated or bit-flipped protobuf, nesting past
// the recursion limit, and 1 MB values; the stats filter also gets random FlatNode filter state
// and random configuration.
import t from 'tap';
import fc from 'fast-check';
import { Sidecar, WasmType } from '../support/proxy-wasm-host/index.js';
import { clientOptions, exchange, serverOptions } from './fixtures.js';

const PEER = 'x-envoy-peer-metadata';
const PEER_ID = 'x-envoy-peer-metadata-id';

/** A valid client header to truncate and mutate (what a client sidecar really sends). */
async function validHeader(): Promise<string> {
  const client = await Sidecar.start(clientOptions({ statsConfig: undefined }));
  const s = client.stream({}, []);
  s.requestHeaders();
  return s.info.requestHeaders.getString(PEER)!;
}

/** Struct → entry → Value → Struct ... `depth` times. */
function nestedStruct(depth: number): Buffer {
  let inner = Buffer.alloc(0);
  for (let i = 0; i < depth; i++) {
    const value = Buffer.concat([Buffer.from([0x2a]), varint(inner.length), inner]);
    const entry = Buffer.concat([Buffer.from([0x0a, 0x01, 0x61, 0x12]), varint(value.length), value]);
    inner = Buffer.concat([Buffer.from([0x0a]), varint(entry.length), entry]);
  }
  return inner;
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

void t.test('x-envoy-peer-metadata never traps the filters', async (t) => {
  const server = await Sidecar.start(serverOptions());
  const valid = await validHeader();
  const validBytes = Buffer.from(valid, 'base64');
  let requests = 0;
  const send = (id: string | Uint8Array, md: string | Uint8Array): void => {
    const s = server.stream({ response: { code: 200n }, connection: { mtls: false } }, [
      [':path', '/'],
      [PEER_ID, id],
      [PEER, md],
    ]);
    s.requestHeaders();
    // Upstream strips a non-empty header only; an empty one is left as it came.
    if (md.length > 0) t.notOk(s.info.requestHeaders.has(PEER), 'stripped whatever it was');
    s.responseHeaders([[':status', '200']]);
    s.end();
    requests++;
  };

  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
  const arbitraries = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/='), maxLength: 400 }),
    fc.uint8Array({ maxLength: 400 }).map(b64),
    fc.nat({ max: validBytes.length }).map((n) => b64(validBytes.subarray(0, n))),
    fc.nat({ max: valid.length }).map((n) => valid.slice(0, n)),
    fc.tuple(fc.nat({ max: validBytes.length - 1 }), fc.integer({ min: 1, max: 255 })).map(([at, x]) => {
      const b = Buffer.from(validBytes);
      b[at]! ^= x;
      return b64(b);
    }),
    fc.uint8Array({ minLength: 1, maxLength: 64 }),
  );
  // Random ids too, so the cache sees both hits and misses.
  fc.assert(
    fc.property(fc.oneof(fc.constant('client'), fc.string({ maxLength: 20 })), arbitraries, (id, md) => {
      send(id, md);
    }),
    { numRuns: 400 },
  );

  send('deep', b64(nestedStruct(99)));
  send('deeper', b64(nestedStruct(2000)));
  send('big', 'A'.repeat(1024 * 1024));
  send('big-random', b64(Buffer.from(Array.from({ length: 768 * 1024 }, (_, i) => (i * 2654435761) >>> 24))));
  send('big-valid-prefix', valid + 'A'.repeat(1024 * 1024));
  send('client', valid);
  t.equal(server.host.vms.filter((v) => v.failed !== undefined).length, 0, 'no VM failed');
  const total = server.host.stats
    .samples()
    .filter((s) => s.fullName.endsWith('istio_requests_total'))
    .reduce((n, s) => n + s.value, 0);
  t.equal(total, requests, 'every request was still counted');
});

void t.test('random FlatNode filter state never traps the stats filter', async (t) => {
  const client = await Sidecar.start(clientOptions({ mxConfig: undefined }));
  const valid = await (async () => {
    const server = await Sidecar.start(serverOptions({ statsConfig: undefined }));
    const c2 = await Sidecar.start(clientOptions({ statsConfig: undefined }));
    return exchange(c2, server).client.info.filterState.get('wasm.upstream_peer')!.value;
  })();
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        fc.nat({ max: valid.length }).map((n) => valid.subarray(0, n)),
        fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 1, max: 255 })).map(([at, x]) => {
          const b = Uint8Array.from(valid);
          b[at]! ^= x;
          return b;
        }),
      ),
      (node) => {
        const s = client.stream({ response: { code: 200n } }, [[':path', '/']]);
        s.requestHeaders();
        s.info.filterState.set('wasm.upstream_peer_id', { value: Buffer.from('server'), type: WasmType.Bytes, schema: new Uint8Array(0), readonly: false, span: 0 });
        s.info.filterState.set('wasm.upstream_peer', { value: node, type: WasmType.FlatBuffers, schema: Uint8Array.of(1), readonly: false, span: 1 });
        s.responseHeaders([[':status', '200']]);
        s.end();
      },
    ),
    { numRuns: 400 },
  );
  t.equal(client.host.vms.filter((v) => v.failed !== undefined).length, 0, 'no VM failed');
});

void t.test('random stats and metadata-exchange configuration never traps', async (t) => {
  const json = fc.oneof(
    fc.json({ maxDepth: 4 }),
    fc.string({ maxLength: 100 }),
    fc
      .record(
        {
          metrics: fc.array(
            fc.record(
              {
                name: fc.constantFrom('requests_total', 'custom', '', 'x'),
                dimensions: fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string({ maxLength: 12 }), fc.integer())),
                tags_to_remove: fc.array(fc.oneof(fc.string({ maxLength: 12 }), fc.integer()), { maxLength: 3 }),
                drop: fc.boolean(),
              },
              { requiredKeys: [] },
            ),
            { maxLength: 4 },
          ),
          definitions: fc.array(
            fc.record(
              { name: fc.string({ maxLength: 8 }), value: fc.constantFrom('1', 'size(request.protocol)', 'bad |', ''), type: fc.constantFrom('COUNTER', 'GAUGE', 'HISTOGRAM', 'X') },
              { requiredKeys: [] },
            ),
            { maxLength: 3 },
          ),
          tcp_reporting_duration: fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('1s', '-1s', 'inf', '0', '1.5h', '10ms')),
          disable_host_header_fallback: fc.oneof(fc.boolean(), fc.string({ maxLength: 5 })),
          max_peer_cache_size: fc.oneof(fc.integer(), fc.string({ maxLength: 5 })),
        },
        { requiredKeys: [] },
      )
      .map((o) => JSON.stringify(o)),
    fc.constant('['.repeat(5000)),
  );
  await fc.assert(
    fc.asyncProperty(json, async (cfg) => {
      const client = await Sidecar.start(clientOptions({ mxConfig: cfg, statsConfig: cfg }));
      const server = await Sidecar.start(serverOptions());
      exchange(client, server);
      if (client.host.vms.some((v) => v.failed !== undefined)) throw new Error(`VM failed with ${cfg}`);
    }),
    { numRuns: 60 },
  );
  t.pass('no configuration trapped a VM');
});
