// The stats filter with metadata exchange in front of it, ported from istio/proxy's
// test/envoye2e/stats_plugin (TestStatsPayload/{Default,Customized,UseHostHeader,
// DisableHostHeader}, TestStatsGrpc, TestStatsGrpcStream, TestStats403Failure,
// TestStatsEndpointLabels, TestStatsParallel, TestStatsParserRegression) and
// tcp_metadata_exchange: the exact metric names, label sets and values their expectations give,
// read from the host's stats store after Envoy's tag extraction.
import t, { type Test } from 'tap';
import { Direction, ISTIO_STANDARD_LABELS, MetricStore, Sidecar, istioStatsTags, encodeFlatNode, WasmType, type Sample } from '../support/proxy-wasm-host/index.js';
import { baselineLabels, clientAuthority, clientNodeMetadata, clientOptions, exchange, onlySample, repeat, serverNodeMetadata, serverOptions } from './fixtures.js';

const N = 10;

function sample(t: Test, samples: Sample[], name: string): Sample {
  const s = onlySample(samples, name);
  t.ok(s, `exactly one ${name} series (have: ${samples.filter((x) => x.name === name).length})`);
  return s!;
}

/** testdata/stats/client_config_customized.yaml.tmpl, as JSON. */
const customizedClientConfig = JSON.stringify({
  definitions: [{ name: 'custom', value: '1', type: 'COUNTER' }],
  metrics: [
    { name: 'request_duration_milliseconds', drop: true },
    { name: 'custom', dimensions: { reporter: "'proxy'" } },
    { tags_to_remove: ['response_flags', 'source_principal'] },
    {
      name: 'requests_total',
      dimensions: {
        configurable_metric_a: "'gateway'",
        source_workload: "'_' + node.metadata['WORKLOAD_NAME']",
        source_workload_namespace: "'_' + node.metadata['NAMESPACE']",
        source_app: "'_' + node.metadata['LABELS']['app']",
        source_version: "'_' + node.metadata['LABELS']['app']",
        request_protocol: 'request.protocol',
        destination_version: "'_' + (has(node.metadata.LABELS.version) ? node.metadata.LABELS.version : 'unknown')",
        destination_service_namespace: "'_' + upstream_peer.labels['app'].value",
        destination_app: 'cannot _ parse | 1',
        destination_workload: 'cannot_evaluate',
        route_name: 'xds.route_name + "," + xds.cluster_name + "," + xds.cluster_metadata.filter_metadata.istio.services[0].name',
      },
      tags_to_remove: ['grpc_response_status'],
    },
    { name: 'request_bytes', dimensions: { configurable_metric_b: "'test'" }, tags_to_remove: ['reporter'] },
    { dimensions: { source_principal: "'malicious'" } },
  ],
});

const extraTags = ['configurable_metric_a', 'configurable_metric_b', 'route_name'];

async function pair(clientOverrides = {}, serverOverrides = {}): Promise<{ client: Sidecar; server: Sidecar }> {
  const client = await Sidecar.start(clientOptions(clientOverrides));
  const server = await Sidecar.start(serverOptions(serverOverrides));
  return { client, server };
}

void t.test('TestStatsPayload/Default', async (t) => {
  const { client, server } = await pair();
  repeat(N, () => exchange(client, server));
  const c = sample(t, client.host.stats.samples(), 'istio_requests_total');
  t.equal(c.value, N);
  t.same(c.labels, baselineLabels('client'), 'client label set');
  t.equal(c.fullName.split(';.;').length, 26, 'the name spells out all 25 labels');
  const s = sample(t, server.host.stats.samples(), 'istio_requests_total');
  t.equal(s.value, N);
  t.same(s.labels, baselineLabels('server'), 'server label set');
  const build = sample(t, server.host.stats.samples(), 'istio_build');
  t.equal(build.type, 'gauge');
  t.equal(build.value, 1);
  t.same(build.labels, { component: 'proxy', tag: '1.5-dev' });
  t.equal(build.fullName, 'component.proxy.tag.1.5-dev;.istio_build');
  // The histograms: one sample per request, with the request's values.
  const duration = sample(t, client.host.stats.samples(), 'istio_request_duration_milliseconds');
  t.same(duration.histogram!.samples, Array<number>(N).fill(2), 'request.duration ns / 10^6');
  t.same(sample(t, client.host.stats.samples(), 'istio_request_bytes').histogram!.samples, Array<number>(N).fill(80));
  t.same(sample(t, client.host.stats.samples(), 'istio_response_bytes').histogram!.samples, Array<number>(N).fill(120));
  t.equal(duration.histogram!.buckets[DEFAULT_BUCKET_5]!, N, 'Envoy default buckets: 2 ms falls in le=5');
  const misses = client.host.stats.samples().find((x) => x.name === 'metric_cache_count' && x.labels.cache === 'miss');
  t.equal(misses?.value, 1, 'one label vector resolved once, then cached');
  t.same(misses?.labels, { wasm_filter: 'stats_filter', cache: 'miss' });
  t.notOk(
    client.host.stats.samples().some((x) => x.name.startsWith('istio_tcp') || x.name.includes('messages')),
    'no TCP or gRPC streaming series for HTTP',
  );
});

const DEFAULT_BUCKET_5 = 2;

void t.test('TestStatsPayload/Customized', async (t) => {
  const server = await Sidecar.start(serverOptions());
  // The e2e bootstrap adds stats_tags for the custom labels.
  const store = new MetricStore(istioStatsTags(extraTags));
  const customized = await Sidecar.start(clientOptions({ statsConfig: customizedClientConfig, stats: store }));
  repeat(N, () => exchange(customized, server));
  const samples = store.samples();
  const custom = sample(t, samples, 'istio_custom');
  t.equal(custom.value, N);
  t.same(custom.labels, { reporter: 'proxy', source_principal: 'malicious' });
  const rt = sample(t, samples, 'istio_requests_total');
  t.equal(rt.value, N);
  const want: Record<string, string> = {
    ...baselineLabels('client'),
    source_workload: '_productpage-v1',
    source_workload_namespace: '_default',
    source_principal: 'malicious',
    source_app: '_productpage',
    source_version: '_productpage',
    destination_workload: 'unknown',
    destination_version: '_v1',
    destination_service_namespace: '_ratings',
    request_protocol: 'HTTP/1.1',
    configurable_metric_a: 'gateway',
    route_name: 'client_route,server-outbound-cluster,server',
  };
  delete want.destination_app;
  delete want.response_flags;
  delete want.grpc_response_status;
  t.same(rt.labels, want, 'client istio_requests_total label set');
  t.equal(samples.filter((x) => x.name === 'istio_request_duration_milliseconds').length, 0, 'dropped metric never defined');
  const rb = sample(t, samples, 'istio_request_bytes');
  t.equal(rb.labels.configurable_metric_b, 'test');
  t.notOk('reporter' in rb.labels, 'reporter removed from request_bytes');
  t.equal(rb.labels.source_principal, 'malicious', 'an unnamed entry applies to every metric');
  // The server is unaffected.
  t.same(sample(t, server.host.stats.samples(), 'istio_requests_total').labels, baselineLabels('server'));
  t.ok(
    customized.host.logs().some((l) => l.message.includes('cannot create an expression: cannot _ parse | 1')),
    'the expression that does not compile is reported',
  );
  // Expressions are released with the plugin.
  const vm = customized.host.vms.find((v) => v.vmId === 'stats_outbound')!;
  t.ok(vm.expressionCount > 0);
  customized.stats!.done();
  t.equal(vm.expressionCount, 0, 'expr_delete for every expression on_done');
});

void t.test('metric_cache_count: hits are reported in batches of 100', async (t) => {
  const { client, server } = await pair();
  repeat(201, () => exchange(client, server));
  const count = (cache: string) => client.host.stats.samples().find((x) => x.name === 'metric_cache_count' && x.labels.cache === cache)?.value;
  t.equal(count('miss'), 1);
  t.equal(count('hit'), 200, '200 hits after 201 requests (the first was the miss)');
});

void t.test('TestStatsPayload/UseHostHeader', async (t) => {
  const { client, server } = await pair();
  repeat(N, () => exchange(client, server, { clientCluster: 'host_header' }));
  const c = sample(t, client.host.stats.samples(), 'istio_requests_total');
  t.equal(c.value, N);
  t.same(c.labels, { ...baselineLabels('client'), destination_service: clientAuthority, destination_service_name: clientAuthority });
});

void t.test('TestStatsPayload/DisableHostHeader', async (t) => {
  const cfg = '{"disable_host_header_fallback": "true"}';
  const { client, server } = await pair({ statsConfig: cfg }, { statsConfig: cfg });
  repeat(N, () => exchange(client, server, { clientCluster: 'host_header', elideServerMetadata: true }));
  const c = sample(t, client.host.stats.samples(), 'istio_requests_total');
  t.equal(c.value, N);
  t.same(c.labels, { ...baselineLabels('client'), destination_service: 'unknown', destination_service_name: 'unknown' });
  const s = sample(t, server.host.stats.samples(), 'istio_requests_total');
  t.equal(s.value, N);
  t.same(s.labels, { ...baselineLabels('server'), destination_service: 'ratings', destination_service_name: 'ratings' }, 'inbound falls back to the canonical service name');
});

void t.test('TestStatsGrpc: unary calls answered PermissionDenied', async (t) => {
  const { client, server } = await pair();
  repeat(N, () => exchange(client, server, { grpc: { status: 7 } }));
  for (const [side, sc] of [
    ['client', client],
    ['server', server],
  ] as const) {
    const s = sample(t, sc.host.stats.samples(), 'istio_requests_total');
    t.equal(s.value, N);
    t.same(s.labels, { ...baselineLabels(side), request_protocol: 'grpc', grpc_response_status: '7' }, `${side} labels`);
  }
});

void t.test('TestStatsGrpcStream: message counts on ticks and at the end', async (t) => {
  const clientStore = new MetricStore(istioStatsTags(extraTags));
  const client = await Sidecar.start(
    clientOptions({ stats: clientStore, statsConfig: JSON.stringify({ tcp_reporting_duration: '1s', metrics: [{ dimensions: { configurable_metric_a: 'node.metadata.LABELS.version' } }] }) }),
  );
  const server = await Sidecar.start(serverOptions({ statsConfig: '{"tcp_reporting_duration": "1s"}' }));
  t.equal(client.stats!.tickPeriodMs, 1000, 'tcp_reporting_duration sets the tick period');
  const md = { filter_metadata: { istio: { services: [{ host: 'server.default.svc.cluster.local', name: 'server', namespace: 'default' }] } } };
  const headers: [string, string][] = [
    [':path', '/grpc.Echo/Stream'],
    [':authority', clientAuthority],
    ['content-type', 'application/grpc'],
  ];
  const c = client.stream({ route_name: 'client_route', cluster_name: 'server-outbound-cluster', cluster_metadata: md, request: { protocol: 'HTTP/2' } }, headers);
  c.requestHeaders();
  const s = server.stream({ cluster_name: 'server-inbound-cluster', cluster_metadata: md, connection: { mtls: false }, request: { protocol: 'HTTP/2' } }, c.info.requestHeaders.entries);
  s.requestHeaders();
  s.responseHeaders([
    [':status', '200'],
    ['content-type', 'application/grpc'],
  ]);
  c.responseHeaders(s.info.responseHeaders.entries);

  const peerLabels = (side: 'client' | 'server') => Object.fromEntries(ISTIO_STANDARD_LABELS.slice(0, 20).map((l) => [l, baselineLabels(side)[l]!]));
  const check = (requests: number, responses: number) => {
    for (const [side, sc] of [
      ['client', client],
      ['server', server],
    ] as const) {
      const samples = sc.host.stats.samples();
      const req = sample(t, samples, 'istio_request_messages_total');
      const resp = sample(t, samples, 'istio_response_messages_total');
      t.equal(req.value, requests, `${side} request messages`);
      t.equal(resp.value, responses, `${side} response messages`);
      const want = side === 'client' ? { ...peerLabels(side), configurable_metric_a: 'v1' } : peerLabels(side);
      t.same(req.labels, want, `${side}: the 20 peer labels`);
    }
  };
  // Envoy's grpc_stats filter keeps the running counts in filter state.
  for (const x of [c, s]) x.info.envoyFilterState['envoy.filters.http.grpc_stats'] = '3,13';
  client.tick();
  server.tick();
  check(3, 13);
  client.tick();
  check(3, 13);
  for (const x of [c, s]) x.info.envoyFilterState['envoy.filters.http.grpc_stats'] = '8,27';
  s.end();
  c.end();
  check(8, 27);
  t.equal(sample(t, client.host.stats.samples(), 'istio_requests_total').value, 1, 'the stream itself counts once, at its end');
});

void t.test('TestStats403Failure: requests the server denies', async (t) => {
  const { client, server } = await pair();
  repeat(N, () => exchange(client, server, { responseCode: 403 }));
  const s = sample(t, server.host.stats.samples(), 'istio_requests_total');
  t.equal(s.value, N);
  t.same(s.labels, { ...baselineLabels('server'), response_code: '403' });
});

void t.test('TestStatsEndpointLabels: no metadata exchange, the endpoint names the workload', async (t) => {
  const client = await Sidecar.start(clientOptions({ mxConfig: undefined }));
  const server = await Sidecar.start(serverOptions({ mxConfig: undefined, statsConfig: undefined }));
  repeat(N, () => exchange(client, server, { clientAttributes: { upstream_host_metadata: { filter_metadata: { istio: { workload: 'ratings-v1;default;ratings;version-1;server-cluster' } } } } }));
  const c = sample(t, client.host.stats.samples(), 'istio_requests_total');
  t.equal(c.value, N);
  t.same(c.labels, { ...baselineLabels('client'), destination_app: 'unknown', destination_version: 'unknown' });
});

void t.test('unknown peers: no exchange on the other side', async (t) => {
  const client = await Sidecar.start(clientOptions());
  const plainServer = await Sidecar.start(serverOptions({ mxConfig: undefined, statsConfig: undefined }));
  exchange(client, plainServer);
  const c = sample(t, client.host.stats.samples(), 'istio_requests_total');
  const unknownDestination = Object.fromEntries(
    Object.entries(baselineLabels('client')).map(([k, v]) => [
      k,
      k.startsWith('destination_') && !['destination_service', 'destination_service_name', 'destination_principal'].includes(k) ? 'unknown' : v,
    ]),
  );
  t.same(c.labels, { ...unknownDestination, destination_canonical_revision: 'latest' }, 'outbound: destination labels unknown, revision latest');

  const plainClient = await Sidecar.start(clientOptions({ mxConfig: undefined, statsConfig: undefined }));
  const server = await Sidecar.start(serverOptions());
  exchange(plainClient, server);
  const s = sample(t, server.host.stats.samples(), 'istio_requests_total');
  const unknownSource = Object.fromEntries(Object.entries(baselineLabels('server')).map(([k, v]) => [k, k.startsWith('source_') && k !== 'source_principal' ? 'unknown' : v]));
  t.same(s.labels, { ...unknownSource, source_canonical_revision: 'latest' }, 'inbound: source labels unknown, revision latest');

  // A peer that sent only its id is not "found": the same as none.
  const server2 = await Sidecar.start(serverOptions());
  const st = server2.stream({ cluster_name: 'server-inbound-cluster', connection: { mtls: true }, response: { code: 200n } }, [['x-envoy-peer-metadata-id', 'client']]);
  st.requestHeaders();
  st.responseHeaders([[':status', '200']]);
  st.end();
  const s2 = sample(t, server2.host.stats.samples(), 'istio_requests_total');
  t.equal(s2.labels.source_workload, 'unknown');
  t.equal(s2.labels.connection_security_policy, 'mutual_tls', 'connection.mtls true → mutual_tls');
  t.equal(s2.labels.destination_service, 'unknown', 'host fallback on, but no host: unknown');
});

void t.test('response flags and codes become labels', async (t) => {
  const { client, server } = await pair();
  exchange(client, server, { responseFlags: 0x604, responseCode: 504 });
  exchange(client, server, { responseFlags: 0x8040000, responseCode: 400 });
  const flags = client.host.stats
    .family('istio_requests_total')
    .map((s) => `${s.labels.response_code}:${s.labels.response_flags}`)
    .sort();
  t.same(flags, ['400:DPE,134479872', '504:UT,DI,FI']);
});

void t.test("TCP: connection metrics from the native TCP exchange's filter state", async (t) => {
  const cfg = '{"tcp_reporting_duration": "1s"}';
  const client = await Sidecar.start(clientOptions({ mxConfig: undefined, statsConfig: cfg }));
  const server = await Sidecar.start(serverOptions({ mxConfig: undefined, statsConfig: cfg }));
  const flat = (md: typeof clientNodeMetadata) =>
    encodeFlatNode({ workload_name: md.WORKLOAD_NAME as string, namespace: md.NAMESPACE as string, cluster_id: md.CLUSTER_ID as string, labels: md.LABELS as Record<string, string> });
  const setPeer = (fs: Map<string, { value: Uint8Array; type: number; schema: Uint8Array; readonly: boolean; span: number }>, key: string, id: string, node: Uint8Array) => {
    fs.set(`wasm.${key}_id`, { value: Buffer.from(id), type: WasmType.String, schema: new Uint8Array(0), readonly: false, span: 2 });
    fs.set(`wasm.${key}`, { value: node, type: WasmType.FlatBuffers, schema: Uint8Array.of(1), readonly: false, span: 2 });
  };
  const clientSpiffe = 'spiffe://cluster.local/ns/default/sa/client';
  const serverSpiffe = 'spiffe://cluster.local/ns/default/sa/server';
  let first = true;
  repeat(N, () => {
    const c = client.connection({
      response: { flags: 0n },
      cluster_name: 'outbound|9080||server.default.svc.cluster.local',
      upstream: { uri_san_peer_certificate: serverSpiffe, uri_san_local_certificate: clientSpiffe },
    });
    const s = server.connection({
      response: { flags: 0n },
      cluster_name: 'inbound|9080||',
      connection: { mtls: true, uri_san_peer_certificate: clientSpiffe, uri_san_local_certificate: serverSpiffe },
    });
    c.newConnection();
    s.newConnection();
    // Before the in-band exchange completes, ticks report nothing.
    client.tick();
    if (first) t.equal(client.host.stats.family('istio_tcp_connections_opened_total').length, 0, 'waiting for peer metadata');
    first = false;
    setPeer(c.info.filterState, 'upstream_peer', 'server', flat(serverNodeMetadata));
    setPeer(s.info.filterState, 'downstream_peer', 'client', flat(clientNodeMetadata));
    c.downstreamData(6);
    s.downstreamData(6);
    s.upstreamData(12);
    c.upstreamData(12);
    client.tick();
    s.end();
    c.end();
  });
  const tcpLabels = (side: 'client' | 'server') => ({
    ...Object.fromEntries(ISTIO_STANDARD_LABELS.slice(0, 23).map((l) => [l, baselineLabels(side)[l]!])),
    destination_service: 'unknown',
    destination_service_name: 'unknown',
    source_principal: clientSpiffe,
    destination_principal: serverSpiffe,
    request_protocol: 'tcp',
    response_flags: '-',
    connection_security_policy: side === 'client' ? 'unknown' : 'mutual_tls',
  });
  for (const [side, sc] of [
    ['client', client],
    ['server', server],
  ] as const) {
    const samples = sc.host.stats.samples();
    const opened = sample(t, samples, 'istio_tcp_connections_opened_total');
    t.equal(opened.value, N, `${side} opened`);
    t.equal(sample(t, samples, 'istio_tcp_connections_closed_total').value, N, `${side} closed`);
    t.equal(sample(t, samples, 'istio_tcp_received_bytes_total').value, 60, `${side} received`);
    t.equal(sample(t, samples, 'istio_tcp_sent_bytes_total').value, 120, `${side} sent`);
    const want = tcpLabels(side);
    if (side === 'server') want.destination_service = want.destination_service_name = 'ratings';
    t.same(opened.labels, want, `${side} TCP label set (23 labels)`);
  }

  // TestTCPMetadataExchangeNoAlpn: the peer will never send metadata (the sentinel id).
  const server2 = await Sidecar.start(serverOptions({ mxConfig: undefined, statsConfig: cfg }));
  const s = server2.connection({ connection: { mtls: true, uri_san_peer_certificate: clientSpiffe, uri_san_local_certificate: serverSpiffe } });
  s.newConnection();
  s.info.filterState.set('wasm.downstream_peer_id', { value: Buffer.from('envoy.wasm.metadata_exchange.peer_unknown'), type: 1, schema: new Uint8Array(0), readonly: false, span: 2 });
  server2.tick();
  const opened = sample(t, server2.host.stats.samples(), 'istio_tcp_connections_opened_total');
  t.equal(opened.value, 1, 'reported on the tick: no metadata will come');
  t.equal(opened.labels.source_workload, 'unknown');
  t.equal(opened.labels.source_workload_namespace, 'unknown');
  t.equal(opened.labels.source_canonical_revision, 'latest');
  s.end();
  t.equal(sample(t, server2.host.stats.samples(), 'istio_tcp_connections_opened_total').value, 1, 'opened counted once');
  t.equal(sample(t, server2.host.stats.samples(), 'istio_tcp_connections_closed_total').value, 1);
});

void t.test('TestStatsParallel / TestStatsParserRegression: reconfiguration under traffic', async (t) => {
  const { client, server } = await pair();
  let sent = 0;
  let root = client.stats!;
  const vm = client.host.vms.find((v) => v.vmId === 'stats_outbound')!;
  for (let round = 0; round < 20; round++) {
    repeat(3, () => {
      exchange(client, server);
      sent++;
    });
    // A listener push: a new plugin configuration in the same VM replaces the old one.
    const next = vm.startPlugin({ name: 'istio.stats', rootId: 'stats_outbound', configuration: round % 2 ? '{}' : customizedClientConfig, direction: Direction.Outbound });
    t.ok(next.configured);
    root.done();
    root = next;
    client.filters[1] = next;
  }
  // Custom labels without a stats_tags regex stay in the name: count by the defined name.
  const total = client.host.stats
    .samples()
    .filter((s) => s.fullName.endsWith(';istio_requests_total') || s.fullName.endsWith(';.;istio_requests_total'))
    .reduce((n, s) => n + s.value, 0);
  t.equal(total, sent, 'every request counted exactly once across configurations');
  t.equal(sample(t, server.host.stats.samples(), 'istio_requests_total').value, sent);
});

void t.test('configuration errors: the plugin loads but reports nothing', async (t) => {
  const client = await Sidecar.start(clientOptions({ statsConfig: '{"metrics": ' }));
  t.ok(client.stats!.configured, 'on_configure returns true: a false would reject the listener');
  exchange(client, undefined);
  t.equal(client.host.stats.family('istio_requests_total').length, 0, 'no metric');
  t.ok(client.host.logs().some((l) => l.message.startsWith('cannot parse plugin configuration JSON string')));

  const odd = await Sidecar.start(clientOptions({ statsConfig: '{"tcp_reporting_duration": "soon", "metrics": {"not": "an array"}, "debug": "false", "stat_prefix": "istio"}' }));
  t.equal(odd.stats!.tickPeriodMs, 15000, 'an unparsable duration keeps the 15 s default');
  t.ok(odd.host.logs().some((l) => l.message.includes("failed to parse 'tcp_reporting_duration': soon")));
  t.ok(odd.host.logs().some((l) => l.message.includes("failed to parse 'metrics'")));
  exchange(odd, undefined);
  t.equal(odd.host.stats.family('istio_requests_total').length, 1, 'the rest of the configuration still applies');
  const ms = await Sidecar.start(clientOptions({ statsConfig: '{"tcp_reporting_duration": "1m30.5s"}' }));
  t.equal(ms.stats!.tickPeriodMs, 90500);
});

void t.test('current Envoy attribute names (xds.*) only', async (t) => {
  const client = await Sidecar.start(clientOptions({ legacyTopLevelAttributes: false }));
  const server = await Sidecar.start(serverOptions({ legacyTopLevelAttributes: false }));
  repeat(3, () => exchange(client, server));
  t.same(sample(t, client.host.stats.samples(), 'istio_requests_total').labels, baselineLabels('client'));
  t.same(sample(t, server.host.stats.samples(), 'istio_requests_total').labels, baselineLabels('server'));
});
