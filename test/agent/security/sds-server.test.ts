// The SDS server against a real gRPC client on its unix socket: the stream cases of Istio's
// security/pkg/nodeagent/sds/sdsservice_test.go and the per-stream state machine
// (sds-stream.ts), with a fake secret store.
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { configureLogging } from '../../../lib/log.js';
import * as grpc from '@grpc/grpc-js';
import { loadSdsProtos, SdsServer, UnknownResourceError, type SecretItem, type SecretSource } from '../../../agent/security/index.js';
import { chainOf, keyOf, rootOf, SdsTestClient, sdsRequest } from '../../support/sds-client.js';

class FakeStore implements SecretSource {
  readonly items = new Map<string, SecretItem>();
  private readonly cbs = new Set<(n: string) => void>();
  generated: string[] = [];

  constructor() {
    this.items.set('default', { resourceName: 'default', certificateChain: 'chain-1', privateKey: 'key-1', createdTime: 0, expireTime: 0 });
    this.items.set('ROOTCA', { resourceName: 'ROOTCA', rootCert: 'root-1', createdTime: 0, expireTime: 0 });
  }

  async generateSecret(name: string): Promise<SecretItem> {
    this.generated.push(name);
    if (name.startsWith('unknown')) throw new UnknownResourceError(`unknown SDS resource name ${JSON.stringify(name)}`);
    const it = this.items.get(name);
    if (!it) throw new Error('no such secret');
    return { ...it, resourceName: name };
  }

  onSecretUpdate(cb: (n: string) => void): () => void {
    this.cbs.add(cb);
    return () => this.cbs.delete(cb);
  }

  push(name: string): void {
    for (const cb of this.cbs) cb(name);
  }
}

async function setup(t: { teardown(fn: () => unknown): void }, opts: { crl?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sds-'));
  const socketPath = join(dir, 'var/run/secrets/workload-spiffe-uds/socket');
  const store = new FakeStore();
  let crlPath: string | undefined;
  if (opts.crl) {
    crlPath = join(dir, 'ca-crl.pem');
    writeFileSync(crlPath, 'crl');
  }
  const server = await SdsServer.create(store, { socketPath, ...(crlPath ? { crlPath } : {}) });
  await server.start();
  const clients: SdsTestClient[] = [];
  const connect = async () => {
    const c = await SdsTestClient.connect(socketPath);
    clients.push(c);
    return c;
  };
  t.teardown(async () => {
    for (const c of clients) c.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, socketPath, store, server, connect };
}

configureLogging({ outputLevels: 'error' });

const QUIET = 300;

t.test('socket: stale file removed, parent 0750, socket 0666, removed on stop', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sds-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socketPath = join(dir, 'uds/socket');
  mkdirSync(join(dir, 'uds'));
  writeFileSync(socketPath, 'stale'); // a leftover file: bind would fail with EADDRINUSE
  const server = await SdsServer.create(new FakeStore(), { socketPath });
  await server.start();
  t.ok(statSync(socketPath).isSocket(), 'listening on the socket');
  t.equal(statSync(socketPath).mode & 0o777, 0o666);
  const c = await SdsTestClient.connect(socketPath);
  const r = await c.subscribe(['default']);
  t.equal(chainOf(r.secrets[0]!), 'chain-1');
  c.close();
  await server.stop();
  t.throws(() => statSync(socketPath), 'socket file removed on stop');
});

t.test('multiplexed: default, ACK silent, then [default, ROOTCA] answers only ROOTCA', async (t) => {
  const { connect } = await setup(t);
  const c = await connect();
  c.send(sdsRequest(['default']));
  const r1 = await c.next();
  t.equal(r1.type_url, 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret');
  t.equal(r1.secrets.length, 1);
  t.equal(r1.secrets[0]!.name, 'default');
  t.equal(chainOf(r1.secrets[0]!), 'chain-1');
  t.equal(keyOf(r1.secrets[0]!), 'key-1');
  t.match(r1.version_info, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)\/\d+$/);
  t.match(r1.nonce, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  c.send(sdsRequest(['default'], { node: null, response_nonce: r1.nonce, version_info: r1.version_info }));
  t.ok(await c.nothingWithin(QUIET), 'ACK gets no response');
  c.send(sdsRequest(['default', 'ROOTCA'], { node: null, response_nonce: r1.nonce, version_info: r1.version_info }));
  const r2 = await c.next();
  t.same(
    r2.secrets.map((s) => s.name),
    ['ROOTCA'],
    'only the added name',
  );
  t.equal(rootOf(r2.secrets[0]!), 'root-1');
  c.send(sdsRequest(['default', 'ROOTCA'], { node: null, response_nonce: r2.nonce }));
  t.ok(await c.nothingWithin(QUIET), 'ACK gets no response');
});

t.test('multiplexed root first: [ROOTCA], then [default] without nonce is a new subscription', async (t) => {
  const { connect } = await setup(t);
  const c = await connect();
  const r1 = await c.subscribe(['ROOTCA']);
  t.equal(rootOf(r1.secrets[0]!), 'root-1');
  c.send(sdsRequest(['default'], { node: null }));
  const r2 = await c.next();
  t.same(
    r2.secrets.map((s) => s.name),
    ['default'],
  );
});

t.test('multiplexed multiple single: the same request without nonce is answered each time', async (t) => {
  const { connect } = await setup(t);
  const c = await connect();
  for (let i = 0; i < 3; i++) {
    c.send(sdsRequest(['ROOTCA'], i === 0 ? {} : { node: null }));
    const r = await c.next();
    t.same(
      r.secrets.map((s) => s.name),
      ['ROOTCA'],
    );
    c.send(sdsRequest(['ROOTCA'], { node: null, response_nonce: r.nonce }));
    t.ok(await c.nothingWithin(100), 'ACK silent');
  }
});

t.test('parallel streams for cert and root do not affect each other; push reaches only the watcher', async (t) => {
  const { connect, store } = await setup(t);
  const cert = await connect();
  const root = await connect();
  await Promise.all([cert.subscribe(['default']), root.subscribe(['ROOTCA'])]);
  store.items.set('default', { resourceName: 'default', certificateChain: 'chain-2', privateKey: 'key-2', createdTime: 0, expireTime: 0 });
  store.push('default');
  const pushed = await cert.next();
  t.equal(pushed.secrets.length, 1, 'exactly one resource');
  t.equal(chainOf(pushed.secrets[0]!), 'chain-2');
  t.ok(await root.nothingWithin(QUIET), 'the ROOTCA stream gets nothing');
  t.ok(await cert.nothingWithin(100), 'no duplicate push');
});

t.test('unknown name: the stream ends with INVALID_ARGUMENT (safer than Istio serving the workload cert)', async (t) => {
  const { connect } = await setup(t);
  const c = await connect();
  c.send(sdsRequest(['unknown-thing']));
  const end = await c.ended;
  t.equal(end.code, grpc.status.INVALID_ARGUMENT);
  t.match(end.details, /failed to generate secret for unknown-thing: unknown SDS resource name/);
});

t.test('secret missing: the stream ends with "failed to generate secret"; a new stream succeeds once added', async (t) => {
  const { connect, store } = await setup(t);
  store.items.delete('default');
  const c = await connect();
  c.send(sdsRequest(['default']));
  const end = await c.ended;
  t.equal(end.code, grpc.status.UNKNOWN);
  t.match(end.details, /^failed to generate secret for default: no such secret/);
  store.items.set('default', { resourceName: 'default', certificateChain: 'c', privateKey: 'k', createdTime: 0, expireTime: 0 });
  const c2 = await connect();
  const r = await c2.subscribe(['default']);
  t.equal(chainOf(r.secrets[0]!), 'c');
});

t.test('update empty: a push whose generation fails ends the existing stream', async (t) => {
  const { connect, store } = await setup(t);
  const c = await connect();
  await c.subscribe(['default']);
  store.items.delete('default');
  store.push('default');
  const end = await c.ended;
  t.match(end.details, /failed to generate secret for default/);
});

t.test('reconnect: a first request carrying an old nonce and version is still answered', async (t) => {
  const { connect } = await setup(t);
  const c1 = await connect();
  const r1 = await c1.subscribe(['default']);
  c1.close();
  const c2 = await connect();
  c2.send(sdsRequest(['default'], { response_nonce: r1.nonce, version_info: r1.version_info }));
  const r2 = await c2.next();
  t.equal(r2.secrets[0]!.name, 'default');
});

t.test('unsubscribe: empty names after ACK gives no response and stops pushes', async (t) => {
  const { connect, store } = await setup(t);
  const c = await connect();
  const r = await c.subscribe(['default']);
  c.send(sdsRequest([], { node: null, response_nonce: r.nonce }));
  t.ok(await c.nothingWithin(QUIET));
  store.push('default');
  t.ok(await c.nothingWithin(QUIET), 'no push after unsubscribe');
});

t.test('nack: a request with error_detail gets no response; a NACK as the first request is ignored', async (t) => {
  const { connect, server } = await setup(t);
  const c = await connect();
  c.send(sdsRequest(['default'], { error_detail: { code: 13, message: 'bad cert' } }));
  t.ok(await c.nothingWithin(QUIET), 'no response, no crash');
  const r = await c.subscribe(['default']);
  c.send(sdsRequest(['default'], { node: null, response_nonce: r.nonce, error_detail: { code: 13, message: 'rejected' } }));
  t.ok(await c.nothingWithin(QUIET));
  t.equal(server.metrics.rejects, 2);
});

t.test('stale nonce is ignored', async (t) => {
  const { connect, server } = await setup(t);
  const c = await connect();
  await c.subscribe(['default']);
  c.send(sdsRequest(['default', 'ROOTCA'], { node: null, response_nonce: 'not-the-last-nonce' }));
  t.ok(await c.nothingWithin(QUIET));
  t.equal(server.metrics.expiredNonces, 1);
});

t.test('missing node on the first request: INVALID_ARGUMENT "missing node information"', async (t) => {
  const { connect } = await setup(t);
  const c = await connect();
  c.send(sdsRequest(['default'], { node: null }));
  const end = await c.ended;
  t.equal(end.code, grpc.status.INVALID_ARGUMENT);
  t.equal(end.details, 'missing node information');
});

t.test('non-Secret type_url: empty names are not an unsubscribe (answered with zero resources)', async (t) => {
  const { connect } = await setup(t);
  const c = await connect();
  c.send(sdsRequest([], { type_url: '' }));
  const r = await c.next();
  t.equal(r.secrets.length, 0);
  t.equal(r.type_url, 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret');
});

t.test('several names on one stream, and the CRL file in validation contexts', async (t) => {
  const { connect, dir } = await setup(t, { crl: true });
  const c = await connect();
  const r = await c.subscribe(['default', 'ROOTCA']);
  t.same(
    r.secrets.map((s) => s.name),
    ['default', 'ROOTCA'],
  );
  t.equal(r.secrets[1]!.validation_context?.crl?.filename, join(dir, 'ca-crl.pem'));
});

t.test('DeltaSecrets and FetchSecrets answer UNIMPLEMENTED', async (t) => {
  const { socketPath } = await setup(t);
  const protos = await loadSdsProtos();
  const Ctor = grpc.makeGenericClientConstructor(protos.service, 'SDS');
  const client = new Ctor(`unix:${socketPath}`, grpc.credentials.createInsecure()) as unknown as Record<string, (...a: unknown[]) => unknown> & grpc.Client;
  t.teardown(() => client.close());
  const fetchErr = await new Promise<grpc.ServiceError>((resolve) => client.FetchSecrets!(sdsRequest(['default']), (err: grpc.ServiceError) => resolve(err)));
  t.equal(fetchErr.code, grpc.status.UNIMPLEMENTED);
  t.equal(fetchErr.details, 'FetchSecrets not implemented');
  const delta = client.DeltaSecrets!() as grpc.ClientDuplexStream<unknown, unknown>;
  const deltaErr = await new Promise<grpc.ServiceError>((resolve) => delta.on('error', resolve));
  t.equal(deltaErr.code, grpc.status.UNIMPLEMENTED);
  t.equal(deltaErr.details, 'DeltaSecrets not implemented');
});

t.test('100 concurrent streams each get their answer and pushes', async (t) => {
  const { connect, store, server } = await setup(t);
  const clients = await Promise.all(Array.from({ length: 100 }, () => connect()));
  await Promise.all(clients.map((c) => c.subscribe(['default'])));
  t.equal(server.connectionCount, 100);
  store.push('default');
  const pushed = await Promise.all(clients.map((c) => c.next()));
  t.ok(pushed.every((r) => r.secrets.length === 1 && r.secrets[0]!.name === 'default'));
});
