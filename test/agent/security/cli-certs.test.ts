// `pilot-agent proxy` as a process: the embedded local CA (what `npm start` runs) serving SDS
// and OUTPUT_CERTS, and the start-up failures with Istio's messages and exit codes.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseCertificate, spiffeIds } from '../../../agent/security/index.js';
import { runCliToEnd, spawnCli } from '../../support/cli.js';
import { chainOf, SdsTestClient } from '../../support/sds-client.js';
import { until, workloadFor } from '../../support/security-env.js';

t.test('CA_PROVIDER=local: a root created on first use, SDS served, OUTPUT_CERTS written; the root is reused', async (t) => {
  const wl = workloadFor(undefined, {
    ns: 'dev',
    sa: 'me',
    env: { CA_PROVIDER: 'local', DISABLE_ENVOY: 'true', OUTPUT_CERTS: 'out', ECC_SIGNATURE_ALGORITHM: 'ECDSA', PROXY_CONFIG: '{"controlPlaneAuthPolicy":"NONE"}' },
  });
  t.teardown(() => rmSync(wl.cwd, { recursive: true, force: true }));
  mkdirSync(join(wl.cwd, 'out'));
  const run = async () => {
    const agent = spawnCli(['proxy', 'sidecar'], { env: wl.env, cwd: wl.cwd });
    await agent.waitFor(/workload certificate and root are ready/, 20_000);
    await agent.waitFor(/SDS server for workload certificates started/, 20_000);
    const c = await SdsTestClient.connect(join(wl.cwd, 'var/run/secrets/workload-spiffe-uds/socket'));
    const r = await c.subscribe(['default']);
    c.close();
    agent.child.kill('SIGTERM');
    const end = await agent.exited;
    return { chain: chainOf(r.secrets[0]!), end };
  };
  const first = await run();
  t.equal(first.end.code, 0, 'clean exit on SIGTERM');
  const caDir = join(wl.cwd, 'var/lib/istio/local-ca');
  t.equal(statSync(join(caDir, 'root-key.pem')).mode & 0o777, 0o600, 'CA key 0600');
  t.equal(statSync(caDir).mode & 0o777, 0o700);
  const rootPem = readFileSync(join(caDir, 'root-cert.pem'), 'utf8');
  t.same(spiffeIds(parseCertificate(first.chain)), ['spiffe://cluster.local/ns/dev/sa/me']);
  const out = join(wl.cwd, 'out');
  t.match(execFileSync('openssl', ['verify', '-CAfile', join(out, 'root-cert.pem'), join(out, 'cert-chain.pem')], { encoding: 'utf8' }), /OK/);
  t.equal(readFileSync(join(out, 'root-cert.pem'), 'utf8').trim(), rootPem.trim());
  const second = await run();
  t.equal(readFileSync(join(caDir, 'root-cert.pem'), 'utf8'), rootPem, 'the same root on the next start');
  t.not(second.chain, first.chain);
  t.ok(existsSync(join(out, 'key.pem')));
});

const failures: [string, Record<string, string>, number, RegExp][] = [
  ['unknown CA_PROVIDER', { CA_PROVIDER: 'Bogus' }, 255, /CA provider "Bogus" not registered/],
  ['googleapis.com CA address', { CA_ADDR: 'meshca.googleapis.com:443' }, 255, /CA provider "GoogleCA" not registered/],
  ['PROV_CERT root missing (log-fatal)', { PROV_CERT: './nope' }, 1, /fatal.*invalid config - istiod\.istio-system\.svc:15012 missing a root certificate .*nope\/root-cert\.pem/],
  ['PROV_CERT with FILE_MOUNTED_CERTS', { PROV_CERT: './p', FILE_MOUNTED_CERTS: 'true' }, 255, /PROV_CERT and FILE_MOUNTED_CERTS are mutually exclusive/],
  ['istiod root missing', {}, 255, /failed to find root CA cert for CA: .*var\/run\/secrets\/istio\/root-cert\.pem does not exist/],
  ['PILOT_CERT_PROVIDER=none', { PILOT_CERT_PROVIDER: 'none' }, 255, /failed to find root CA cert for CA: root CA not found/],
  ['unknown credential fetcher', { CREDENTIAL_FETCHER_TYPE: 'Magic' }, 255, /invalid credential fetcher type "Magic"/],
];

for (const [name, env, code, re] of failures) {
  t.test(`start-up failure: ${name} → exit ${code}`, async (t) => {
    const wl = workloadFor(undefined, { env: { DISABLE_ENVOY: 'true', ...env } });
    t.teardown(() => rmSync(wl.cwd, { recursive: true, force: true }));
    const r = await runCliToEnd(['proxy', 'sidecar'], { env: wl.env, cwd: wl.cwd });
    t.equal(r.code, code);
    t.match(r.stdout + r.stderr, re);
  });
}

t.test('DISABLE_ENVOY with istiod: no SDS socket, certificates land in OUTPUT_CERTS', async (t) => {
  const { TestCaServer } = await import('../../support/test-ca.js');
  const ca = await TestCaServer.start();
  t.teardown(() => ca.stop());
  const wl = workloadFor(ca, { sa: 'grpc-app', token: 't', env: { DISABLE_ENVOY: 'true', OUTPUT_CERTS: 'out', ECC_SIGNATURE_ALGORITHM: 'ECDSA' } });
  t.teardown(() => rmSync(wl.cwd, { recursive: true, force: true }));
  mkdirSync(join(wl.cwd, 'out'));
  const agent = spawnCli(['proxy', 'sidecar'], { env: wl.env, cwd: wl.cwd });
  await until(() => existsSync(join(wl.cwd, 'out/root-cert.pem')), 20_000, 'OUTPUT_CERTS');
  t.notOk(existsSync(join(wl.cwd, 'var/run/secrets/workload-spiffe-uds/socket')), 'no SDS server in proxyless mode');
  t.same(spiffeIds(parseCertificate(readFileSync(join(wl.cwd, 'out/cert-chain.pem'), 'utf8'))), ['spiffe://cluster.local/ns/default/sa/grpc-app']);
  agent.child.kill('SIGTERM');
  t.equal((await agent.exited).code, 0);
});
