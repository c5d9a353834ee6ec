// The secret cache (ports of Istio's security/pkg/nodeagent/cache/secretcache_test.go) with an
// in-process CA: caching, callbacks, rotation with short TTLs (also while the CA is down),
// validation of what the CA returns, file-based secrets and their watches, trust anchors,
// OUTPUT_CERTS.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  keyMatchesCertificate,
  mergeTrustAnchors,
  parseCertificate,
  SecretManager,
  spiffeIds,
  UnknownResourceError,
  generateKeyAndCsr,
  type CaClient,
  type SecretManagerOptions,
} from '../../../agent/security/index.js';
import { CertificateAuthority } from '../../../agent/security/local-ca/index.js';
import { configureLogging } from '../../../lib/log.js';
import { until } from '../../support/security-env.js';

const root = mkdtempSync(join(tmpdir(), 'secretmgr-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const logFile = join(root, 'agent.log');
configureLogging({ outputLevels: 'warn', targets: [logFile] });

const ID = 'spiffe://cluster.local/ns/ns1/sa/sa1';
const EC = { eccSignatureAlgorithm: 'ECDSA', eccCurve: 'P256', rsaKeySize: 2048, pkcs8: false };

class FakeCa implements CaClient {
  calls = 0;
  down = false;
  ttlSeconds: number | undefined;
  transform: ((chain: string[]) => Promise<string[]> | string[]) | undefined;
  constructor(public ca: CertificateAuthority) {}
  async csrSign(csr: string, ttl: number): Promise<string[]> {
    this.calls++;
    if (this.down) throw new Error('CA is down');
    const chain = await this.ca.sign(csr, { ttlSeconds: this.ttlSeconds ?? ttl });
    return this.transform ? this.transform(chain) : chain;
  }
  async getRootCertBundle(): Promise<string[]> {
    return [];
  }
  close(): void {}
}

let n = 0;
function newDir(): string {
  const d = join(root, String(++n));
  mkdirSync(d);
  return d;
}

async function manager(t: { teardown(fn: () => unknown): void }, o: Partial<SecretManagerOptions> = {}) {
  const ca = new FakeCa(await CertificateAuthority.createRoot({ organization: 'cluster.local' }));
  const d = newDir();
  const events: string[] = [];
  const sm = new SecretManager({
    caClient: ca,
    workloadIdentity: ID,
    ttlSeconds: 3600,
    graceRatio: 0.5,
    graceJitter: 0,
    key: EC,
    certFiles: { certChain: join(d, 'etc/certs/cert-chain.pem'), key: join(d, 'etc/certs/key.pem'), root: join(d, 'etc/certs/root-cert.pem') },
    useExistingCertFiles: true,
    fileDebounceMs: 50,
    fileRetryTotalMs: 300,
    renewBackoff: { initialMs: 100, multiplier: 1.5, randomization: 0.2, maxMs: 500 },
    ...o,
  });
  sm.onSecretUpdate((name) => events.push(name));
  t.teardown(() => sm.close());
  return { sm, ca, d, events };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('generate: chain is the concatenated CA answer, ROOTCA the root, second call from cache', async (t) => {
  const { sm, ca, events } = await manager(t);
  const s = await sm.generateSecret('default');
  t.equal(s.resourceName, 'default');
  t.equal(s.rootCert, undefined, 'the workload item carries no root');
  const leaf = parseCertificate(s.certificateChain!);
  t.same(spiffeIds(leaf), [ID]);
  t.ok(keyMatchesCertificate(s.privateKey!, leaf));
  t.ok(s.certificateChain!.endsWith(ca.ca.rootBundle), 'chain includes the root, as Istio serves it');
  const r = await sm.generateSecret('ROOTCA');
  t.equal(r.rootCert, ca.ca.rootBundle.trimEnd(), 'the root without its trailing newline');
  const again = await sm.generateSecret('default');
  t.equal(again.certificateChain, s.certificateChain);
  t.equal(ca.calls, 1, 'one CSR');
  t.ok(sm.certExpirySeconds()! < 3600 && sm.certExpirySeconds()! > 3500);
  t.same(events, ['ROOTCA'], 'the first CSR pushes ROOTCA');
});

t.test('concurrent requests share one CSR', async (t) => {
  const { sm, ca } = await manager(t);
  const all = await Promise.all(Array.from({ length: 10 }, (_, i) => sm.generateSecret(i % 2 ? 'default' : 'ROOTCA')));
  t.equal(ca.calls, 1);
  t.equal(new Set(all.filter((s) => s.certificateChain).map((s) => s.certificateChain)).size, 1);
});

t.test('rotation: a new default is pushed before the old one expires', async (t) => {
  const { sm, ca, events } = await manager(t, { ttlSeconds: 2 });
  const first = await sm.generateSecret('default');
  const firstExpiry = parseCertificate(first.certificateChain!).validTo;
  await until(() => events.includes('default'), 5000, 'rotation');
  const second = await sm.generateSecret('default');
  t.not(second.certificateChain, first.certificateChain, 'a new certificate');
  t.ok(Date.now() < Date.parse(firstExpiry), 'renewed before the old one expired');
  t.equal(ca.calls, 2);
  t.ok(sm.nextRotation! > Date.now(), 'the next rotation is scheduled');
});

t.test('CA down at rotation: the old certificate stays served; the new one arrives when the CA returns', async (t) => {
  const { sm, ca, events } = await manager(t, { ttlSeconds: 3, graceRatio: 0.7 });
  const first = await sm.generateSecret('default');
  ca.down = true;
  await until(() => ca.calls >= 3, 5000, 'renewal attempts');
  t.notOk(events.includes('default'), 'no push while the CA is down');
  const during = await sm.generateSecret('default');
  t.equal(during.certificateChain, first.certificateChain, 'the valid old certificate is still served');
  ca.down = false;
  await until(() => events.includes('default'), 5000, 'renewal after the CA returned');
  const after = await sm.generateSecret('default');
  t.not(after.certificateChain, first.certificateChain);
  t.ok(Date.now() < Date.parse(parseCertificate(first.certificateChain!).validTo), 'before the old one expired');
});

t.test('an expired cached certificate is never served', async (t) => {
  const { sm, ca } = await manager(t, { ttlSeconds: 1, graceRatio: 0 });
  await sm.generateSecret('default');
  ca.down = true;
  await sleep(1200);
  await t.rejects(sm.generateSecret('default'), /failed to generate workload certificate: CA is down/);
});

t.test('bad CA answers are rejected and nothing is cached', async (t) => {
  const { sm, ca } = await manager(t);
  ca.transform = (c) => c.slice(0, 1);
  await t.rejects(sm.generateSecret('default'), { message: 'failed to generate workload certificate: invalid empty CertChain' });
  const other = await CertificateAuthority.createRoot({ organization: 'other' });
  ca.transform = (c) => [c[0]!, other.certPem];
  await t.rejects(sm.generateSecret('default'), { message: /does not verify against the root/ });
  ca.transform = async () => {
    const kc = await generateKeyAndCsr(EC, ID);
    return ca.ca.sign(kc.csrPem, { ttlSeconds: 3600 });
  };
  await t.rejects(sm.generateSecret('default'), { message: /does not match the private key/ });
  ca.transform = (c) => ['garbage\n', c[1]!];
  await t.rejects(sm.generateSecret('default'), { message: /holds no valid certificate/ });
  ca.transform = undefined;
  const ok = await sm.generateSecret('default');
  t.ok(ok.certificateChain);
  t.equal(sm.metrics.failedOutgoingRequests, 4);
});

t.test('a different SPIFFE ID is served, with one warning', async (t) => {
  const { sm, ca } = await manager(t, { ttlSeconds: 2, graceRatio: 1 });
  const alias = 'spiffe://alias.domain/ns/ns1/sa/sa1';
  // istiod issues the identity it authenticated, whatever the CSR says.
  const realSign = ca.ca.sign.bind(ca.ca);
  ca.ca.sign = (csr, o) => realSign(csr, { ...o, identities: [alias] });
  const s = await sm.generateSecret('default');
  t.same(spiffeIds(parseCertificate(s.certificateChain!)), [alias]);
  await until(() => ca.calls >= 3, 5000, 'rotations');
  const warnings = readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes(`identity ${alias}`));
  t.equal(warnings.length, 1, 'logged once');
});

t.test('OUTPUT_CERTS: key 0600, cert/root with the configured mode, atomic rewrite on every rotation', async (t) => {
  const out = newDir();
  const { sm, events } = await manager(t, { ttlSeconds: 2, outputDir: out, outputCertMode: 0o644 });
  await sm.generateSecret('default');
  t.same(readdirSync(out).sort(), ['cert-chain.pem', 'key.pem', 'root-cert.pem']);
  t.equal(statSync(join(out, 'key.pem')).mode & 0o777, 0o600);
  t.equal(statSync(join(out, 'cert-chain.pem')).mode & 0o777, 0o644);
  t.equal(statSync(join(out, 'root-cert.pem')).mode & 0o777, 0o644);
  const before = { key: readFileSync(join(out, 'key.pem'), 'utf8'), ino: statSync(join(out, 'cert-chain.pem')).ino };
  t.ok(keyMatchesCertificate(before.key, parseCertificate(readFileSync(join(out, 'cert-chain.pem'), 'utf8'))));
  // No SDS request after this: the rotation alone must refresh the files.
  await until(() => events.includes('default'), 5000, 'rotation');
  await until(() => readFileSync(join(out, 'key.pem'), 'utf8') !== before.key, 2000, 'new key file');
  const chain = readFileSync(join(out, 'cert-chain.pem'), 'utf8');
  t.ok(keyMatchesCertificate(readFileSync(join(out, 'key.pem'), 'utf8'), parseCertificate(chain)), 'new key matches the new chain');
  t.not(statSync(join(out, 'cert-chain.pem')).ino, before.ino, 'replaced by rename, not rewritten in place');
  t.same(readdirSync(out).sort(), ['cert-chain.pem', 'key.pem', 'root-cert.pem'], 'no temp files left');
});

/** Writes a key/cert pair (and root) issued by `ca` into `dir`, atomically. */
async function writePair(ca: CertificateAuthority, dir: string, opts: { certName?: string; keyName?: string; expired?: boolean } = {}) {
  const kc = await generateKeyAndCsr(EC, ID);
  const now = opts.expired ? Date.now() - 3 * 3600_000 : Date.now();
  const [leaf, rootPem] = await ca.sign(kc.csrPem, { ttlSeconds: 3600, now });
  const certName = opts.certName ?? 'cert-chain.pem';
  const keyName = opts.keyName ?? 'key.pem';
  writeFileSync(join(dir, `.${keyName}.tmp`), kc.privateKeyPem);
  renameSync(join(dir, `.${keyName}.tmp`), join(dir, keyName));
  writeFileSync(join(dir, `.${certName}.tmp`), leaf! + rootPem!);
  renameSync(join(dir, `.${certName}.tmp`), join(dir, certName));
  return { key: kc.privateKeyPem, chain: leaf! + rootPem! };
}

for (const mode of ['default/ROOTCA names', 'file-cert:/file-root: names'] as const) {
  t.test(`file secrets (${mode}): initial read, atomic rewrites, key-only, root rewrite, remove + recreate`, async (t) => {
    const { sm, d, events } = await manager(t, { caClient: undefined });
    const certs = join(d, 'etc/certs');
    mkdirSync(certs, { recursive: true });
    const ca = await CertificateAuthority.createRoot({ organization: 'files' });
    const first = await writePair(ca, certs);
    writeFileSync(join(certs, 'root-cert.pem'), ca.certPem);
    const certName = mode === 'default/ROOTCA names' ? 'default' : `file-cert:${join(certs, 'cert-chain.pem')}~${join(certs, 'key.pem')}`;
    const rootName = mode === 'default/ROOTCA names' ? 'ROOTCA' : `file-root:${join(certs, 'root-cert.pem')}`;
    const s = await sm.generateSecret(certName);
    t.equal(s.certificateChain, first.chain, 'file bytes as they are');
    t.equal(s.privateKey, first.key);
    const r = await sm.generateSecret(rootName);
    t.equal(r.rootCert!.trim(), ca.certPem.trim());
    await sleep(300);
    t.same(events, [], 'the initial read gives no callback');

    const second = await writePair(ca, certs);
    await until(() => events.length > 0, 3000, 'cert callback');
    await sleep(200);
    t.same(events, [certName], 'exactly one callback for the certificate');
    t.equal((await sm.generateSecret(certName)).certificateChain, second.chain, 'new content');

    events.length = 0;
    const kc = await generateKeyAndCsr(EC, ID);
    writeFileSync(join(certs, 'key.pem'), kc.privateKeyPem);
    await sleep(400);
    t.same(events, [], 'rewriting only the key gives no callback');
    await writePair(ca, certs); // restore a matching pair
    await until(() => events.length > 0, 3000);
    events.length = 0;

    writeFileSync(join(certs, 'root-cert.pem'), ca.certPem + '\n');
    await until(() => events.length > 0, 3000, 'root callback');
    await sleep(200);
    t.same(events, [rootName], 'one root callback');
    events.length = 0;
    rmSync(join(certs, 'root-cert.pem'));
    writeFileSync(join(certs, 'root-cert.pem'), ca.certPem);
    await until(() => events.length > 0, 3000, 'recreate callback');
    await sleep(200);
    t.same(events, [rootName], 'remove + recreate: one callback');
  });
}

t.test('kubelet-style ..data symlink swap pushes the resource', async (t) => {
  const { sm, d, events } = await manager(t, { caClient: undefined });
  const vol = join(d, 'vol');
  mkdirSync(join(vol, '..2024_1'), { recursive: true });
  const ca = await CertificateAuthority.createRoot({ organization: 'files' });
  const p1 = await writePair(ca, join(vol, '..2024_1'));
  const { symlinkSync } = await import('node:fs');
  symlinkSync('..2024_1', join(vol, '..data'));
  symlinkSync('..data/cert-chain.pem', join(vol, 'cert-chain.pem'));
  symlinkSync('..data/key.pem', join(vol, 'key.pem'));
  const name = `file-cert:${join(vol, 'cert-chain.pem')}~${join(vol, 'key.pem')}`;
  t.equal((await sm.generateSecret(name)).certificateChain, p1.chain);
  mkdirSync(join(vol, '..2024_2'));
  const p2 = await writePair(ca, join(vol, '..2024_2'));
  symlinkSync('..2024_2', join(vol, '..data_tmp'));
  renameSync(join(vol, '..data_tmp'), join(vol, '..data'));
  await until(() => events.includes(name), 3000, 'swap callback');
  t.equal((await sm.generateSecret(name)).certificateChain, p2.chain);
});

t.test('bogus, malformed and expired files are rejected with clear errors; no callbacks', async (t) => {
  const { sm, d, events } = await manager(t, { caClient: undefined });
  await t.rejects(sm.generateSecret(`file-cert:${join(d, 'nope.pem')}~${join(d, 'nope-key.pem')}`), /no such file or directory/);
  await t.rejects(sm.generateSecret(`file-root:${join(d, 'nope.pem')}`), /no such file or directory/);
  writeFileSync(join(d, 'bad.pem'), '-----BEGIN CERTIFICATE-----\nnot a cert\n-----END CERTIFICATE-----\n');
  writeFileSync(join(d, 'bad-key.pem'), 'not a key');
  await t.rejects(sm.generateSecret(`file-cert:${join(d, 'bad.pem')}~${join(d, 'bad-key.pem')}`), /failed to load key pair .*no valid certificate/);
  await t.rejects(sm.generateSecret(`file-root:${join(d, 'bad.pem')}`), /no valid certificates/);
  const ca = await CertificateAuthority.createRoot({ organization: 'files' });
  mkdirSync(join(d, 'exp'));
  await writePair(ca, join(d, 'exp'), { expired: true });
  await t.rejects(sm.generateSecret(`file-cert:${join(d, 'exp/cert-chain.pem')}~${join(d, 'exp/key.pem')}`), /cert-chain\.pem expired at .*not serving it/);
  mkdirSync(join(d, 'mismatch'));
  await writePair(ca, join(d, 'mismatch'));
  writeFileSync(join(d, 'mismatch/key.pem'), (await generateKeyAndCsr(EC, ID)).privateKeyPem);
  await t.rejects(sm.generateSecret(`file-cert:${join(d, 'mismatch/cert-chain.pem')}~${join(d, 'mismatch/key.pem')}`), /failed to load key pair/);
  t.same(events, []);
  t.ok(sm.metrics.fileSecretFailures >= 6);
});

t.test('unknown and malformed names are errors; file-mounted mode without files says why', async (t) => {
  const { sm } = await manager(t, { caClient: undefined });
  await t.rejects(sm.generateSecret('kubernetes://x'), UnknownResourceError);
  await t.rejects(sm.generateSecret('file-cert:/only-one-part'), UnknownResourceError);
  await t.rejects(sm.generateSecret('file-root:/a~b'), UnknownResourceError);
  await t.rejects(sm.generateSecret('default'), /no CA client \(certificates are file-mounted\) and no workload certificate files/);
});

t.test('file-root:system serves the first OS bundle that exists', async (t) => {
  const d = newDir();
  const ca = await CertificateAuthority.createRoot({ organization: 'os' });
  writeFileSync(join(d, 'bundle.crt'), ca.certPem);
  const { sm } = await manager(t, { osCaBundles: [join(d, 'missing.crt'), join(d, 'bundle.crt')] });
  const sys = await sm.generateSecret('file-root:system');
  const direct = await sm.generateSecret(`file-root:${join(d, 'bundle.crt')}`);
  t.equal(sys.rootCert, direct.rootCert);
  const { sm: none } = await manager(t, { osCaBundles: [join(d, 'missing.crt')] });
  await t.rejects(none.generateSecret('file-root:system'), UnknownResourceError, 'no OS bundle: like an unknown name');
});

t.test('trust anchors merge into ROOTCA (CA and file roots), not into file-root:', async (t) => {
  const anchor = await CertificateAuthority.createRoot({ organization: 'anchor' });
  const { sm, ca } = await manager(t, { trustAnchors: [anchor.certPem, anchor.certPem] });
  const r = await sm.generateSecret('ROOTCA');
  t.equal(r.rootCert, mergeTrustAnchors(ca.ca.rootBundle, [anchor.certPem]));
  t.equal(r.rootCert!.split('BEGIN CERTIFICATE').length - 1, 2, 'deduplicated');
  const { sm: files, d } = await manager(t, { caClient: undefined, trustAnchors: [anchor.certPem] });
  mkdirSync(join(d, 'etc/certs'), { recursive: true });
  const fileCa = await CertificateAuthority.createRoot({ organization: 'file' });
  writeFileSync(join(d, 'etc/certs/root-cert.pem'), fileCa.certPem);
  t.equal((await files.generateSecret('ROOTCA')).rootCert, mergeTrustAnchors(fileCa.certPem, [anchor.certPem]));
  t.equal((await files.generateSecret(`file-root:${join(d, 'etc/certs/root-cert.pem')}`)).rootCert, fileCa.certPem);
});

t.test('updateConfigTrustBundle pushes ROOTCA, then a renewed default', async (t) => {
  const { sm, ca, events } = await manager(t);
  const first = await sm.generateSecret('default');
  events.length = 0;
  const anchor = await CertificateAuthority.createRoot({ organization: 'anchor' });
  await sm.updateConfigTrustBundle([anchor.certPem]);
  t.same(events, ['ROOTCA', 'default']);
  t.not((await sm.generateSecret('default')).certificateChain, first.certificateChain);
  t.match((await sm.generateSecret('ROOTCA')).rootCert!, anchor.certPem.trim());
  events.length = 0;
  await sm.updateConfigTrustBundle([anchor.certPem]);
  t.same(events, [], 'an unchanged bundle does nothing');
  t.equal(ca.calls, 2);
});

t.test('a root change from the CA pushes ROOTCA; the new bundle keeps the old root', async (t) => {
  const { sm, ca, events } = await manager(t, { ttlSeconds: 2 });
  await sm.generateSecret('default');
  const oldRoot = ca.ca.rootBundle;
  const next = await CertificateAuthority.createRoot({ organization: 'next' });
  next.rootBundle = next.certPem + oldRoot;
  ca.ca = next;
  events.length = 0;
  await until(() => events.includes('default'), 5000, 'rotation');
  t.same(events.slice(0, 2), ['ROOTCA', 'default']);
  const r = (await sm.generateSecret('ROOTCA')).rootCert!;
  t.match(r, oldRoot.trim(), 'old root still trusted');
  t.match(r, next.certPem.trim(), 'new root trusted');
});
