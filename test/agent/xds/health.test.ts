// Port of Istio's TestXdsProxyHealthCheck (pkg/istio-agent/xds_proxy_test.go), for both API
// flavours: health reports (from the VM health checker, injected here) reach istiod as
// HealthInformation requests — healthy, or with error_detail {code 13, message} — are held back
// until the stream's first LDS request, are sent at once on a live stream, and the last one is
// re-sent after the first LDS request of every new stream, also when it changed while Envoy was
// disconnected.
import t from 'tap';
import { AdsConnection, type AdsStream } from '../../support/ads-client.js';
import { TestControlPlane, type ReceivedRequest } from '../../support/control-plane.js';
import { xdsPod } from '../../support/xds-agent.js';

const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const LDS = 'type.googleapis.com/envoy.config.listener.v3.Listener';
const HEALTH = 'type.googleapis.com/istio.v1.HealthInformation';

const healthy = { healthy: true };
const unhealthy = { healthy: false, message: 'Get "http://10.1.1.1:8080/ready": dial tcp 10.1.1.1:8080: connect: connection refused' };

for (const delta of [false, true]) {
  t.test(`TestXdsProxyHealthCheck (${delta ? 'delta' : 'SotW'})`, async (t) => {
    const cp = await TestControlPlane.start();
    t.teardown(() => cp.stop());
    const pod = await xdsPod(cp);
    t.teardown(pod.stop);
    const reports = () => cp.requests.filter((r) => r.typeUrl === HEALTH);
    /** istiod's view of the workload: the last report's condition (as istiod sets the WorkloadEntry's). */
    const condition = (r: ReceivedRequest | undefined) => (r === undefined ? '' : r.errorDetail ? `False: ${r.errorDetail.code} ${r.errorDetail.message}` : 'True');
    const expectCondition = async (want: string, what: string) => {
      await cp.until(() => condition(reports().at(-1)) === want, 5000, `condition ${want}`);
      t.equal(condition(reports().at(-1)), want, what);
    };
    const connect = async () => {
      const conn = AdsConnection.connect(pod.socket);
      const s = conn.stream(delta);
      await s.requestResponseAck(CDS);
      await s.requestResponseAck(LDS);
      return { conn, s };
    };
    const disconnect = async (c: { conn: AdsConnection; s: AdsStream }) => {
      c.s.cancel();
      c.conn.close();
      await cp.until(() => cp.liveStreams === 0 && pod.xds.metricsState.envoyTerminations.cancelled + pod.xds.metricsState.envoyTerminations.error > 0, 5000, 'disconnect');
    };

    // Send CDS before the health check (Istio: to get the WorkloadEntry registered).
    let conn = AdsConnection.connect(pod.socket);
    let s = conn.stream(delta);
    await s.requestResponseAck(CDS);

    // A report before LDS is not sent; neither is one Envoy itself sends.
    pod.xds.sendHealth(healthy);
    s.send({ type_url: HEALTH });
    await new Promise((r) => setTimeout(r, 300));
    t.same(reports(), [], 'nothing reaches istiod before the first LDS request');

    // After LDS, the cached report follows it.
    await s.requestResponseAck(LDS);
    await expectCondition('True', 'the cached report is sent after the first LDS request');
    const ldsAt = cp.requests.findIndex((r) => r.typeUrl === LDS);
    t.ok(cp.requests.indexOf(reports()[0]!) > ldsAt, 'after the LDS request, not before');
    t.equal(reports()[0]!.delta, delta, 'in the stream’s flavour');

    // Flip status back and forth, ensure istiod sees each.
    pod.xds.sendHealth(healthy);
    await expectCondition('True', 'healthy');
    pod.xds.sendHealth(unhealthy);
    await expectCondition(`False: 13 ${unhealthy.message}`, 'unhealthy: error_detail code 13 (INTERNAL) with the probe error');
    pod.xds.sendHealth(healthy);
    await expectCondition('True', 'healthy again');
    const count = reports().length;
    t.equal(count, 4, 'one request per report');

    // Completely disconnect; on reconnect the old status is re-sent after LDS.
    await disconnect({ conn, s });
    ({ conn, s } = await connect());
    await cp.until(() => reports().length === count + 1, 5000, 'report re-sent');
    t.equal(reports().at(-1)!.stream, cp.streams.at(-1)!.id, 'the old status is re-sent on the new stream');
    await expectCondition('True', 'old status remains');
    pod.xds.sendHealth(unhealthy);
    await expectCondition(`False: 13 ${unhealthy.message}`, 'still updated on the new stream');

    // A new report while disconnected is the one sent on reconnect.
    await disconnect({ conn, s });
    pod.xds.sendHealth(healthy);
    await new Promise((r) => setTimeout(r, 100));
    t.equal(condition(reports().at(-1)), `False: 13 ${unhealthy.message}`, 'nothing sent while disconnected');
    ({ conn, s } = await connect());
    await expectCondition('True', 'the update made while disconnected persists');
    pod.xds.sendHealth(unhealthy);
    await expectCondition(`False: 13 ${unhealthy.message}`, 'more updates honoured');
    pod.xds.sendHealth(healthy);
    await expectCondition('True', 'and back');
    s.cancel();
    conn.close();
  });
}
