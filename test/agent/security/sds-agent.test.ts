// The SDS subsystem end to end, as the agent runs it: options from the environment, the CA
// client to the gRPC/TLS test CA, the SDS server on ./var/run/secrets/workload-spiffe-uds/socket
// and a real gRPC client on it. Certificates are checked with openssl and used for a real
// mutual-TLS handshake between two workloads; rotation runs with second-long TTLs.
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPublicKey } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { SdsSubsystem, parseCertificate, spiffeIds } from '../../../agent/security/index.js';
import { CertificateAuthority } from '../../../agent/security/local-ca/index.js';
import { configureLogging } from '../../../lib/log.js';
import { chainOf, keyOf, rootOf, SdsTestClient, sdsRequest } from '../../support/sds-client.js';
import { agentConfig, until, workloadFor, type Workload } from '../../support/security-env.js';
import { TestCaServer } from '../../support/test-ca.js';

const logDir = workloadFor(undefined).cwd;
const logFile = join(logDir, 'agent.log');
configureLogging({ outputLevels: 'info', targets: [logFile] });
t.teardown(() => rmSync(logDir, { recursive: true, force: true }));

const SOCKET = 'var/run/secrets/workload-spiffe-uds/socket';
const fastRenew = { renewBackoff: { initialMs: 100, multiplier: 1.5, randomization: 0.2, maxMs: 400 }, fileRetryTotalMs: 300 };

async function startAgent(t: { teardown(fn: () => unknown): void }, wl: Workload): Promise<SdsSubsystem> {
  const sds = new SdsSubsystem(agentConfig(wl.env), { cwd: wl.cwd, secretManager: fastRenew });
  t.teardown(async () => {
    await sds.stop();
    rmSync(wl.cwd, { recursive: true, force: true });
  });
  await sds.start();
  sds.afterStart(); // as the agent does once Envoy is spawned
  return sds;
}

async function client(t: { teardown(fn: () => unknown): void }, wl: Workload): Promise<SdsTestClient> {
  const c = await SdsTestClient.connect(join(wl.cwd, SOCKET));
  t.teardown(() => c.close());
  return c;
}

function write(dir: string, name: string, data: string): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}

let ca: TestCaServer;
t.before(async () => {
  ca = await TestCaServer.start();
});
t.teardown(() => ca.stop());

for (const [name, env] of [
  ['RSA 2048', {}],
  ['ECDSA P-256', { ECC_SIGNATURE_ALGORITHM: 'ECDSA' }],
  ['ECDSA P-384', { ECC_SIGNATURE_ALGORITHM: 'ECDSA', ECC_CURVE: 'P384' }],
] as const) {
  t.test(`${name}: default and ROOTCA over SDS verify with openssl; SAN, key, token`, async (t) => {
    const wl = workloadFor(ca, { ns: 'shop', sa: 'cart', token: 'jwt-123\n', env });
    const calls = ca.requests.length;
    await startAgent(t, wl);
    t.equal(statSync(join(wl.cwd, SOCKET)).mode & 0o777, 0o666, 'socket mode 0666');
    const [c, c2] = [await client(t, wl), await client(t, wl)];
    const [d, r] = await Promise.all([c.subscribe(['default']), c2.subscribe(['ROOTCA'])]);
    const chain = chainOf(d.secrets[0]!);
    const key = keyOf(d.secrets[0]!);
    const root = rootOf(r.secrets.find((s) => s.name === 'ROOTCA')!);
    const leafPem = parseCertificate(chain).toString();
    const dir = wl.cwd;
    const out = execFileSync('openssl', ['verify', '-CAfile', write(dir, 'root.pem', root), '-untrusted', write(dir, 'chain.pem', chain), write(dir, 'leaf.pem', leafPem)], { encoding: 'utf8' });
    t.match(out, /leaf\.pem: OK/);
    const leaf = new X509Certificate(leafPem);
    t.same(spiffeIds(leaf), ['spiffe://cluster.local/ns/shop/sa/cart']);
    t.equal(createPublicKey(key).export({ type: 'spki', format: 'der' }).toString('hex'), leaf.publicKey.export({ type: 'spki', format: 'der' }).toString('hex'), 'key matches cert');
    const pub = (args: string[], input: string) => execFileSync('openssl', args, { input, encoding: 'utf8' });
    t.equal(pub(['pkey', '-pubout'], key), pub(['x509', '-pubkey', '-noout'], leafPem), 'openssl agrees: key matches cert');
    if (name === 'ECDSA P-384') t.match(execFileSync('openssl', ['pkey', '-text', '-noout'], { input: key, encoding: 'utf8' }), /NIST CURVE: P-384/);
    const req = ca.requests.slice(calls).find((x) => x.metadata.authorization)!;
    t.equal(req.metadata.authorization, 'Bearer jwt-123');
    t.equal(req.metadata.clusterid, 'Kubernetes');
    t.equal(req.ttlSeconds, 86400);
  });
}

t.test('two workloads complete a mutual-TLS handshake with SDS certs, each checking the peer SPIFFE ID', async (t) => {
  const wa = workloadFor(ca, { ns: 'shop', sa: 'frontend', token: 't' });
  const wb = workloadFor(ca, { ns: 'shop', sa: 'backend', token: 't' });
  await Promise.all([startAgent(t, wa), startAgent(t, wb)]);
  const [ca1, cb1] = await Promise.all([client(t, wa), client(t, wb)]);
  const [ad, bd] = await Promise.all([ca1.subscribe(['default', 'ROOTCA']), cb1.subscribe(['default', 'ROOTCA'])]);
  const creds = (r: typeof ad) => ({
    cert: chainOf(r.secrets.find((s) => s.name === 'default')!),
    key: keyOf(r.secrets.find((s) => s.name === 'default')!),
    ca: rootOf(r.secrets.find((s) => s.name === 'ROOTCA')!),
  });
  const a = creds(ad);
  const b = creds(bd);
  const peerId = (c: tls.PeerCertificate) =>
    (c.subjectaltname ?? '')
      .split(', ')
      .filter((s) => s.startsWith('URI:'))
      .map((s) => s.slice(4));
  const server = tls.createServer({ ...b, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' }, (sock) => {
    const ids = peerId(sock.getPeerCertificate());
    sock.end(ids.includes('spiffe://cluster.local/ns/shop/sa/frontend') ? 'hello frontend' : 'who are you');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const reply = await new Promise<string>((resolve, reject) => {
    const sock = tls.connect({
      host: '127.0.0.1',
      port,
      ...a,
      // Istio verifies SPIFFE IDs, not host names.
      checkServerIdentity: (_h, cert) => (peerId(cert).includes('spiffe://cluster.local/ns/shop/sa/backend') ? undefined : new Error(`unexpected peer ${peerId(cert)}`)),
    });
    let data = '';
    sock.on('data', (d) => (data += d));
    sock.on('end', () => resolve(data));
    sock.on('error', reject);
  });
  t.equal(reply, 'hello frontend', 'both sides authenticated each other');
  // A workload with a foreign root is refused.
  const stranger = await CertificateAuthority.createRoot({ organization: 'evil' });
  const err = await new Promise<Error>((resolve) => {
    const sock = tls.connect({ host: '127.0.0.1', port, ...a, ca: stranger.certPem, checkServerIdentity: () => undefined });
    sock.on('error', resolve);
    sock.on('secureConnect', () => resolve(new Error('connected')));
  });
  t.notMatch(err.message, /^connected$/, `handshake refused: ${err.message}`);
});

t.test('rotation: the open stream gets a new default before the old expires; CA down keeps the old one; OUTPUT_CERTS follow', async (t) => {
  const rca = await TestCaServer.start();
  t.teardown(() => rca.stop());
  rca.ttlSeconds = 4;
  const wl = workloadFor(rca, { sa: 'rot', token: 't', env: { ECC_SIGNATURE_ALGORITHM: 'ECDSA', SECRET_GRACE_PERIOD_RATIO: '0.6', SECRET_GRACE_PERIOD_RATIO_JITTER: '0', OUTPUT_CERTS: 'out' } });
  mkdirSync(join(wl.cwd, 'out'));
  const sds = await startAgent(t, wl);
  const c = await client(t, wl);
  const first = await c.subscribe(['default']);
  const firstChain = chainOf(first.secrets[0]!);
  const firstExpiry = Date.parse(parseCertificate(firstChain).validTo);
  const outChain = () => readFileSync(join(wl.cwd, 'out/cert-chain.pem'), 'utf8');
  await until(() => existsSync(join(wl.cwd, 'out/cert-chain.pem')) && outChain() === firstChain, 3000, 'OUTPUT_CERTS at start');

  const pushed = await c.next(5000);
  t.equal(pushed.secrets.length, 1);
  const secondChain = chainOf(pushed.secrets[0]!);
  t.not(secondChain, firstChain, 'a new certificate was pushed');
  t.ok(Date.now() < firstExpiry, 'before the old one expired');
  await until(() => outChain() === secondChain, 3000, 'OUTPUT_CERTS after rotation');
  t.equal(statSync(join(wl.cwd, 'out/key.pem')).mode & 0o777, 0o600);
  c.send(sdsRequest(['default'], { node: null, response_nonce: pushed.nonce }));

  // The CA goes down before the next rotation.
  rca.down = true;
  const failedBefore = rca.calls;
  await until(() => rca.calls >= failedBefore + 2, 5000, 'failed renewals');
  const c2 = await client(t, wl);
  const during = await c2.subscribe(['default']);
  t.equal(chainOf(during.secrets[0]!), secondChain, 'a new stream still gets the valid old certificate');
  t.ok(await c.nothingWithin(200), 'the open stream is not failed while the CA is down');
  rca.down = false;
  const third = await c.next(5000);
  const thirdChain = chainOf(third.secrets[0]!);
  t.not(thirdChain, secondChain, 'renewed once the CA returned');
  t.ok(Date.now() < Date.parse(parseCertificate(secondChain).validTo), 'the served certificate never expired');
  await until(() => outChain() === thirdChain, 3000, 'OUTPUT_CERTS after recovery');
  const m = sds.metrics();
  t.ok(m.num_outgoing_requests! >= 3, 'CSRs counted');
  t.ok(m.num_outgoing_retries! >= 1, 'the CA outage shows as retries');
  t.ok(m.cert_expiry_seconds! > 0 && m.cert_expiry_seconds! <= 4);
  t.equal(m.pilot_total_xds_rejects, 0);
});

t.test('missing token file and unreachable CA: clear log lines and retries, never a crash', async (t) => {
  const port = await new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const wl = workloadFor(ca, { sa: 'lonely', env: { CA_ADDR: `localhost:${port}` } });
  const sds = await startAgent(t, wl);
  const c = await client(t, wl);
  c.send(sdsRequest(['default']));
  const end = await c.ended;
  t.match(end.details, /failed to generate secret for default: failed to generate workload certificate: create certificate: rpc error: code = Unavailable/);
  await until(() => /failed to warm certificate default, retrying in \d+ ms/.test(readFileSync(logFile, 'utf8')), 5000, 'retry log line');
  t.match(readFileSync(logFile, 'utf8'), /failed to read token file .*istio-token.*sending no authorization header/);
  t.ok(sds.secretManager, 'still running');
  const m = sds.metrics();
  t.ok(m.num_failed_outgoing_requests! >= 1 && m.num_outgoing_requests! >= m.num_failed_outgoing_requests!, 'CSR failures counted');
  t.ok(m.num_outgoing_retries! >= 4, 'UNAVAILABLE retried by the CA client');
  t.equal(m.cert_expiry_seconds, undefined, 'no certificate, no expiry gauge');
});

t.test('file-mounted certificates are served and a replaced file reaches the stream', async (t) => {
  const fileCa = await CertificateAuthority.createRoot({ organization: 'files' });
  const wl = workloadFor(undefined, { sa: 'files', env: { FILE_MOUNTED_CERTS: 'true', FILE_DEBOUNCE_DURATION: '50ms' } });
  const certs = join(wl.cwd, 'etc/certs');
  mkdirSync(certs, { recursive: true });
  const { generateKeyAndCsr } = await import('../../../agent/security/index.js');
  const issue = async () => {
    const kc = await generateKeyAndCsr({ eccSignatureAlgorithm: 'ECDSA', eccCurve: 'P256', rsaKeySize: 2048, pkcs8: false }, 'spiffe://cluster.local/ns/default/sa/files');
    const [leaf, root] = await fileCa.sign(kc.csrPem, { ttlSeconds: 3600 });
    writeFileSync(join(certs, 'key.pem.tmp'), kc.privateKeyPem);
    execFileSync('mv', [join(certs, 'key.pem.tmp'), join(certs, 'key.pem')]);
    writeFileSync(join(certs, 'cert-chain.pem.tmp'), leaf! + root!);
    execFileSync('mv', [join(certs, 'cert-chain.pem.tmp'), join(certs, 'cert-chain.pem')]);
    return leaf! + root!;
  };
  const chain1 = await issue();
  writeFileSync(join(certs, 'root-cert.pem'), fileCa.certPem);
  const sds = await startAgent(t, wl);
  t.equal(sds.options.fileMountedCerts, true);
  const c = await client(t, wl);
  const r = await c.subscribe(['default']);
  t.equal(chainOf(r.secrets[0]!), chain1);
  const started = Date.now();
  const chain2 = await issue();
  const pushed = await c.next(3000);
  t.equal(chainOf(pushed.secrets[0]!), chain2);
  t.ok(Date.now() - started < 2000, `pushed ${Date.now() - started} ms after the replacement`);
});

t.test('socket decision: a healthy external SDS socket means files only; a non-default name needs one', async (t) => {
  // Someone else (SPIRE) serves the workload socket.
  const ext = workloadFor(ca, { sa: 'spire', token: 't' });
  await startAgent(t, ext);
  const other = new SdsSubsystem(agentConfig(ext.env), { cwd: ext.cwd });
  t.teardown(() => other.stop());
  await other.start();
  other.afterStart();
  t.equal(other.serveOnlyFiles, true);
  t.ok(statSync(join(ext.cwd, 'var/run/secrets/credential-uds/files-socket')).isSocket(), 'files-socket served');

  const named = workloadFor(ca, { sa: 'named', env: { WORKLOAD_IDENTITY_SOCKET_FILE: 'spire.sock' } });
  const sub = new SdsSubsystem(agentConfig(named.env), { cwd: named.cwd });
  t.teardown(() => rmSync(named.cwd, { recursive: true, force: true }));
  await t.rejects(sub.start(), /agent configured for non-default SDS socket path: .*spire\.sock but no socket found/);

  const stale = workloadFor(ca, { sa: 'stale', token: 't' });
  mkdirSync(join(stale.cwd, 'var/run/secrets/workload-spiffe-uds'), { recursive: true });
  writeFileSync(join(stale.cwd, SOCKET), 'not a socket');
  const s3 = await startAgent(t, stale);
  t.equal(s3.serveOnlyFiles, false, 'a dead socket file is removed and replaced');
  t.ok(statSync(join(stale.cwd, SOCKET)).isSocket());

  t.throws(() => new SdsSubsystem(agentConfig({ ...named.env, WORKLOAD_IDENTITY_SOCKET_FILE: 'a/b' })), /must be a file name, not a path/);
});
