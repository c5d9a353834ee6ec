// Branches of the bootstrap that Istio's goldens do not reach: IP families, proxy protocol,
// self discovery, external SDS, tracer TLS modes, keepalive, log format, waypoints, runtime
// flags, limits, intervals — and the errors for inputs Envoy could not use. Every render is also
// checked against Envoy's schema.
import t from 'tap';
import { BootstrapError, renderBootstrap } from '../../bootstrap/index.js';
import { cluster, listener, renderChecked, testInput, type Json } from '../support/bootstrap-input.js';

const patterns = (b: Json) => b.stats_config.stats_matcher.inclusion_list.patterns as Json[];
const staticLayer = (b: Json) => b.layered_runtime.layers[0].static_layer as Json;

t.test('IP families', async (t) => {
  const v6 = renderChecked(t, testInput({ instanceIps: ['fd00::1', '2001:db8::2'] }));
  t.equal(v6.admin.address.socket_address.address, '::1', 'IPv6-only admin on ::1');
  t.ok(listener(v6, '::_15090'), 'IPv6 wildcard listener');
  t.equal(cluster(v6, 'agent')!.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address, '::1');

  const mixed = renderChecked(t, testInput({ instanceIps: ['10.0.0.1', 'fd00::1'] }));
  t.ok(listener(mixed, '0.0.0.0_15090'), 'mixed without ISTIO_DUAL_STACK is IPv4');
  t.notOk(listener(mixed, '0.0.0.0_15090')!.additionalAddresses);

  const dual = renderChecked(t, testInput({ instanceIps: ['10.0.0.1', 'fd00::1'], process: { dualStack: true } }));
  const prom = listener(dual, '0.0.0.0_15090')!;
  t.strictSame(prom.additionalAddresses, [{ address: { socket_address: { protocol: 'TCP', address: '::', port_value: 15090 } } }]);
  t.equal(listener(dual, '0.0.0.0_15021')!.additionalAddresses[0].address.socket_address.address, '::');

  const dual6 = renderChecked(t, testInput({ instanceIps: ['fd00::1', '10.0.0.1'], process: { dualStack: true }, proxyConfig: { tracing: { zipkin: { address: 'zipkin:9411' } } } }));
  t.ok(listener(dual6, '::_15021'), 'first IP decides the primary family');
  t.equal(dual6.admin.address.socket_address.address, '::1');
  t.equal(cluster(dual6, 'zipkin')!.dns_lookup_family, 'ALL');

  const localOnly = renderChecked(t, testInput({ instanceIps: ['10.0.0.1', 'fd00::1'], process: { dualStack: true }, proxyConfig: { proxyMetadata: { METRICS_LOCALHOST_ACCESS_ONLY: 'true' } } }));
  const lp = listener(localOnly, '127.0.0.1_15090')!;
  t.equal(lp.additionalAddresses[0].address.socket_address.address, '::1', 'localhost-only prometheus listener binds both loopbacks');
});

t.test('readiness listener proxy protocol', async (t) => {
  const b = renderChecked(t, testInput({ process: { statusPortProxyProtocol: true } }));
  t.strictSame(listener(b, '0.0.0.0_15021')!.listener_filters, [
    {
      name: 'envoy.listener.proxy_protocol',
      typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol', allow_requests_without_proxy_protocol: true },
    },
  ]);
});

t.test('self discovery adds local_cluster and the cluster manager entry', async (t) => {
  const b = renderChecked(t, testInput({ envs: [['ISTIO_META_ENABLE_SELF_DISCOVERY', 'true']] }));
  const lc = cluster(b, 'local_cluster')!;
  t.equal(lc.type, 'EDS');
  t.notOk(lc.load_assignment);
  t.equal(lc.load_balancing_policy.policies[0].typed_extension_config.name, 'envoy.load_balancing_policies.least_request');
  t.strictSame(b.cluster_manager, { local_cluster_name: 'local_cluster', enable_deferred_cluster_creation: true });
  t.notOk(renderChecked(t, testInput()).cluster_manager, 'no cluster_manager without a trigger');
});

t.test('external SDS: credential metadata and the files cluster', async (t) => {
  const b = renderChecked(t, testInput({ credentialSocketExists: true, customCredentialsFileExists: true, workloadIdentitySocketFile: 'ext.sock' }));
  t.equal(b.node.metadata.credential, 'true');
  t.equal(b.node.metadata['file-credential'], 'true');
  const names = (b.static_resources.clusters as Json[]).map((c) => c.name);
  t.strictSame(names, ['prometheus_stats', 'agent', 'sds-grpc', 'sds-files-grpc', 'xds-grpc']);
  t.equal(cluster(b, 'sds-files-grpc')!.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe.path, './var/run/secrets/credential-uds/files-socket');
  t.equal(cluster(b, 'sds-grpc')!.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe.path, './var/run/secrets/workload-spiffe-uds/ext.sock');
});

t.test('tracer TLS modes', async (t) => {
  const tls = (b: Json, name: string) => cluster(b, name)!.transport_socket.typed_config;
  const im = renderChecked(t, testInput({ proxyConfig: { tracing: { zipkin: { address: 'zipkin:9411' }, tlsSettings: { mode: 'ISTIO_MUTUAL' } } } }));
  const ctx = tls(im, 'zipkin');
  t.equal(ctx.sni, 'tracer', 'ISTIO_MUTUAL defaults the SNI');
  t.notOk(ctx.common_tls_context.alpn_protocols, 'no ALPN for zipkin (HTTP/1.1)');
  t.equal(ctx.common_tls_context.tls_certificate_sds_secret_configs[0].name, 'default');
  t.equal(ctx.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config.initial_fetch_timeout, '0s');
  t.equal(ctx.common_tls_context.combined_validation_context.validation_context_sds_secret_config.name, 'ROOTCA');

  const ls = renderChecked(
    t,
    testInput({ proxyConfig: { tracing: { lightstep: { address: 'ls:8080', accessToken: 'x' }, tlsSettings: { mode: 'ISTIO_MUTUAL', sni: 'custom', subjectAltNames: ['spiffe://a'] } } } }),
  );
  const lctx = tls(ls, 'lightstep');
  t.strictSame(lctx.common_tls_context.alpn_protocols, ['istio', 'h2'], 'lightstep keeps ALPN (HTTP/2)');
  t.equal(lctx.sni, 'custom');
  t.strictSame(lctx.common_tls_context.combined_validation_context.default_validation_context, { match_subject_alt_names: [{ exact: 'spiffe://a' }] });

  const mutual = renderChecked(
    t,
    testInput({
      envs: [['ISTIO_META_TLS_CLIENT_KEY', '/meta/key.pem']],
      proxyConfig: { tracing: { datadog: { address: 'dd:8126' }, tlsSettings: { mode: 'MUTUAL', clientCertificate: '/c.pem', privateKey: '/k.pem', caCertificates: '/ca.pem' } } },
    }),
  );
  const mctx = tls(mutual, 'datadog_agent');
  t.equal(mctx.common_tls_context.tls_certificate_sds_secret_configs[0].name, 'file-cert:/c.pem~/meta/key.pem', 'metadata key overrides the settings');
  t.throws(
    () => renderBootstrap(testInput({ proxyConfig: { tracing: { zipkin: { address: 'z:1' }, tlsSettings: { mode: 'SIMPLE' } } } })),
    { name: 'BootstrapError', message: /ProxyConfig tracing.tlsSettings TLS mode SIMPLE needs a CA/ },
    'no CA known: an error instead of a bootstrap Envoy rejects',
  );

  const off = renderChecked(t, testInput({ proxyConfig: { tracing: { zipkin: { address: 'zipkin:9411' }, tlsSettings: { mode: 'DISABLE' } } } }));
  t.notOk(cluster(off, 'zipkin')!.transport_socket, 'DISABLE: no transport socket');
});

t.test('metrics and access log services: TLS, keepalive as plain numbers', async (t) => {
  const b = renderChecked(
    t,
    testInput({
      proxyConfig: {
        envoyMetricsService: { address: 'ms:15000', tlsSettings: { mode: 'ISTIO_MUTUAL' }, tcpKeepalive: { probes: 3, time: 10_000, interval: 2_500 } },
        envoyAccessLogService: { address: 'als:15000', tcpKeepalive: {} },
      },
    }),
  );
  const ms = cluster(b, 'envoy_metrics_service')!;
  t.strictSame(ms.upstream_connection_options, { tcp_keepalive: { keepalive_probes: 3, keepalive_time: 10, keepalive_interval: 2 } });
  t.equal(ms.transport_socket.typed_config.sni, 'envoy_metrics_service');
  t.strictSame(ms.transport_socket.typed_config.common_tls_context.alpn_protocols, ['istio', 'h2']);
  t.strictSame(cluster(b, 'envoy_accesslog_service')!.upstream_connection_options, { tcp_keepalive: {} });
  t.equal(b.stats_sinks[0].name, 'envoy.stat_sinks.metrics_service');
});

t.test('HOST_IP replaces a $(HOST_IP) tracer host', async (t) => {
  const b = renderChecked(t, testInput({ process: { hostIp: '192.168.1.9' }, proxyConfig: { tracing: { datadog: { address: '$(HOST_IP):8126' } }, statsdUdpAddress: '$(HOST_IP):9125' } }));
  t.equal(cluster(b, 'datadog_agent')!.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address, '192.168.1.9');
  t.equal(b.stats_sinks[0].typed_config.address.socket_address.address, '192.168.1.9');
  const v6 = renderChecked(t, testInput({ proxyConfig: { tracing: { zipkin: { address: '[2001:db8::1]:9411' } } } }));
  t.equal(cluster(v6, 'zipkin')!.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address, '2001:db8::1');
});

t.test('JSON log format and xDS flavours', async (t) => {
  const b = renderChecked(t, testInput({ logAsJson: true, process: { deltaXds: false } }));
  t.strictSame(b.application_log_config.log_format.json_format, { time: '%Y-%m-%dT%T.%fZ', level: '%l', scope: 'envoy %n', msg: '%j', caller: '%g:%#', thread: '%t' });
  t.equal(b.dynamic_resources.ads_config.api_type, 'GRPC');

  const warnings: string[] = [];
  const sotw = renderChecked(t, testInput({ metadataDiscovery: true, process: { deltaXds: false }, warn: (m) => warnings.push(m) }));
  t.equal(sotw.bootstrap_extensions.length, 1, 'metadata discovery needs delta xDS');
  t.match(warnings, [/not supported on SotW/]);

  const wp = renderChecked(t, testInput({ nodeId: 'waypoint~10.0.0.1~wp.ns~ns.svc.cluster.local', process: { deltaXds: false } }));
  t.equal(wp.dynamic_resources.ads_config.api_type, 'DELTA_GRPC', 'waypoints always use delta');
  t.equal(wp.bootstrap_extensions[0].name, 'metadata_discovery');
  t.equal(patterns(wp)[1]!.prefix, 'workload_discovery');

  const off = renderChecked(t, testInput({ metadataDiscovery: false, envs: [['ISTIO_META_ENABLE_HBONE', 'true']] }));
  t.equal(off.node.metadata.METADATA_DISCOVERY, 'false', 'PEER_METADATA_DISCOVERY=false wins over ENABLE_HBONE');
  t.equal(off.bootstrap_extensions.length, 1);
});

t.test('runtime flags', async (t) => {
  const b = renderChecked(
    t,
    testInput({ compliancePolicy: 'fips-140-2', process: { stripFragmentFromPath: false }, proxyConfig: { runtimeValues: { 're2.max_program_size.error_level': '', a: 'false', b: '7' } } }),
  );
  const l = staticLayer(b);
  t.equal(l['envoy.reloadable_features.google_grpc_disable_tls_13'], true);
  t.equal(l['envoy.reloadable_features.http_strip_fragment_from_path_unsafe_if_disabled'], 'false', 'the string "false", as Istio writes it');
  t.notOk('re2.max_program_size.error_level' in l, 'an empty value removes a default');
  t.equal(l.a, false);
  t.equal(l.b, '7');
  t.notOk('envoy.reloadable_features.google_grpc_disable_tls_13' in staticLayer(renderChecked(t, testInput({ compliancePolicy: 'fips-140-3' }))), 'only 140-2 caps TLS');
});

t.test('global downstream connection limit precedence and bad values', async (t) => {
  const limit = (b: Json) => b.overload_manager.resource_monitors[0].typed_config.max_active_downstream_connections;
  t.equal(limit(renderChecked(t, testInput())), 2147483647);
  const all = {
    connectionSettings: { globalDownstreamConnectionLimit: 7 },
    proxyMetadata: { ISTIO_META_GLOBAL_DOWNSTREAM_MAX_CONNECTIONS: '8' },
    runtimeValues: { 'overload.global_downstream_max_connections': '9' },
  };
  t.equal(limit(renderChecked(t, testInput({ proxyConfig: all }))), 7);
  t.equal(limit(renderChecked(t, testInput({ proxyConfig: { ...all, connectionSettings: { globalDownstreamConnectionLimit: 0 } } }))), 8, '0 means unset');
  t.equal(limit(renderChecked(t, testInput({ proxyConfig: { runtimeValues: all.runtimeValues } }))), 9);
  t.throws(() => renderBootstrap(testInput({ proxyConfig: { proxyMetadata: { ISTIO_META_GLOBAL_DOWNSTREAM_MAX_CONNECTIONS: 'lots' } } })), {
    name: 'BootstrapError',
    message: /ISTIO_META_GLOBAL_DOWNSTREAM_MAX_CONNECTIONS "lots": want a positive integer/,
  });
  t.throws(() => renderBootstrap(testInput({ proxyConfig: { connectionSettings: { globalDownstreamConnectionLimit: 'x' } } })), /connectionSettings.globalDownstreamConnectionLimit "x"/);
});

t.test('stats: matcher sources, {pod_ip}, drain suffix, compression, histogram and intervals', async (t) => {
  const pc = renderChecked(
    t,
    testInput({
      instanceIps: ['10.0.0.1', '10.0.0.2', '10.0.0.1'],
      exitOnZeroActiveConnections: true,
      proxyConfig: { proxyStatsMatcher: { inclusionPrefixes: ['http.{pod_ip}_', ''], inclusionRegexps: ['.*circuit_breakers.*'] }, statsCompression: false },
    }),
  );
  const p = patterns(pc);
  t.strictSame(p.slice(0, 3), [{ prefix: 'reporter=' }, { prefix: 'http.10.0.0.1_' }, { prefix: 'http.10.0.0.2_' }], 'ProxyConfig prefixes, {pod_ip} per unique IP, empty items dropped');
  t.ok(
    p.some((x) => x.suffix === 'downstream_cx_active'),
    'exit-on-zero-connections needs downstream_cx_active',
  );
  t.ok(p.some((x) => x.safe_regex?.regex === '.*circuit_breakers.*'));
  t.strictSame(
    listener(pc, '0.0.0.0_15090')!.filter_chains[0].filters[0].typed_config.http_filters.map((f: Json) => f.name),
    ['envoy.filters.http.router'],
    'statsCompression false: no compressors',
  );

  const ann = renderChecked(t, testInput({ podAnnotations: new Map([['sidecar.istio.io/statsInclusionPrefixes', 'a']]), proxyConfig: { proxyStatsMatcher: { inclusionPrefixes: ['b'] } } }));
  t.equal(patterns(ann)[1]!.prefix, 'a', 'the annotation replaces ProxyConfig');

  const warnings: string[] = [];
  const hist = renderChecked(
    t,
    testInput({
      warn: (m) => warnings.push(m),
      podAnnotations: new Map([
        ['sidecar.istio.io/statsHistogramBuckets', '{"z":[1,2],"a":[0.5],"bad":[-1],"empty":[]}'],
        ['sidecar.istio.io/statsFlushInterval', '1m30s'],
        ['sidecar.istio.io/statsEvictionInterval', '3m'],
        ['sidecar.istio.io/extraStatTags', 'x.y,,x.y,z'],
      ]),
    }),
  );
  t.strictSame(hist.stats_config.histogram_bucket_settings, [
    { match: { prefix: 'a' }, buckets: [0.5] },
    { match: { prefix: 'z' }, buckets: [1, 2] },
  ]);
  t.equal(warnings.filter((w) => /histogram/.test(w)).length, 2, 'invalid bucket lists are dropped with a warning');
  t.equal(hist.stats_flush_interval, '90s', 'ProtoJSON duration, not Go\'s "1m30s"');
  t.equal(hist.stats_eviction_interval, '180s');
  t.strictSame(
    (hist.stats_config.stats_tags as Json[]).filter((x) => /^x|^z$/.test(x.tag_name)),
    [
      { tag_name: 'x.y', regex: '(x\\.y=\\.=(.*?);\\.;)' },
      { tag_name: 'z', regex: '(z=\\.=(.*?);\\.;)' },
    ],
    'extra tags de-duplicated, empty dropped, names matched literally',
  );

  const w2: string[] = [];
  const bad = renderChecked(
    t,
    testInput({
      warn: (m) => w2.push(m),
      podAnnotations: new Map([
        ['sidecar.istio.io/statsFlushInterval', '10m'],
        ['sidecar.istio.io/statsEvictionInterval', '7s'],
        ['sidecar.istio.io/statsHistogramBuckets', '{not json'],
      ]),
    }),
  );
  t.notOk(bad.stats_flush_interval, 'a flush interval Envoy would reject is left out');
  t.notOk(bad.stats_eviction_interval, 'eviction must be a multiple of the flush interval');
  t.notOk(bad.stats_config.histogram_bucket_settings);
  t.equal(w2.length, 3);
  const zero = renderChecked(
    t,
    testInput({
      podAnnotations: new Map([
        ['sidecar.istio.io/statsFlushInterval', '0s'],
        ['sidecar.istio.io/statsEvictionInterval', '10s'],
      ]),
    }),
  );
  t.notOk(zero.stats_eviction_interval, 'a zero flush interval does not crash the eviction check');
});

t.test('LRS config from metadata', async (t) => {
  const b = renderChecked(
    t,
    testInput({ envs: [['ISTIO_META_LOAD_STATS_CONFIG_JSON', '{"api_type":"GRPC","transport_api_version":"V3","grpc_services":[{"envoy_grpc":{"cluster_name":"xds-grpc"}}]}']] }),
  );
  t.equal(b.cluster_manager.load_stats_config.api_type, 'GRPC');
  t.throws(() => renderBootstrap(testInput({ envs: [['ISTIO_META_LOAD_STATS_CONFIG_JSON', '{"api_type":']] })), { name: 'BootstrapError', message: /ISTIO_META_LOAD_STATS_CONFIG_JSON/ });
});

t.test('Stackdriver and OpenCensus tracers', async (t) => {
  t.throws(() => renderBootstrap(testInput({ proxyConfig: { tracing: { stackdriver: {} } } })), { name: 'BootstrapError', message: /missing GCP Project/ });
  const sd = renderChecked(t, testInput({ platform: { name: 'gcp', metadata: { gcp_project: 'p' }, locality: {}, labels: {}, isKubernetes: true }, proxyConfig: { tracing: { stackdriver: {} } } }));
  t.notOk(sd.tracing, 'no bootstrap tracer for Stackdriver (configured over xDS)');
  t.notOk(renderChecked(t, testInput({ proxyConfig: { tracing: { openCensusAgent: { address: 'oc:55678' } } } })).tracing);
});

t.test('bad inputs: one clear error each', async (t) => {
  const cases: [string, Parameters<typeof testInput>[0], RegExp][] = [
    [
      'unknown tracer',
      { proxyConfig: { tracing: { jaeger: { address: 'j:1' } } as never } },
      /unknown tracer "jaeger" in ProxyConfig tracing; supported tracers: zipkin, lightstep, datadog, stackdriver, openCensusAgent/,
    ],
    ['address without port', { proxyConfig: { tracing: { zipkin: { address: 'zipkin' } } } }, /zipkin tracer address "zipkin": want host:port/],
    ['bad port', { proxyConfig: { statsdUdpAddress: 'statsd:abc' } }, /statsd address "statsd:abc": port "abc"/],
    ['unbracketed IPv6', { proxyConfig: { envoyMetricsService: { address: '2001:db8::1:9000' } } }, /ProxyConfig envoyMetricsService address/],
    ['DNS_CAPTURE=yes', { envs: [['ISTIO_META_DNS_CAPTURE', 'yes']] }, /invalid node metadata DNS_CAPTURE: expected a boolean string/],
    ['LABELS of the wrong type', { envs: [['ISTIO_METAJSON_X', '{"LABELS":"app=x"}']] }, /invalid node metadata LABELS: expected an object of strings, got string "app=x"/],
    ['case-insensitive key', { envs: [['ISTIO_METAJSON_X', '{"envoy_status_port":"15021"}']] }, /envoy_status_port \(matches ENVOY_STATUS_PORT\): expected an integer/],
  ];
  for (const [name, o, re] of cases) t.throws(() => renderBootstrap(testInput(o)), { name: 'BootstrapError', message: re }, name);
  t.type(new BootstrapError('x'), Error);
});
