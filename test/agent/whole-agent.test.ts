// The subsystems wired together in the real `pilot-agent proxy sidecar` (a VM-style agent with
// DISABLE_ENVOY, so the test drives the XDS socket itself): the VM health checker's transitions
// reach istiod as HealthInformation through the XDS proxy, and the status server's merged scrape
// carries the SDS and XDS proxies' istio_agent_* values next to its own.
import { once } from 'node:events';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { AdsConnection } from '../support/ads-client.js';
import { spawnCli } from '../support/cli.js';
import { TestControlPlane, type ReceivedRequest } from '../support/control-plane.js';
import { freePorts } from '../support/ports.js';
import { xdsEnv, xdsPodDir } from '../support/xds-agent.js';

const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const LDS = 'type.googleapis.com/envoy.config.listener.v3.Listener';
const HEALTH = 'type.googleapis.com/istio.v1.HealthInformation';

async function listen(port: number): Promise<Server> {
  const s = createServer((c) => c.destroy());
  s.listen(port, '127.0.0.1');
  await once(s, 'listening');
  return s;
}

t.test('health reports and merged metrics across the subsystems', async (t) => {
  const [appPort, statusPort, adminPort] = await freePorts(3);
  const cp = await TestControlPlane.start({ requiredToken: 'test-token' });
  t.teardown(() => cp.stop());
  let app: Server | undefined = await listen(appPort!);
  t.teardown(() => app?.close());

  const cwd = xdsPodDir(cp);
  const env = {
    ...xdsEnv(cp, {
      proxyConfig: { statusPort, proxyAdminPort: adminPort, readinessProbe: { tcpSocket: { host: '127.0.0.1', port: appPort }, periodSeconds: 1 } },
      env: { DISABLE_ENVOY: 'true', CA_PROVIDER: 'local', OUTPUT_CERTS: 'out-certs', GRPC_XDS_BOOTSTRAP: '' },
    }),
  };
  const agent = spawnCli(['proxy', 'sidecar'], { cwd, env });
  t.teardown(async () => {
    if (agent.child.exitCode === null) agent.child.kill('SIGTERM');
    await agent.exited;
  });
  await agent.waitFor(/XDS proxy listening on/);

  // A proxyless client's stream: CDS, then LDS; the health report follows the first LDS request.
  const conn = AdsConnection.connect(join(cwd, 'etc/istio/proxy/XDS'));
  t.teardown(() => conn.close());
  const s = conn.stream(false);
  t.teardown(() => s.cancel());
  await s.requestResponseAck(CDS);
  await s.requestResponseAck(LDS);
  const reports = () => cp.requests.filter((r) => r.typeUrl === HEALTH);
  const last = (): ReceivedRequest | undefined => reports().at(-1);
  await cp.until(() => last() !== undefined && !last()!.errorDetail, 10_000, 'a healthy report');
  t.ok(reports().length >= 1 && !last()!.errorDetail, 'the tcpSocket probe succeeded: istiod hears healthy');

  // The application goes away: after failureThreshold (1) failed probe, istiod hears why.
  await new Promise((r) => app!.close(r));
  app = undefined;
  await cp.until(() => last()?.errorDetail !== undefined, 10_000, 'an unhealthy report');
  t.equal(last()!.errorDetail!.code, 13, 'unhealthy: error_detail code 13');
  t.match(last()!.errorDetail!.message, /ECONNREFUSED|refused/, 'with the probe error');
  const n = reports().length;
  await new Promise((r) => setTimeout(r, 2500));
  t.equal(reports().length, n, 'transitions only: no report while the state stays the same');

  // The merged scrape: the agent's own series, the certificate metrics of the SDS side (the local
  // CA issued one), and the XDS proxy's counters for the stream above.
  const res = await request(`http://127.0.0.1:${statusPort}/stats/prometheus`);
  t.equal(res.statusCode, 200);
  const text = await res.body.text();
  t.match(text, /^istio_agent_scrapes_total \d+$/m, 'the status server’s own counter');
  const expiry = /^istio_agent_cert_expiry_seconds\{resource_name="default"\} (\S+)$/m.exec(text);
  t.ok(expiry && Number(expiry[1]) > 3600, 'the SDS side reports the certificate’s remaining lifetime');
  const requests = /^istio_agent_xds_proxy_requests (\d+)$/m.exec(text);
  t.ok(requests && Number(requests[1]) >= 4, `the XDS proxy counts the relayed requests (${requests?.[1]})`);
  t.match(text, /^istio_agent_xds_proxy_responses \d+$/m, 'and responses');

  agent.child.kill('SIGTERM');
  const r = await agent.exited;
  t.equal(r.code, 0, 'clean exit on SIGTERM');
});
