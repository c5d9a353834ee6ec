// PEM helpers with Istio's semantics: TestConcatCerts, the trust-anchor merge
// (TestProxyConfigAnchors), bundles that keep only valid certs (TestSomeInvalidCerts), chain
// verification and key matching.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { concatCerts, generateKeyAndCsr, keyMatchesCertificate, mergeTrustAnchors, parseCertificate, parseCertificates, pemBlocks, spiffeIds, verifyChain } from '../../../agent/security/index.js';
import { CertificateAuthority } from '../../../agent/security/local-ca/index.js';

const dir = mkdtempSync(join(tmpdir(), 'pem-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('concatCerts (Istio TestConcatCerts)', async (t) => {
  t.equal(concatCerts([]), '');
  t.equal(concatCerts(['a']), 'a');
  t.equal(concatCerts(['a', 'b']), 'a\nb');
  t.equal(concatCerts(['a\n', 'b']), 'a\nb');
});

t.test('trust anchors: sorted, de-duplicated union joined with \\n', async (t) => {
  const a = await CertificateAuthority.createRoot({ organization: 'a' });
  const b = await CertificateAuthority.createRoot({ organization: 'b' });
  const [pa, pb] = [a.certPem.trimEnd(), b.certPem.trimEnd()];
  const sorted = [pa, pb].sort().join('\n');
  t.equal(mergeTrustAnchors(a.certPem, [b.certPem]), sorted);
  t.equal(mergeTrustAnchors(a.certPem, [b.certPem, a.certPem, b.certPem]), sorted, 'duplicates change nothing');
  t.equal(mergeTrustAnchors(a.certPem, []), pa, 'the CA root alone, without its trailing newline');
});

t.test('bundles keep only valid certificates; negative serials are rejected as Go does', async (t) => {
  const a = await CertificateAuthority.createRoot({ organization: 'a' });
  const neg = join(dir, 'neg.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', '/dev/null', '-subj', '/O=x', '-set_serial', '-5', '-days', '1', '-out', neg], {
    stdio: 'ignore',
  });
  const negPem = readFileSync(neg, 'utf8');
  t.throws(() => parseCertificate(negPem), /negative serial/);
  const garbled = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
  const bundle = a.certPem + negPem + garbled + a.certPem;
  t.equal(parseCertificates(bundle).length, 2, 'two valid of four');
  t.equal(parseCertificates('').length, 0);
  t.equal(pemBlocks('junk before\n' + a.certPem + '-----BEGIN X-----\n!!notbase64\n-----END X-----\n' + a.certPem).length, 1, 'stops at the first block that does not decode');
});

t.test('chain verification and key matching', async (t) => {
  const root = await CertificateAuthority.createRoot({ organization: 'r' });
  const inter = await root.createIntermediate('r');
  const other = await CertificateAuthority.createRoot({ organization: 'o' });
  const kc = await generateKeyAndCsr({ eccSignatureAlgorithm: 'ECDSA', eccCurve: 'P256', rsaKeySize: 2048, pkcs8: false }, 'spiffe://td/ns/a/sa/b');
  const elements = await inter.sign(kc.csrPem, { ttlSeconds: 3600 });
  t.equal(elements.length, 3, 'leaf, intermediate, root');
  const chain = elements.slice(0, -1).map((e) => parseCertificate(e));
  const roots = parseCertificates(elements[2]!);
  verifyChain(chain, roots, Date.now());
  t.pass('a three-element chain verifies');
  t.throws(() => verifyChain(chain, parseCertificates(other.certPem), Date.now()), /does not verify against the root/);
  t.throws(() => verifyChain([chain[0]!], roots, Date.now()), /does not verify/, 'missing intermediate');
  t.throws(() => verifyChain(chain, roots, Date.now() + 2 * 3600_000), /expired/);
  t.ok(keyMatchesCertificate(kc.privateKeyPem, chain[0]!));
  const kc2 = await generateKeyAndCsr({ eccSignatureAlgorithm: 'ECDSA', eccCurve: 'P256', rsaKeySize: 2048, pkcs8: false }, 'spiffe://td/ns/a/sa/b');
  t.notOk(keyMatchesCertificate(kc2.privateKeyPem, chain[0]!));
  t.same(spiffeIds(chain[0]!), ['spiffe://td/ns/a/sa/b']);
});
