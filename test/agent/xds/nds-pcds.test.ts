// The types the agent consumes instead of Envoy (Istio's pkg/istio-agent/xds_proxy.go): NDS with
// the DNS proxy on, PCDS with PROXY_CONFIG_XDS_AGENT — subscribed after the first LDS request
// (LDS, NDS, PCDS, then health), applied, ACKed upstream by the agent (NACKed with INTERNAL when
// they do not apply), never forwarded to Envoy; empty responses ignored. Other responses: Envoy
// types and istio.workload.Workload are forwarded, anything else is dropped with an error log.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadProtoRoot, PROJECT_PROTOS_DIR } from '../../../agent/protos.js';
import { configureLogging } from '../../../lib/log.js';
import { AdsConnection } from '../../support/ads-client.js';
import { envoyResource, rawResource, TestControlPlane } from '../../support/control-plane.js';
import { until } from '../../support/security-env.js';
import { xdsPod } from '../../support/xds-agent.js';

const logFile = join(mkdtempSync(join(tmpdir(), 'xds-types-log-')), 'agent.log');
configureLogging({ targets: [logFile], outputLevels: 'default:info' });
const logText = () => readFileSync(logFile, 'utf8');

const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const LDS = 'type.googleapis.com/envoy.config.listener.v3.Listener';
const NDS = 'type.googleapis.com/istio.networking.nds.v1.NameTable';
const PCDS = 'type.googleapis.com/istio.mesh.v1alpha1.ProxyConfig';
const HEALTH = 'type.googleapis.com/istio.v1.HealthInformation';

const protos = await loadProtoRoot(['istio/networking/nds/v1/nds.proto', 'istio/mesh/v1alpha1/proxy.proto'], [PROJECT_PROTOS_DIR]);
const encode = (type: string, body: object) => {
  const T = protos.lookupType(type);
  return T.encode(T.fromObject(body)).finish();
};
const table = {
  table: {
    'reviews.default.svc.cluster.local': { ips: ['10.96.0.12'], registry: 'Kubernetes', shortname: 'reviews', namespace: 'default' },
    'api.example.com': { ips: ['240.240.0.1', '2001:2::1'], registry: 'External' },
  },
};

for (const delta of [false, true]) {
  const flavour = delta ? 'delta' : 'SotW';
  t.test(`NDS and PCDS: subscribed after the first LDS, consumed and ACKed by the agent, never forwarded (${flavour})`, async (t) => {
    const cp = await TestControlPlane.start();
    t.teardown(() => cp.stop());
    cp.set(NDS, [rawResource(NDS, '', encode('istio.networking.nds.v1.NameTable', table))]);
    const anchors: string[][] = [];
    const pod = await xdsPod(cp, {
      env: { ISTIO_META_DNS_CAPTURE: 'true', PROXY_CONFIG_XDS_AGENT: 'true' },
      deps: { trustBundle: async (pems) => void anchors.push(pems) },
    });
    t.teardown(pod.stop);
    const tables: unknown[] = [];
    pod.xds.onNameTable((nt) => tables.push(nt));
    pod.xds.sendHealth({ healthy: true });
    const conn = AdsConnection.connect(pod.socket);
    t.teardown(() => conn.close());
    const s = conn.stream(delta);
    await s.requestResponseAck(CDS);
    t.same(
      cp.requests.filter((r) => r.typeUrl === NDS),
      [],
      'no NDS subscription before LDS',
    );
    await s.requestResponseAck(LDS);

    // The agent's own requests follow Envoy's first LDS request, in Istio's order.
    await cp.until(() => cp.requests.some((r) => r.typeUrl === HEALTH), 5000, 'initial agent requests');
    const firstLds = cp.requests.findIndex((r) => r.typeUrl === LDS);
    t.same(
      cp.requests.slice(firstLds, firstLds + 4).map((r) => [r.typeUrl, r.nonce]),
      [
        [LDS, ''],
        [NDS, ''],
        [PCDS, ''],
        [HEALTH, ''],
      ],
      'LDS, then NDS, PCDS and the health report',
    );

    // NDS: applied and ACKed with the response's version and nonce.
    const ndsAck = await cp.request((r) => r.typeUrl === NDS && r.nonce !== '');
    t.notOk(ndsAck.errorDetail, 'NDS ACKed');
    if (!delta) t.equal(ndsAck.versionInfo, 'v1', 'SotW ACK carries the version');
    else t.equal(ndsAck.versionInfo, '', 'delta ACK has no version');
    t.same(pod.xds.nameTable, table, 'the name table is kept for the DNS proxy');
    t.same(tables, [table], 'listeners told');
    // PCDS answered with nothing yet: ignored, no ACK.
    await new Promise((r) => setTimeout(r, 200));
    t.same(
      cp.requests.filter((r) => r.typeUrl === PCDS && r.nonce !== ''),
      [],
      'an empty PCDS response is ignored (no ACK)',
    );

    // PCDS: trust anchors to the secret manager, then ACK.
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    cp.set(PCDS, [rawResource(PCDS, '', encode('istio.mesh.v1alpha1.ProxyConfig', { ca_certificates_pem: [pem] }))]);
    const pcdsAck = await cp.request((r) => r.typeUrl === PCDS && r.nonce !== '');
    t.notOk(pcdsAck.errorDetail, 'PCDS ACKed');
    t.same(anchors, [[pem]], 'trust anchors handed to the secret manager');

    // A name table that does not decode: NACK with INTERNAL, the old table kept.
    cp.set(NDS, [rawResource(NDS, '', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))]);
    const nack = await cp.request((r) => r.typeUrl === NDS && !!r.errorDetail);
    t.equal(nack.errorDetail?.code, 13, 'NACK with code 13 (INTERNAL)');
    t.match(nack.errorDetail?.message, /\S/, `with the decode error: ${nack.errorDetail?.message}`);
    t.same(pod.xds.nameTable, table, 'the last good table stays');

    t.ok(await s.nothingWithin(300), 'Envoy never received an NDS or PCDS response');
    t.equal(pod.xds.metricsState.responses >= 5, true, 'agent-handled responses count as proxy responses');
  });
}

t.test('without the DNS proxy there is no NDS subscription, and an NDS push is dropped with an error, not forwarded', async (t) => {
  const cp = await TestControlPlane.start();
  t.teardown(() => cp.stop());
  const pod = await xdsPod(cp);
  t.teardown(pod.stop);
  const conn = AdsConnection.connect(pod.socket);
  t.teardown(() => conn.close());
  const s = conn.stream();
  await s.requestResponseAck(CDS);
  await s.requestResponseAck(LDS);
  await new Promise((r) => setTimeout(r, 200));
  t.same(
    cp.requests.filter((r) => r.typeUrl !== CDS && r.typeUrl !== LDS),
    [],
    'only Envoy’s requests upstream',
  );
  cp.pushRaw({ type_url: NDS, version_info: 'v9', nonce: 'x1', resources: [rawResource(NDS, '', encode('istio.networking.nds.v1.NameTable', table)).any] });
  cp.pushRaw({ type_url: 'type.googleapis.com/istio.security.Authorization', version_info: 'v1', nonce: 'x2', resources: [] });
  cp.pushRaw({ type_url: 'type.googleapis.com/istio.workload.Workload', version_info: 'v1', nonce: 'x3', resources: [] });
  const wl = await s.next();
  t.equal(wl.typeUrl, 'type.googleapis.com/istio.workload.Workload', 'istio.workload.Workload is forwarded');
  t.ok(await s.nothingWithin(300), 'NDS and other non-Envoy types are not');
  await until(() => logText().includes('Authorization to Envoy'), 2000, 'log');
  t.match(logText(), /\terror\txdsproxy\tSkipping forwarding type url type\.googleapis\.com\/istio\.networking\.nds\.v1\.NameTable to Envoy as is not a valid Envoy type/);
  t.match(logText(), /Skipping forwarding type url type\.googleapis\.com\/istio\.security\.Authorization to Envoy/);
});

t.test('every Envoy type is forwarded byte for byte', async (t) => {
  const cp = await TestControlPlane.start();
  t.teardown(() => cp.stop());
  const ecds = 'type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig';
  const pod = await xdsPod(cp);
  t.teardown(pod.stop);
  const conn = AdsConnection.connect(pod.socket);
  t.teardown(() => conn.close());
  const s = conn.stream(true);
  const cluster = envoyResource('envoy.config.cluster.v3.Cluster', 'big', { name: 'big', type: 'EDS', alt_stat_name: 'x'.repeat(200_000) });
  cp.set(CDS, [cluster]);
  const cds = await s.requestResponseAck(CDS);
  t.same(Buffer.from(cds.resources[0]!.value), Buffer.from(cluster.any.value), 'a 200 KB resource arrives intact');
  cp.pushRaw({ type_url: ecds, system_version_info: 'v1', nonce: 'e1', resources: [] });
  t.equal((await s.next()).typeUrl, ecds, 'ECDS forwarded as it is (no Wasm conversion)');
});
