// Keys and CSRs (Istio's generate_csr_test.go): RSA / P-256 / P-384 CSRs that openssl verifies,
// with Istio's exact subject, critical SPIFFE URI SAN, signature algorithm and key encodings.
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CsrError, generateKeyAndCsr, keyAlgorithm, spiffeIdentity, type KeyOptions } from '../../../agent/security/index.js';

const dir = mkdtempSync(join(tmpdir(), 'csr-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function openssl(args: string[], input: string): string {
  const f = join(dir, `in-${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(f, input);
  return execFileSync('openssl', [...args, '-in', f], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

const base: KeyOptions = { eccSignatureAlgorithm: '', eccCurve: 'P256', rsaKeySize: 2048, pkcs8: false };
const id = spiffeIdentity('cluster.local', 'ns1', 'sa1');

t.equal(id, 'spiffe://cluster.local/ns/ns1/sa/sa1');
t.equal(spiffeIdentity('td', '', ''), 'spiffe://td/ns//sa/', 'plain concatenation, no checks');

const cases: [string, Partial<KeyOptions>, string, string, string][] = [
  ['RSA 2048', {}, 'sha256WithRSAEncryption', 'RSA PRIVATE KEY', 'rsa'],
  ['ECDSA P-256', { eccSignatureAlgorithm: 'ECDSA' }, 'ecdsa-with-SHA256', 'EC PRIVATE KEY', 'ec'],
  ['ECDSA P-384', { eccSignatureAlgorithm: 'ECDSA', eccCurve: 'P384' }, 'ecdsa-with-SHA384', 'EC PRIVATE KEY', 'ec'],
  ['RSA PKCS#8', { pkcs8: true }, 'sha256WithRSAEncryption', 'PRIVATE KEY', 'rsa'],
  ['ECDSA PKCS#8', { eccSignatureAlgorithm: 'ECDSA', pkcs8: true }, 'ecdsa-with-SHA256', 'PRIVATE KEY', 'ec'],
];

for (const [name, o, sigAlg, keyLabel, keyType] of cases) {
  t.test(name, async (t) => {
    const { privateKeyPem, csrPem } = await generateKeyAndCsr({ ...base, ...o }, id);
    t.match(privateKeyPem, new RegExp(`^-----BEGIN ${keyLabel}-----\\n`));
    t.equal(createPrivateKey(privateKeyPem).asymmetricKeyType, keyType);
    t.match(csrPem, /^-----BEGIN CERTIFICATE REQUEST-----\n/);
    // openssl checks the self-signature; the text shows the fields.
    const text = openssl(['req', '-verify', '-noout', '-text'], csrPem);
    t.match(text, /Version: 1 \(0x0\)/, 'version 0');
    t.match(text, new RegExp(`Signature Algorithm: ${sigAlg}`));
    t.match(text, /X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/ns1\/sa\/sa1\s/);
    if (o.eccCurve === 'P384') t.match(text, /NIST CURVE: P-384/);
    // Subject: exactly one RDN, O as an empty PrintableString; no CN.
    const asn = openssl(['asn1parse', '-i'], csrPem);
    t.match(asn, /OBJECT\s+:organizationName\n.*PRINTABLESTRING\s+:\s*\n/);
    t.notMatch(asn, /commonName/);
    // The key in the CSR is ours.
    const pub = openssl(['req', '-pubkey', '-noout'], csrPem);
    t.equal(createPublicKey(pub).export({ type: 'spki', format: 'der' }).toString('base64'), createPublicKey(privateKeyPem).export({ type: 'spki', format: 'der' }).toString('base64'));
  });
}

t.test('bad key options are errors naming the value', async (t) => {
  t.throws(() => keyAlgorithm({ ...base, eccSignatureAlgorithm: 'ED25519' }), { name: 'CsrError', message: /unsupported ECC signature algorithm "ED25519"/ });
  t.throws(() => keyAlgorithm({ ...base, rsaKeySize: 1024 }), { message: /invalid RSA key size 1024/ });
  await t.rejects(generateKeyAndCsr({ ...base, eccSignatureAlgorithm: 'foo' }, id), CsrError);
  t.same(keyAlgorithm({ ...base, eccSignatureAlgorithm: 'ECDSA', eccCurve: 'weird' }), { kind: 'ec', curve: 'P-256' }, 'any other curve is P-256');
  t.same(keyAlgorithm({ ...base, rsaKeySize: 3072 }), { kind: 'rsa', bits: 3072 });
});

t.test('key generation does not block the event loop', async (t) => {
  let ticks = 0;
  const iv = setInterval(() => ticks++, 5);
  await generateKeyAndCsr(base, id);
  await generateKeyAndCsr(base, id);
  clearInterval(iv);
  t.ok(ticks > 0, `timers ran during two RSA key generations (${ticks} ticks)`);
});
