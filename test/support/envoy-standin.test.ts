// The stand-in Envoy itself: it refuses what Envoy refuses, serves the admin API from the
// bootstrap's admin address with scripted stats, exits like Envoy, and speaks ADS (SotW and
// delta) and SDS over the bootstrap's Unix sockets to a real gRPC server, ACKing and counting.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { loadEnvoyProtos, messageCodec, packAny } from './envoy-protos.js';
import { pidAlive, standin, standinBin, whenGone, writeTestBootstrap, type StandinScript } from './envoy-standin/index.js';
import { freePort } from './ports.js';

function run(args: string[], env: Record<string, string>, cwd: string) {
  const child = spawn(standinBin, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as string | null, stderr }));
  return { child, exited };
}

async function get(port: number, path: string, method = 'GET') {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: res.status, body: await res.text() };
}

async function started(script: StandinScript = {}) {
  const s = standin(script);
  const port = await freePort();
  const boot = writeTestBootstrap(join(s.dir, 'bootstrap.json'), { adminPort: port });
  const p = run(['-c', boot, '--drain-time-s', '1', '-l', 'warning'], s.env, s.dir);
  const start = await s.waitFor('start');
  return { s, port, p, start };
}

t.test("refuses what Envoy's option parser refuses, with exit 1", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'standin-flags-'));
  const cases: [string[], RegExp][] = [
    [['-c', 'x.json', '--no-such-flag'], /Couldn't find match for argument/],
    [['-c', 'x.json', '-l', 'loud'], /does not meet constraint/],
    [['-c', 'x.json', '-l', 'info', '-l', 'debug'], /already set/],
    [['-c', 'x.json', '--component-log-level', 'misc'], /component log level/],
    [['-c', 'x.json', '--drain-strategy', 'slow'], /drain-strategy/],
    [['-c', 'x.json', '--concurrency', 'two'], /Couldn't read argument value/],
    [['--drain-time-s', '5'], /config-path or --config-yaml/],
    [['-c', join(dir, 'missing.json')], /unable to read file/],
  ];
  for (const [args, re] of cases) {
    const r = await run(args, {}, dir).exited;
    t.equal(r.code, 1, args.join(' '));
    t.match(r.stderr, re);
  }
});

t.test('admin API: scripted stats move with time, /ready, /server_info, 405 and scripted failures', async (t) => {
  const { s, port, p, start } = await started({
    stats: {
      'server.state': { value: 3, step: -3, everyMs: 1500, min: 0 },
      'listener.0.0.0.0_8080.downstream_cx_active': { value: 2, step: -1, everyMs: 200, from: 'drain', min: 0 },
      'listener_manager.workers_started': null,
    },
    adminStatus: { '/config_dump': 503 },
  });
  t.teardown(() => p.child.kill('SIGKILL'));
  t.equal(start.adminPort, port);
  t.same(start.argv, ['-c', join(s.dir, 'bootstrap.json'), '--drain-time-s', '1', '-l', 'warning']);
  const first = await get(port, '/ready');
  t.same(first, { status: 503, body: 'INITIALIZING\n' });
  const stats = await get(port, '/stats?usedonly&filter=^(server\\.state|listener_manager\\.workers_started)');
  t.equal(stats.body, 'server.state: 3\n', 'filter applied, removed stat absent');
  await new Promise((r) => setTimeout(r, 1600));
  t.same(await get(port, '/ready'), { status: 200, body: 'LIVE\n' });
  t.match((await get(port, '/stats?filter=downstream_cx_active$')).body, /8080\.downstream_cx_active: 2\n/, 'countdown waits for the drain');
  t.equal((await get(port, '/quitquitquit')).status, 405, 'POST only');
  t.equal((await get(port, '/config_dump')).status, 503, 'scripted status');
  const info = JSON.parse((await get(port, '/server_info')).body) as Record<string, any>;
  t.equal(info.state, 'LIVE');
  t.equal(info.command_line_options['--drain-time-s'], '1');
  t.match((await get(port, '/stats/prometheus')).body, /^envoy_server_state 0$/m);
  t.equal((await get(port, '/drain_listeners?inboundonly&graceful&skip_exit', 'POST')).body, 'OK\n');
  await new Promise((r) => setTimeout(r, 450));
  t.match((await get(port, '/stats?filter=downstream_cx_active$')).body, /8080\.downstream_cx_active: 0\n/, 'counted down after the drain');
  t.ok(pidAlive(start.pid), 'skip_exit: still running after the drain period');
  const drain = await s.waitFor('drain');
  t.same({ ...drain, t: 0 }, { e: 'drain', t: 0, inboundOnly: true, graceful: true, skipExit: true });
});

t.test('exits like Envoy: SIGTERM, /quitquitquit, the end of a graceful drain, scripted crash', async (t) => {
  {
    const { s, p } = await started();
    p.child.kill('SIGTERM');
    t.equal((await p.exited).code, 0, 'SIGTERM: clean exit');
    t.match(
      s.events().filter((e) => e.e === 'signal' || e.e === 'exit'),
      [
        { e: 'signal', signal: 'SIGTERM' },
        { e: 'exit', code: 0, reason: 'SIGTERM' },
      ],
    );
  }
  {
    const { s, port, p } = await started();
    t.equal((await get(port, '/quitquitquit', 'POST')).body, 'OK\n');
    t.equal((await p.exited).code, 0);
    t.match(s.events().at(-1), { e: 'exit', reason: 'quitquitquit' });
  }
  {
    const { s, port, p } = await started();
    const t0 = Date.now();
    await get(port, '/drain_listeners?inboundonly&graceful', 'POST');
    t.equal((await p.exited).code, 0);
    t.ok(Date.now() - t0 >= 950, 'exits after --drain-time-s');
    t.match(s.events().at(-1), { e: 'exit', reason: 'drain period over' });
  }
  {
    const { s, port, p, start } = await started({ ignoreSigterm: true });
    p.child.kill('SIGTERM');
    await s.waitFor('signal');
    t.equal((await get(port, '/ready')).status, 200, 'ignoring SIGTERM: still serving');
    p.child.kill('SIGKILL');
    await whenGone(start.pid);
  }
  {
    const { p } = await started({ exit: { afterMs: 50, signal: 'SIGABRT' } });
    t.equal((await p.exited).signal, 'SIGABRT', 'scripted crash');
  }
});

// --- a real gRPC control plane on Unix sockets ---------------------------------------------

const root = loadEnvoyProtos([
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/secret/v3/sds.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/config/cluster/v3/cluster.proto',
]);
const codec = (name: string) => messageCodec(root, name);
const anyOf = (type: string, body: object) => packAny(root, type, body);
const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const LDS = 'type.googleapis.com/envoy.config.listener.v3.Listener';

async function until(cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs}ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function bidi(path: string, req: string, res: string) {
  const i = codec(req);
  const o = codec(res);
  return { path, requestStream: true, responseStream: true, requestSerialize: i.serialize, requestDeserialize: i.deserialize, responseSerialize: o.serialize, responseDeserialize: o.deserialize };
}

t.test('ADS (SotW and delta) and SDS over the bootstrap pipes: node on the first message, ACK/NACK, counters', async (t) => {
  for (const delta of [false, true]) {
    const dir = mkdtempSync(join(tmpdir(), 'standin-xds-'));
    mkdirSync(join(dir, 'etc/istio/proxy'), { recursive: true });
    mkdirSync(join(dir, 'var/run/secrets/workload-spiffe-uds'), { recursive: true });
    const seen: Record<string, any>[] = [];
    const server = new grpc.Server();
    server.addService(
      {
        StreamAggregatedResources: bidi(
          '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
          'envoy.service.discovery.v3.DiscoveryRequest',
          'envoy.service.discovery.v3.DiscoveryResponse',
        ),
        DeltaAggregatedResources: bidi(
          '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
          'envoy.service.discovery.v3.DeltaDiscoveryRequest',
          'envoy.service.discovery.v3.DeltaDiscoveryResponse',
        ),
      },
      {
        StreamAggregatedResources: (call: grpc.ServerDuplexStream<any, any>) => {
          call.on('data', (m: Record<string, any>) => {
            seen.push(m);
            if (!m.response_nonce && m.type_url === CDS)
              call.write({ type_url: CDS, version_info: 'v1', nonce: 'n1', resources: [anyOf('envoy.config.cluster.v3.Cluster', { name: 'outbound|80||a.default' })] });
            if (!m.response_nonce && m.type_url === LDS) call.write({ type_url: LDS, version_info: 'v1', nonce: 'n2', resources: [] });
          });
        },
        DeltaAggregatedResources: (call: grpc.ServerDuplexStream<any, any>) => {
          call.on('data', (m: Record<string, any>) => {
            seen.push(m);
            if (!m.response_nonce && m.type_url === CDS) {
              call.write({
                type_url: CDS,
                system_version_info: 'v1',
                nonce: 'd1',
                resources: [{ name: 'outbound|80||a.default', version: '1', resource: anyOf('envoy.config.cluster.v3.Cluster', { name: 'outbound|80||a.default' }) }],
              });
            }
            if (!m.response_nonce && m.type_url === LDS) call.write({ type_url: LDS, system_version_info: 'v1', nonce: 'd2', resources: [] });
          });
        },
      },
    );
    const sdsSeen: Record<string, any>[] = [];
    server.addService(
      { StreamSecrets: bidi('/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets', 'envoy.service.discovery.v3.DiscoveryRequest', 'envoy.service.discovery.v3.DiscoveryResponse') },
      {
        StreamSecrets: (call: grpc.ServerDuplexStream<any, any>) => {
          call.on('data', (m: Record<string, any>) => {
            sdsSeen.push(m);
            if (!m.response_nonce) {
              const secret =
                m.resource_names[0] === 'ROOTCA'
                  ? { name: 'ROOTCA', validation_context: { trusted_ca: { inline_bytes: Buffer.from('-----BEGIN CERTIFICATE-----\nROOT\n') } } }
                  : {
                      name: 'default',
                      tls_certificate: { certificate_chain: { inline_bytes: Buffer.from('-----BEGIN CERTIFICATE-----\nLEAF\n') }, private_key: { inline_bytes: Buffer.from('KEY') } },
                    };
              call.write({
                type_url: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
                version_info: 'c1',
                nonce: `s-${secret.name}`,
                resources: [anyOf('envoy.extensions.transport_sockets.tls.v3.Secret', secret)],
              });
            }
          });
        },
      },
    );
    // One server on both sockets is enough for the stand-in: it only dials the pipes.
    for (const sock of ['etc/istio/proxy/XDS', 'var/run/secrets/workload-spiffe-uds/socket']) {
      await new Promise<void>((res, rej) => server.bindAsync(`unix://${join(dir, sock)}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
    }
    const s = standin({ xds: { nack: [LDS] } }, dir);
    const port = await freePort();
    const boot = writeTestBootstrap(join(dir, 'bootstrap.json'), {
      adminPort: port,
      apiType: delta ? 'DELTA_GRPC' : 'GRPC',
      node: { id: 'sidecar~1.2.3.4~p.ns~ns.svc.cluster.local', metadata: { ISTIO_VERSION: '1.32.0', LABELS: { app: 'x' } } },
    });
    const p = run(['-c', boot], s.env, dir);
    t.teardown(() => {
      p.child.kill('SIGKILL');
      server.forceShutdown();
    });
    const cds = await s.waitFor('xds-response', (e) => e.typeUrl === CDS);
    t.same(
      cds.resources.map((r) => r.name),
      ['outbound|80||a.default'],
      `${delta ? 'delta' : 'SotW'}: CDS resource decoded`,
    );
    // What the control plane received (the stand-in records a request as it sends it).
    await until(() => seen.some((m) => m.type_url === CDS && m.response_nonce) && seen.some((m) => m.type_url === LDS && m.response_nonce));
    const first = seen[0]!;
    t.equal(first.node?.id, 'sidecar~1.2.3.4~p.ns~ns.svc.cluster.local', 'node on the first message');
    t.equal(first.node?.metadata?.fields?.LABELS?.structValue?.fields?.app?.stringValue, 'x', 'metadata as a Struct');
    t.notOk(seen[1]!.node, 'node only on the first message');
    const ack = seen.find((m) => m.type_url === CDS && m.response_nonce);
    t.equal(ack?.response_nonce, delta ? 'd1' : 'n1', 'CDS ACKed with the nonce');
    if (!delta) t.equal(ack?.version_info, 'v1');
    const nack = seen.find((m) => m.type_url === LDS && m.response_nonce);
    t.equal(nack?.error_detail?.code, 3, 'LDS NACKed as scripted');
    const stats = await get(port, '/stats?usedonly&filter=^(cluster_manager\\.cds|listener_manager\\.lds)\\.(update_success|update_rejected)$');
    t.equal(stats.body, 'cluster_manager.cds.update_rejected: 0\ncluster_manager.cds.update_success: 1\nlistener_manager.lds.update_rejected: 1\nlistener_manager.lds.update_success: 0\n');

    const leaf = await s.waitFor('xds-response', (e) => e.stream === 'sds:default');
    t.match(leaf.resources[0]?.body, { name: 'default', tls_certificate: { certificate_chain: { inline_bytes: /LEAF/ } } }, 'SDS secret decoded with readable bytes');
    const rootca = await s.waitFor('xds-response', (e) => e.stream === 'sds:ROOTCA');
    t.match(rootca.resources[0]?.body, { validation_context: { trusted_ca: { inline_bytes: /ROOT/ } } });
    await until(() => sdsSeen.some((m) => m.response_nonce === 's-ROOTCA') && sdsSeen.some((m) => m.response_nonce === 's-default'));
    t.same(
      sdsSeen
        .filter((m) => !m.response_nonce)
        .map((m) => m.resource_names)
        .sort(),
      [['ROOTCA'], ['default']],
      'one SDS stream per secret',
    );

    // The control plane goes away: the stream is reported closed and reopened once it is back.
    const connects = s.events().filter((e) => e.e === 'xds-connect' && e.stream === 'ads').length;
    server.forceShutdown();
    await s.waitFor('xds-closed', (e) => e.stream === 'ads');
    rmSync(join(dir, 'etc/istio/proxy/XDS'), { force: true });
    const again = new grpc.Server();
    let reopened = 0;
    const count = (call: grpc.ServerDuplexStream<any, any>) => {
      reopened++;
      call.on('data', () => {});
    };
    again.addService(
      {
        StreamAggregatedResources: bidi(
          '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
          'envoy.service.discovery.v3.DiscoveryRequest',
          'envoy.service.discovery.v3.DiscoveryResponse',
        ),
        DeltaAggregatedResources: bidi(
          '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
          'envoy.service.discovery.v3.DeltaDiscoveryRequest',
          'envoy.service.discovery.v3.DeltaDiscoveryResponse',
        ),
      },
      { StreamAggregatedResources: count, DeltaAggregatedResources: count },
    );
    await new Promise<void>((res, rej) => again.bindAsync(`unix://${join(dir, 'etc/istio/proxy/XDS')}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));
    t.teardown(() => again.forceShutdown());
    await s.waitFor('xds-connect', () => s.events().filter((e) => e.e === 'xds-connect' && e.stream === 'ads').length > connects);
    await until(() => reopened > 0);
    t.equal(reopened, 1, 'the stream reopened against the new server');
  }
});

t.test('auto mode: no socket at start means no stream', async (t) => {
  const { s, p } = await started();
  t.teardown(() => p.child.kill('SIGKILL'));
  const skipped = await s.waitFor('xds-skipped', (e) => e.stream === 'ads');
  t.match(skipped.reason, /no socket at \.\/etc\/istio\/proxy\/XDS/);
});
