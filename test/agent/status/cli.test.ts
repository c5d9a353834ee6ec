// The status server through the real `pilot-agent proxy` CLI: a malformed ISTIO_KUBE_APP_PROBERS
// or ISTIO_PROMETHEUS_ANNOTATIONS is one clear error naming the variable, exit 255, before Envoy
// or any socket exists; a valid pod serves readiness and a merged scrape that promtool accepts.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { spawnCli } from '../../support/cli.js';
import { standin, standinBin, writeTestBootstrap } from '../../support/envoy-standin/index.js';
import { parsesAsText, rawGet } from '../../support/metrics.js';
import { freePorts } from '../../support/ports.js';

async function pod(env: Record<string, string>) {
  const cwd = mkdtempSync(join(tmpdir(), 'status-cli-'));
  const s = standin({ stats: { 'cluster_manager.cds.update_success': 1, 'listener_manager.lds.update_success': 1 } }, cwd);
  const [adminPort, statusPort] = await freePorts(2);
  writeTestBootstrap(join(cwd, 'etc/istio/custom/bootstrap.json'), { adminPort: adminPort! });
  const run = spawnCli(['proxy', 'sidecar'], {
    cwd,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      POD_NAME: 'app-1',
      POD_NAMESPACE: 'default',
      INSTANCE_IP: '127.0.0.1',
      CA_PROVIDER: 'local',
      ENVOY_PROMETHEUS_PORT: String(adminPort),
      PROXY_CONFIG: JSON.stringify({
        binaryPath: standinBin,
        customConfigFile: 'etc/istio/custom/bootstrap.json',
        proxyAdminPort: adminPort,
        statusPort,
        terminationDrainDuration: '1s',
        controlPlaneAuthPolicy: 'NONE',
      }),
      ...s.env,
      ...env,
    },
  });
  return { cwd, s, run, statusPort: statusPort! };
}

const errorLines = (out: string) => out.split('\n').filter((l) => /\t(error|fatal)\t/.test(l));

t.test('malformed ISTIO_KUBE_APP_PROBERS / ISTIO_PROMETHEUS_ANNOTATIONS: one error naming the variable, exit 255', async (t) => {
  const cases: [Record<string, string>, RegExp][] = [
    [
      { ISTIO_KUBE_APP_PROBERS: '{"/app-health/a/livez": {"httpGet": {"port": "http"}}}' },
      /\terror\tinvalid ISTIO_KUBE_APP_PROBERS: invalid prober config for \/app-health\/a\/livez, the port must be int type$/,
    ],
    [{ ISTIO_KUBE_APP_PROBERS: 'not json' }, /\terror\tinvalid ISTIO_KUBE_APP_PROBERS: failed to decode app prober err = /],
    [
      { ISTIO_PROMETHEUS_ANNOTATIONS: '{"scrape":"true","port":' },
      /\terror\tinvalid ISTIO_PROMETHEUS_ANNOTATIONS "\{\\"scrape\\":\\"true\\",\\"port\\":": failed to unmarshal ISTIO_PROMETHEUS_ANNOTATIONS: /,
    ],
    [{ ISTIO_PROMETHEUS_ANNOTATIONS: '{"targets":[{"port":"15090"}]}' }, /\terror\tinvalid ISTIO_PROMETHEUS_ANNOTATIONS .*target port 15090 is reserved by Istio \(Envoy Prometheus port\)$/],
  ];
  for (const [env, want] of cases) {
    const p = await pod(env);
    const r = await p.run.exited;
    t.equal(r.code, 255, JSON.stringify(env));
    const errors = errorLines(r.stdout);
    t.equal(errors.length, 1, errors.join('\n'));
    t.match(errors[0], want);
    t.same(p.s.events(), [], 'Envoy never started');
    t.notOk(existsSync(join(p.cwd, 'var/run/secrets/workload-spiffe-uds/socket')), 'no SDS socket created');
  }
});

t.test('a pod: readiness, a merged scrape promtool accepts, /quitquitquit ends it with exit 0', async (t) => {
  const p = await pod({ GRPC_XDS_BOOTSTRAP: '' });
  await p.s.waitFor('start');
  await p.run.waitFor(/Opening status port/);
  const ready = await rawGet(p.statusPort, '/healthz/ready');
  t.equal(ready.status, 200);
  const m = await rawGet(p.statusPort, '/stats/prometheus');
  t.equal(m.status, 200);
  const body = m.body.toString();
  t.match(body, /\nenvoy_cluster_manager_cds_update_success 1\n/, "Envoy's metrics");
  t.match(body, /\n# TYPE istio_agent_num_outgoing_requests counter\n/, "the SDS subsystem's metrics");
  t.ok(parsesAsText(body), 'promtool parses it');
  t.equal((await rawGet(p.statusPort, '/quitquitquit', {}, 'POST')).status, 200);
  const r = await p.run.exited;
  t.equal(r.code, 0);
  t.equal(errorLines(r.stdout).length, 0, 'no errors');
});
