// Node metadata assembly: the raw/typed merge, Istio's observable oddities, labels and locality,
// node.cluster, and platform metadata from the environment.
import t from 'tap';
import { buildNodeMetadata, platformFromEnv, renderBootstrap, serviceCluster } from '../../bootstrap/index.js';
import { renderChecked, testInput } from '../support/bootstrap-input.js';

t.test('raw and typed views', async (t) => {
  const { json } = buildNodeMetadata(
    testInput({
      proxyConfig: { proxyMetadata: { ISTIO_META_MESH_ID: 'from-pc', ISTIO_META_FOO: 'pc', OTHER: 'x' } },
      envs: [
        ['ISTIO_META_FOO', 'env'],
        ['ISTIO_META_DNS_CAPTURE', 'false'],
        ['ISTIO_METAJSON_ANYTHING', '{"nested":{"a":1},"n":2}'],
        ['ISTIO_METAJSON_BROKEN', '{'],
        ['ISTIO_META_ISTIO_VERSION', '1.99.0'],
        ['SERVICE_ACCOUNT', 'sa'],
      ],
      dnsProxyAddr: 'localhost:15053',
      stsPort: 15463,
      instanceIps: ['10.0.0.1', '10.0.0.2', '10.0.0.1'],
    }),
  );
  t.equal(json.MESH_ID, 'from-pc', 'proxyMetadata ISTIO_META_* become metadata');
  t.equal(json.FOO, 'env', 'the environment wins over proxyMetadata');
  t.notOk('OTHER' in json);
  t.equal(json.DNS_CAPTURE, 'false', 'a false string-bool comes back from the raw view');
  t.strictSame(json.nested, { a: 1 }, 'ISTIO_METAJSON_* merge at the top level with JSON types');
  t.equal(json.n, 2);
  t.equal(json.ISTIO_VERSION, '1.99.0', 'ISTIO_META_ISTIO_VERSION overrides the binary version');
  t.equal(json.DNS_PROXY_ADDR, 'localhost:15053');
  t.equal(json.STS_PORT, '15463');
  t.equal(json.SERVICE_ACCOUNT, 'sa');
  t.equal(json.INSTANCE_IPS, '10.0.0.1,10.0.0.2', 'instance IPs de-duplicated, comma-joined');
  t.equal(json.ENVOY_SKIP_DEPRECATED_LOGS, 'true');
  t.equal(json.METADATA_DISCOVERY, 'false', 'always present');
  t.strictSame(json.PILOT_SAN, ['istiod.istio-system.svc']);
  t.equal(buildNodeMetadata(testInput()).json.ISTIO_VERSION, '1.32.0', 'the binary version otherwise');
});

t.test('agent-owned keys overwrite ISTIO_META_ values', async (t) => {
  const { json } = buildNodeMetadata(
    testInput({
      envs: [
        ['ISTIO_META_WORKLOAD_IDENTITY_SOCKET_FILE', 'x'],
        ['ISTIO_META_EXIT_ON_ZERO_ACTIVE_CONNECTIONS', 'true'],
      ],
    }),
  );
  t.equal(json.WORKLOAD_IDENTITY_SOCKET_FILE, 'socket');
  t.equal(json.EXIT_ON_ZERO_ACTIVE_CONNECTIONS, 'true', "Istio's merge: the agent's false is omitted, so the raw ISTIO_META_ value shows through");
});

t.test('keys match typed fields case-insensitively, as Go decodes them', async (t) => {
  const { json, typed } = buildNodeMetadata(testInput({ envs: [['ISTIO_METAJSON_LABELS', '{"network":"n1","app":"a"}']] }));
  t.equal(typed.NETWORK, 'n1', 'a label named "network" sets NETWORK (through the top-level merge)');
  t.equal(json.NETWORK, 'n1');
  t.equal(json.network, 'n1', 'and stays as a raw key');
});

t.test('LABELS/STATIC_LABELS aliasing and the locality rewrite', async (t) => {
  const meta = buildNodeMetadata(testInput({ envs: [['ISTIO_METAJSON_LABELS', '{"istio-locality":"r.z.s","app":"x"}']] }));
  t.strictSame(meta.json.LABELS, { 'istio-locality': 'r/z/s', app: 'x' });
  t.strictSame(meta.json.STATIC_LABELS, { 'istio-locality': 'r/z/s', app: 'x' }, 'the rewrite shows in STATIC_LABELS too');
  t.equal(meta.json['istio-locality'], 'r.z.s', 'the top-level raw copy keeps the original');
  t.strictSame(meta.locality, { region: 'r', zone: 'z', sub_zone: 's' });

  const file = buildNodeMetadata(
    testInput({
      envs: [['ISTIO_METAJSON_LABELS', '{"app":"old","keep":"1"}']],
      podLabels: new Map([
        ['app', 'new'],
        ['pod-template-hash', 'abc'],
        ['topology.istio.io/locality', 'region1/zone1'],
      ]),
    }),
  );
  t.strictSame(file.json.LABELS, { app: 'new', keep: '1', 'topology.istio.io/locality': 'region1/zone1', 'istio-locality': 'region1/zone1' }, 'file labels win; pod-template-hash skipped');
  t.strictSame(file.json.STATIC_LABELS, { app: 'old', keep: '1' }, 'the labels file breaks the aliasing');
  t.strictSame(file.locality, { region: 'region1', zone: 'zone1' });
});

t.test('platform: metadata, locality fallback, instance labels off Kubernetes', async (t) => {
  const vm = buildNodeMetadata(
    testInput({ platform: { name: 'aws', metadata: { aws_region: 'us-east-1' }, locality: { region: 'us-east-1', zone: 'us-east-1a' }, labels: { team: 'x' }, isKubernetes: false } }),
  );
  t.strictSame(vm.json.PLATFORM_METADATA, { aws_region: 'us-east-1' });
  t.strictSame(vm.locality, { region: 'us-east-1', zone: 'us-east-1a' });
  t.strictSame(vm.json.STATIC_LABELS, { team: 'x' });
  const labelled = buildNodeMetadata(testInput({ podLabels: new Map([['istio-locality', 'a']]), platform: { name: 'aws', metadata: {}, locality: { region: 'p' }, labels: {}, isKubernetes: true } }));
  t.strictSame(labelled.locality, { region: 'a' }, 'a locality label beats the platform');

  const gcp = platformFromEnv({ CLOUD_PLATFORM: '', GCP_METADATA: 'proj|123|c1|us-central1', GCP_ZONE: 'us-central1-b', GCP_QUOTA_PROJECT: 'q' });
  t.strictSame(gcp.metadata, {
    gcp_project: 'proj',
    gcp_project_number: '123',
    gcp_gke_cluster_name: 'c1',
    gcp_location: 'us-central1',
    gcp_gke_cluster_url: 'https://container.googleapis.com/v1/projects/proj/locations/us-central1/clusters/c1',
    gcp_quota_project: 'q',
    gcp_zone: 'us-central1-b',
  });
  t.strictSame(gcp.locality, { zone: 'us-central1-b', region: 'us-central1' });
  t.equal(platformFromEnv({ CLOUD_PLATFORM: 'none', GCP_METADATA: 'a|b|c|d', GCP_ZONE: '', GCP_QUOTA_PROJECT: '' }).name, 'unknown', 'CLOUD_PLATFORM=none');
  const warnings: string[] = [];
  t.equal(platformFromEnv({ CLOUD_PLATFORM: '', GCP_METADATA: 'a|b', GCP_ZONE: '', GCP_QUOTA_PROJECT: '' }, (m) => warnings.push(m)).name, 'unknown');
  t.match(warnings, [/GCP_METADATA/]);
  const b = renderChecked(t, testInput({ platform: gcp }));
  t.strictSame(b.node.locality, { region: 'us-central1', zone: 'us-central1-b' });
});

t.test('node.cluster', async (t) => {
  const meta = (labels: Record<string, string>, extra: Record<string, string> = {}) => ({ LABELS: labels, NAMESPACE: 'ns', ...extra });
  const pc = (o: object) => ({ ...testInput().proxyConfig, serviceCluster: undefined, ...o });
  t.equal(serviceCluster(pc({ serviceCluster: 'custom' }), meta({ app: 'a' })), 'custom');
  t.equal(serviceCluster(pc({ serviceCluster: 'istio-proxy' }), meta({ app: 'a' })), 'a.ns');
  t.equal(serviceCluster(pc({ serviceCluster: 'istio-proxy' }), meta({ 'app.kubernetes.io/name': 'k' })), 'k.ns');
  t.equal(serviceCluster(pc({ serviceCluster: 'istio-proxy' }), meta({}, { WORKLOAD_NAME: 'w' })), 'w.ns');
  t.equal(serviceCluster(pc({ serviceCluster: 'istio-proxy' }), meta({})), 'istio-proxy.ns');
  t.equal(serviceCluster(pc({}), {}), 'istio-proxy');
  const canonical = { 'service.istio.io/canonical-name': 'canon', app: 'a' };
  t.equal(serviceCluster(pc({ tracingServiceName: 'CANONICAL_NAME_ONLY' }), meta(canonical)), 'canon');
  t.equal(serviceCluster(pc({ tracingServiceName: 'CANONICAL_NAME_AND_NAMESPACE' }), meta(canonical)), 'canon.ns');
  t.equal(serviceCluster(pc({ tracingServiceName: 'APP_LABEL_AND_NAMESPACE' }), meta(canonical)), 'a.ns');
  const b = renderChecked(
    t,
    testInput({ proxyConfig: { serviceCluster: undefined, tracingServiceName: 'CANONICAL_NAME_AND_NAMESPACE', tracing: { datadog: { address: 'dd:1' } } }, podLabels: new Map([['app', 'web']]) }),
  );
  t.equal(b.node.cluster, 'web.shop');
  t.equal(b.tracing.http.typed_config.service_name, 'web.shop', 'Datadog service name is node.cluster');
});

t.test('quotes, backslashes, newlines and non-ASCII stay data', async (t) => {
  const nasty = 'a"b\\c\n\u2028d\u00e9\u{1F600}</x>';
  const b = renderChecked(t, testInput({ nodeId: `sidecar~10.0.0.1~${nasty}~d`, envs: [['ISTIO_META_X', nasty]], podAnnotations: new Map([[nasty, nasty]]) }));
  t.equal(b.node.id, `sidecar~10.0.0.1~${nasty}~d`);
  t.equal(b.node.metadata.X, nasty);
  t.equal(b.node.metadata.ANNOTATIONS[nasty], nasty);
  t.doesNotThrow(() => renderBootstrap(testInput({ envs: [['ISTIO_METAJSON_LABELS', '{"__proto__":"x","constructor":"y"}']] })), 'prototype-looking keys are plain data');
  const proto = buildNodeMetadata(testInput({ envs: [['ISTIO_METAJSON_LABELS', '{"__proto__":"x"}']] }));
  t.equal(Object.getOwnPropertyDescriptor(proto.json.LABELS, '__proto__')?.value, 'x');
});
