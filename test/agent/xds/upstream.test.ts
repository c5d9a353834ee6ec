// How the proxy reaches istiod (Istio's pkg/istio-agent/xds_proxy.go dial options): the start-up
// root check, the root precedence, server name and ISTIOD_SAN, the PROV_CERT client certificate,
// plaintext with controlPlaneAuthPolicy NONE, the root file re-read for every stream (Istio's
// "ROOT CA change" agent test), and the token: re-read per stream, a missing or expired one is a
// clear log line and a failed stream, never a crash.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { generateKeyAndCsr } from '../../../agent/security/index.js';
import { xdsUpstreamConfig } from '../../../agent/xds/index.js';
import { configureLogging } from '../../../lib/log.js';
import { AdsConnection } from '../../support/ads-client.js';
import { TestControlPlane } from '../../support/control-plane.js';
import { istiodRootCert } from '../../support/injection.js';
import { agentConfig, until } from '../../support/security-env.js';
import { ROOT_FILE, testJwt, TOKEN_FILE, xdsEnv, xdsPod } from '../../support/xds-agent.js';

const logFile = join(mkdtempSync(join(tmpdir(), 'xds-upstream-log-')), 'agent.log');
configureLogging({ targets: [logFile], outputLevels: 'default:info' });
const logText = () => readFileSync(logFile, 'utf8');

const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';

/** One CDS round trip through the proxy; resolves with the stream's end if it failed instead. */
async function roundTrip(socket: string, delta = false): Promise<{ ok: true } | { ok: false; code: number; details: string }> {
  const conn = AdsConnection.connect(socket);
  const s = conn.stream(delta);
  try {
    await s.requestResponseAck(CDS);
    return { ok: true };
  } catch {
    const end = await s.ended;
    return { ok: false, ...end };
  } finally {
    s.cancel();
    conn.close();
  }
}

t.test('start-up: the XDS root must exist and hold a certificate, else one clear error and nothing bound', async (t) => {
  const cp = await TestControlPlane.start();
  t.teardown(() => cp.stop());
  const missing = await xdsPod(cp, { root: false, start: false });
  t.teardown(missing.stop);
  await t.rejects(missing.xds.start(), { name: 'XdsConfigError', message: `failed to find root CA cert for XDS: root CA file for XDS does not exist ${join(missing.cwd, ROOT_FILE)}` });
  t.notOk(existsSync(missing.socket), 'no socket');
  t.notOk(existsSync(join(missing.cwd, 'etc/istio/proxy/grpc-bootstrap.json')), 'no gRPC bootstrap');

  const empty = await xdsPod(cp, { root: false, start: false });
  t.teardown(empty.stop);
  mkdirSync(join(empty.cwd, 'var/run/secrets/istio'), { recursive: true });
  writeFileSync(join(empty.cwd, ROOT_FILE), 'not a certificate\n');
  await t.rejects(empty.xds.start(), { message: /^failed to find root CA cert for XDS: .*root-cert\.pem: no PEM certificate found$/ });

  const none = await xdsPod(cp, { root: false, start: false, env: { PILOT_CERT_PROVIDER: 'none' } });
  t.teardown(none.stop);
  await t.rejects(none.xds.start(), { message: 'failed to find root CA cert for XDS: root CA not found: PILOT_CERT_PROVIDER=none' });
});

t.test('controlPlaneAuthPolicy NONE: plaintext, no root needed, token and ClusterID still sent', async (t) => {
  const cp = await TestControlPlane.start({ plaintext: true, requiredToken: 'test-token' });
  t.teardown(() => cp.stop());
  const pod = await xdsPod(cp);
  t.teardown(pod.stop);
  t.notOk(existsSync(join(pod.cwd, ROOT_FILE)), 'no root file in this pod');
  t.same(await roundTrip(pod.socket), { ok: true });
  t.equal(cp.streams[0]!.metadata.authorization, 'Bearer test-token');
  t.equal(cp.streams[0]!.metadata.clusterid, 'Kubernetes');
});

t.test('root precedence: XDS_ROOT_CA, then ./etc/certs/root-cert.pem, then the configmap root', async (t) => {
  const cp = await TestControlPlane.start();
  t.teardown(() => cp.stop());
  const wrong = istiodRootCert();
  {
    // XDS_ROOT_CA wins over a wrong configmap root.
    const pod = await xdsPod(cp, { root: false, start: false, env: { XDS_ROOT_CA: 'custom/root.pem' } });
    t.teardown(pod.stop);
    cp.writeRoot(join(pod.cwd, 'custom/root.pem'));
    mkdirSync(join(pod.cwd, 'var/run/secrets/istio'), { recursive: true });
    writeFileSync(join(pod.cwd, ROOT_FILE), wrong);
    await pod.xds.start();
    await pod.xds.ready();
    t.same(await roundTrip(pod.socket), { ok: true }, 'XDS_ROOT_CA (relative to the working directory)');
  }
  {
    // ./etc/certs/root-cert.pem is used when it exists.
    const pod = await xdsPod(cp, { root: false, start: false });
    t.teardown(pod.stop);
    cp.writeRoot(join(pod.cwd, 'etc/certs/root-cert.pem'));
    await pod.xds.start();
    await pod.xds.ready();
    t.same(await roundTrip(pod.socket), { ok: true }, './etc/certs/root-cert.pem without a configmap root');
  }
  {
    // A root that does not verify istiod: the stream fails, Envoy sees UNAVAILABLE.
    const pod = await xdsPod(cp, { root: false, start: false });
    t.teardown(pod.stop);
    mkdirSync(join(pod.cwd, 'var/run/secrets/istio'), { recursive: true });
    writeFileSync(join(pod.cwd, ROOT_FILE), wrong);
    await pod.xds.start();
    await pod.xds.ready();
    const r = await roundTrip(pod.socket);
    t.match(r, { ok: false, code: 14 }, 'the wrong root fails the TLS handshake');
    // Istio's "ROOT CA change": the right root in place, the next stream works.
    cp.writeRoot(join(pod.cwd, ROOT_FILE));
    t.same(await roundTrip(pod.socket), { ok: true }, 'the changed root is used by the next stream');
    // A root file that stops parsing keeps the last good root, with a warning.
    writeFileSync(join(pod.cwd, ROOT_FILE), 'garbage');
    t.same(await roundTrip(pod.socket), { ok: true }, 'a broken root file does not break the proxy');
    t.match(logText(), /\twarn\txdsproxy\tfailed to reload the XDS root CA \(.*no PEM certificate found\); keeping the previous root/);
  }
});

t.test('server name: localhost → istiod.istio-system.svc; another host must match or be named by ISTIOD_SAN', async (t) => {
  const cp = await TestControlPlane.start();
  t.teardown(() => cp.stop());
  const byIp = await xdsPod(cp, { proxyConfig: { discoveryAddress: `127.0.0.1:${cp.port}` } });
  t.teardown(byIp.stop);
  t.match(await roundTrip(byIp.socket), { ok: false, code: 14 }, 'the certificate has no SAN for 127.0.0.1');
  const withSan = await xdsPod(cp, { proxyConfig: { discoveryAddress: `127.0.0.1:${cp.port}` }, env: { ISTIOD_SAN: 'istiod.istio-system.svc' } });
  t.teardown(withSan.stop);
  t.same(await roundTrip(withSan.socket), { ok: true }, 'ISTIOD_SAN names the certificate’s SAN');
});

t.test('PROV_CERT: the provisioning root verifies istiod and its key pair is the client certificate', async (t) => {
  const cp = await TestControlPlane.start({ requireClientCert: true });
  t.teardown(() => cp.stop());
  const pod = await xdsPod(cp, { root: false, start: false, env: { PROV_CERT: 'etc/prov' } });
  t.teardown(pod.stop);
  const dir = join(pod.cwd, 'etc/prov');
  mkdirSync(dir, { recursive: true });
  cp.writeRoot(join(dir, 'root-cert.pem'));
  const kc = await generateKeyAndCsr({ eccSignatureAlgorithm: 'ECDSA', eccCurve: 'P256', rsaKeySize: 2048, pkcs8: false }, 'spiffe://cluster.local/ns/vm/sa/vm');
  const chain = await cp.ca!.sign(kc.csrPem, { ttlSeconds: 3600, verifyCsr: false });
  writeFileSync(join(dir, 'key.pem'), kc.privateKeyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'cert-chain.pem'), chain.join(''));
  await pod.xds.start();
  await pod.xds.ready();
  t.same(await roundTrip(pod.socket), { ok: true });
  t.ok(cp.streams[0]!.clientCert, 'the client certificate was presented');
  t.equal(xdsUpstreamConfig(agentConfig(pod.env), pod.cwd, existsSync).tls?.clientCert?.keyPath, join(dir, 'key.pem'));
});

t.test('token: re-read for every stream; missing or expired → a clear log line and a failed stream, no crash', async (t) => {
  const cp = await TestControlPlane.start({ requiredToken: testJwt(4_000_000_000) });
  t.teardown(() => cp.stop());
  const pod = await xdsPod(cp, { token: null });
  t.teardown(pod.stop);

  const missing = await roundTrip(pod.socket);
  t.same(missing, { ok: false, code: 16, details: 'authentication failure: no bearer token' }, 'istiod’s UNAUTHENTICATED reaches Envoy');
  t.match(logText(), new RegExp(`\\twarn\\tsecurity\\tfailed to read token file ${join(pod.cwd, TOKEN_FILE)}: .*ENOENT.*; sending no authorization header`));
  await until(
    () => /\twarn\txdsproxy\tupstream \[\d+\] terminated with unexpected error rpc error: code = Unauthenticated desc = authentication failure: no bearer token/.test(logText()),
    2000,
    'upstream warning',
  );
  t.pass('the rejection is logged as a warning');

  mkdirSync(join(pod.cwd, 'var/run/secrets/tokens'), { recursive: true });
  const expired = testJwt(Math.floor(Date.now() / 1000) - 60);
  writeFileSync(join(pod.cwd, TOKEN_FILE), expired);
  t.match(await roundTrip(pod.socket), { ok: false, code: 16 }, 'an expired token is rejected');
  t.match(logText(), /\twarn\txdsproxy\tXDS token .*istio-token expired at \d{4}-\d\d-\d\dT[\d:.]+Z; istiod will reject the stream until the token is renewed/);
  t.equal(cp.streams.at(-1)!.metadata.authorization, `Bearer ${expired}`, 'still sent: istiod decides');

  writeFileSync(join(pod.cwd, TOKEN_FILE), `${testJwt(4_000_000_000)}\n`);
  t.same(await roundTrip(pod.socket), { ok: true }, 'the renewed token (trimmed) is read by the next stream');
  rmSync(join(pod.cwd, TOKEN_FILE));
});

t.test('upstream settings are pure: address, XDS_HEADER_* sorted, token path against the working directory', async (t) => {
  const env = xdsEnv(undefined, {
    proxyConfig: { discoveryAddress: 'istiod.istio-system.svc:15012' },
    env: { XDS_HEADER_B: '2', XDS_HEADER_A: '=1', XDS_ROOT_CA: 'SYSTEM', GRPC_KEEPALIVE_INTERVAL: '45s' },
  });
  const u = xdsUpstreamConfig(agentConfig(env), '/pod', () => false);
  t.same(u, {
    address: 'istiod.istio-system.svc:15012',
    tokenPath: '/pod/var/run/secrets/tokens/istio-token',
    clusterId: 'Kubernetes',
    headers: [
      ['A', '=1'],
      ['B', '2'],
    ],
    keepaliveMs: 45_000,
    keepaliveTimeoutMs: 10_000,
    tls: { root: { kind: 'system', via: 'XDS_ROOT_CA' }, serverName: 'istiod.istio-system.svc' },
  });
  const plain = xdsUpstreamConfig(agentConfig({ ...env, PROXY_CONFIG: '{"controlPlaneAuthPolicy":"NONE"}' }), '/pod', () => false);
  t.equal(plain.tls, undefined, 'NONE: plaintext');
  const mounted = xdsUpstreamConfig(
    agentConfig({
      ...env,
      XDS_ROOT_CA: '',
      FILE_MOUNTED_CERTS: 'true',
      PROXY_CONFIG: JSON.stringify({ proxyMetadata: { ISTIO_META_TLS_CLIENT_ROOT_CERT: '/m/root.pem', ISTIO_META_TLS_CLIENT_KEY: '/m/key.pem', ISTIO_META_TLS_CLIENT_CERT_CHAIN: '/m/chain.pem' } }),
    }),
    '/pod',
    () => false,
  );
  t.same(
    mounted.tls,
    { root: { kind: 'file', path: '/m/root.pem', via: 'file-mounted' }, serverName: 'istiod.istio-system.svc', clientCert: { keyPath: '/m/key.pem', certPath: '/m/chain.pem' } },
    'FILE_MOUNTED_CERTS: proxyMetadata root and key pair',
  );
});
