// Proxyless gRPC through the agent: the real `pilot-agent proxy` (DISABLE_ENVOY=true, as for a
// proxyless pod) writes the gRPC bootstrap; a real @grpc/grpc-js-xds client pointed at it
// (GRPC_XDS_BOOTSTRAP) resolves `xds:///echo.default.svc.cluster.local:7070` — LDS, RDS, CDS
// and EDS from the test control plane over TLS, through the agent's XDS socket — and completes
// an RPC to a test backend on the endpoint EDS named.
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { spawnCli } from '../../support/cli.js';
import { controlPlaneProtos, envoyResource, TestControlPlane } from '../../support/control-plane.js';
import { packAny } from '../../support/envoy-protos.js';
import { xdsEnv, xdsPodDir } from '../../support/xds-agent.js';

const HOST = 'echo.default.svc.cluster.local:7070';
const CLUSTER = 'outbound|7070||echo.default.svc.cluster.local';
const ROUTE = '7070';
const LDS = 'type.googleapis.com/envoy.config.listener.v3.Listener';
const RDS = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';
const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const EDS = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';

/** A unary echo service on 127.0.0.1 (raw bytes; no protos needed). */
async function echoBackend(): Promise<{ port: number; calls: string[]; stop(): void }> {
  const server = new grpc.Server();
  const calls: string[] = [];
  const raw = (b: Buffer) => b;
  server.addService(
    { Say: { path: '/test.Echo/Say', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw } },
    {
      Say: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        calls.push(call.request.toString());
        cb(null, Buffer.from(`echo: ${call.request.toString()}`));
      },
    },
  );
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  return { port, calls, stop: () => server.forceShutdown() };
}

t.test('a @grpc/grpc-js-xds client resolves a service through the agent and completes an RPC', async (t) => {
  const backend = await echoBackend();
  t.teardown(() => backend.stop());
  const cp = await TestControlPlane.start({ requiredToken: 'test-token' });
  t.teardown(() => cp.stop());
  const root = controlPlaneProtos();
  const router = packAny(root, 'envoy.extensions.filters.http.router.v3.Router', {});
  const hcm = packAny(root, 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', {
    rds: { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: ROUTE },
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: router }],
  });
  cp.set(LDS, [envoyResource('envoy.config.listener.v3.Listener', HOST, { name: HOST, api_listener: { api_listener: hcm } })]);
  cp.set(RDS, [
    envoyResource('envoy.config.route.v3.RouteConfiguration', ROUTE, {
      name: ROUTE,
      virtual_hosts: [{ name: HOST, domains: ['*'], routes: [{ match: { prefix: '' }, route: { cluster: CLUSTER } }] }],
    }),
  ]);
  cp.set(CDS, [
    envoyResource('envoy.config.cluster.v3.Cluster', CLUSTER, {
      name: CLUSTER,
      type: 'EDS',
      eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: CLUSTER },
      lb_policy: 'ROUND_ROBIN',
    }),
  ]);
  cp.set(EDS, [
    envoyResource('envoy.config.endpoint.v3.ClusterLoadAssignment', CLUSTER, {
      cluster_name: CLUSTER,
      endpoints: [
        {
          locality: { region: 'region1', zone: 'zone1' },
          load_balancing_weight: { value: 1 },
          lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: backend.port } } }, health_status: 'HEALTHY', load_balancing_weight: { value: 1 } }],
        },
      ],
    }),
  ]);

  const cwd = xdsPodDir(cp);
  const agent = spawnCli(['proxy', 'sidecar'], { cwd, env: { ...xdsEnv(cp), DISABLE_ENVOY: 'true', CA_PROVIDER: 'local', POD_NAME: 'grpc-client-1' } });
  t.teardown(async () => {
    agent.child.kill('SIGTERM');
    await agent.exited;
  });
  await agent.waitFor(/XDS proxy listening on/);

  process.env.GRPC_XDS_BOOTSTRAP = join(cwd, 'etc/istio/proxy/grpc-bootstrap.json');
  const xds = await import('@grpc/grpc-js-xds');
  xds.register();
  const client = new grpc.Client(`xds:///${HOST}`, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  const raw = (b: Buffer) => b;
  const reply = await new Promise<string>((resolve, reject) => {
    client.makeUnaryRequest('/test.Echo/Say', raw, raw, Buffer.from('hello through istio'), new grpc.Metadata(), { deadline: Date.now() + 20_000 }, (err, res) =>
      err ? reject(err) : resolve(res!.toString()),
    );
  });
  t.equal(reply, 'echo: hello through istio', 'the RPC reached the backend EDS named');
  t.same(backend.calls, ['hello through istio']);

  // What istiod saw: the gRPC client's own node (from the agent's bootstrap) on the agent's stream.
  const types = new Set(cp.requests.map((r) => r.typeUrl));
  t.ok(
    [LDS, RDS, CDS, EDS].every((x) => types.has(x)),
    'LDS, RDS, CDS and EDS were requested through the agent',
  );
  const first = cp.requests[0]!;
  t.equal(first.node?.id, 'sidecar~10.1.1.1~grpc-client-1.default~default.svc.cluster.local', 'the node id the bootstrap gave the client');
  t.equal(first.node?.metadata?.fields?.GENERATOR?.stringValue, 'grpc', 'GENERATOR grpc');
  t.equal(cp.streams[0]!.metadata.authorization, 'Bearer test-token', 'the agent added the pod’s token');
  t.equal(cp.streams[0]!.metadata.clusterid, 'Kubernetes');
});
