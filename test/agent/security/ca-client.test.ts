// The istiod CA client against the test CA over real gRPC/TLS (Istio's citadel client_test.go):
// chains, error texts, retries with x-retry-attempt, the bearer token re-read on every call,
// metadata, PROV_CERT mutual TLS that picks up certificates appearing later, plaintext.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { CitadelClient, generateKeyAndCsr, type CitadelClientOptions } from '../../../agent/security/index.js';
import { configureLogging } from '../../../lib/log.js';
import { TestCaServer } from '../../support/test-ca.js';

configureLogging({ outputLevels: 'error' });

const dir = mkdtempSync(join(tmpdir(), 'caclient-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const ec = { eccSignatureAlgorithm: 'ECDSA', eccCurve: 'P256', rsaKeySize: 2048, pkcs8: false };
const csr = async () => (await generateKeyAndCsr(ec, 'spiffe://cluster.local/ns/ns1/sa/sa1')).csrPem;

type Teardown = { teardown(fn: () => unknown): void };
const defaults = { clusterId: '', certSigner: '', headers: [] as [string, string][], keepaliveMs: 30_000, keepaliveTimeoutMs: 10_000, retryBaseMs: 10 };

async function newClient(t: Teardown, o: Pick<CitadelClientOptions, 'address'> & Partial<CitadelClientOptions>): Promise<CitadelClient> {
  const c = await CitadelClient.create({ ...defaults, ...o });
  t.teardown(() => c.close());
  return c;
}

let n = 0;
async function setup(t: Teardown, opts: { requireClientCert?: boolean; plaintext?: boolean } = {}, extra: Partial<CitadelClientOptions> = {}) {
  const ca = await TestCaServer.start(opts);
  const d = join(dir, String(++n));
  mkdirSync(d);
  const rootPath = join(d, 'root-cert.pem');
  ca.writeServerRoot(rootPath);
  const tokenPath = join(d, 'istio-token');
  writeFileSync(tokenPath, 'token-1\n');
  t.teardown(() => ca.stop());
  const client = await newClient(t, {
    address: ca.address,
    ...(opts.plaintext ? {} : { tls: { root: { kind: 'file', path: rootPath, via: 'default' }, serverName: 'istiod.istio-system.svc' } }),
    tokenPath,
    clusterId: 'Kubernetes',
    headers: [['Foo', 'bar']],
    ...extra,
  });
  return { ca, client, d, rootPath, tokenPath };
}

t.test('valid certs: the chain comes back unchanged; request carries TTL, metadata and headers', async (t) => {
  const { ca, client } = await setup(t, {}, { certSigner: 'signer-a' });
  const chain = await client.csrSign(await csr(), 3600);
  t.equal(chain.length, 2);
  t.equal(chain[1], ca.rootBundle);
  const req = ca.requests[0]!;
  t.equal(req.ttlSeconds, 3600);
  t.equal(req.certSigner, 'signer-a');
  t.equal(req.metadata.authorization, 'Bearer token-1', 'token trimmed');
  t.equal(req.metadata.clusterid, 'Kubernetes');
  t.equal(req.metadata.foo, 'bar', 'CA_HEADER_Foo sent lower-cased');
  t.notOk('x-retry-attempt' in req.metadata, 'no retry header on the first attempt');
});

t.test('empty CertSigner is still sent', async (t) => {
  const { ca, client } = await setup(t);
  await client.csrSign(await csr(), 60);
  t.equal(ca.requests[0]!.certSigner, '');
});

t.test('error in response: Go-style status text, not retried', async (t) => {
  const { ca, client } = await setup(t);
  ca.failCount = 1;
  ca.failCode = grpc.status.UNKNOWN;
  ca.failMessage = 'test failure';
  await t.rejects(client.csrSign(await csr(), 60), { message: 'create certificate: rpc error: code = Unknown desc = test failure' });
  t.equal(ca.calls, 1);
});

t.test('empty and one-element responses: invalid empty CertChain', async (t) => {
  const { ca, client } = await setup(t);
  ca.truncateChain = 0;
  await t.rejects(client.csrSign(await csr(), 60), { message: 'invalid empty CertChain' });
  ca.truncateChain = 1;
  await t.rejects(client.csrSign(await csr(), 60), { message: 'invalid empty CertChain' });
});

t.test('UNAVAILABLE is retried with x-retry-attempt, up to 5 attempts', async (t) => {
  const { ca, client } = await setup(t);
  ca.failCount = 2;
  const chain = await client.csrSign(await csr(), 60);
  t.equal(chain.length, 2);
  t.equal(ca.calls, 3);
  t.same(
    ca.requests.map((r) => r.metadata['x-retry-attempt']),
    [undefined, '1', '2'],
  );
  t.equal(client.retries, 2);
  ca.failCount = 10;
  await t.rejects(client.csrSign(await csr(), 60), { message: /code = Unavailable desc = CA server is not available/ });
  t.equal(ca.calls, 8, 'five attempts in total');
});

t.test('token: re-read on every call; a missing file sends no header and the CA refuses', async (t) => {
  const { ca, client, tokenPath } = await setup(t);
  ca.requiredToken = 'token-2';
  await t.rejects(client.csrSign(await csr(), 60), { message: /Unauthenticated desc = request authenticate failure/ });
  writeFileSync(tokenPath, 'token-2');
  await client.csrSign(await csr(), 60);
  t.equal(ca.requests.at(-1)!.metadata.authorization, 'Bearer token-2', 'the new token is used');
  rmSync(tokenPath);
  await t.rejects(client.csrSign(await csr(), 60), { message: /no HTTP authorization header exists/ });
  t.notOk('authorization' in ca.requests.at(-1)!.metadata);
});

t.test('a new root is picked up after a failure (the connection is rebuilt)', async (t) => {
  const { ca, rootPath, tokenPath } = await setup(t);
  const other = await TestCaServer.start();
  t.teardown(() => other.stop());
  other.writeServerRoot(rootPath); // the wrong root: TLS fails
  const client = await newClient(t, { address: ca.address, tls: { root: { kind: 'file', path: rootPath, via: 'default' }, serverName: 'istiod.istio-system.svc' }, tokenPath });
  await t.rejects(client.csrSign(await csr(), 60), { message: /create certificate: rpc error: code = Unavailable/ });
  ca.writeServerRoot(rootPath);
  const chain = await client.csrSign(await csr(), 60);
  t.equal(chain.length, 2);
});

t.test('PROV_CERT: mutual TLS; certificates that appear later are used after a failure', async (t) => {
  const prov = join(dir, 'prov');
  mkdirSync(prov);
  const { ca, client } = await setup(t, { requireClientCert: true }, {});
  // Rebuild the client with PROV_CERT paths.
  client.close();
  const rootPath = join(prov, 'root-cert.pem');
  ca.writeServerRoot(rootPath);
  const clientCert = { keyPath: join(prov, 'key.pem'), certPath: join(prov, 'cert-chain.pem') };
  const mtls = await newClient(t, { address: ca.address, tls: { root: { kind: 'file', path: rootPath, via: 'PROV_CERT' }, serverName: 'istiod.istio-system.svc', clientCert } });
  await t.rejects(mtls.csrSign(await csr(), 60), 'no client certificate: the server refuses the handshake');
  const kc = await generateKeyAndCsr(ec, 'spiffe://cluster.local/ns/vm/sa/vm');
  const [leaf, root] = await ca.ca.sign(kc.csrPem, { ttlSeconds: 3600 });
  writeFileSync(join(prov, 'key.pem'), kc.privateKeyPem);
  writeFileSync(join(prov, 'cert-chain.pem'), leaf! + root!);
  const chain = await mtls.csrSign(await csr(), 60);
  t.equal(chain.length, 2);
  t.ok(ca.requests.at(-1)!.clientCert, 'the server saw the client certificate');
});

t.test('plaintext (:15010 mode): the token still goes in the metadata', async (t) => {
  const { ca, client } = await setup(t, { plaintext: true });
  await client.csrSign(await csr(), 60);
  t.equal(ca.requests[0]!.metadata.authorization, 'Bearer token-1');
});
