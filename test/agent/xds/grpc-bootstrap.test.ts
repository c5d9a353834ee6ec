// The proxyless gRPC bootstrap (pkg/istio-agent/grpcxds): Istio's golden file (port of the "gRPC
// XDS bootstrap" case of pkg/istio-agent/agent_test.go, testdata/grpc-bootstrap.json), where and
// how the agent writes it at start, and that the XDS socket the proxy listens on is the one both
// Envoy's bootstrap (`xds-grpc` pipe) and the gRPC bootstrap (`server_uri`) point at.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { configureLogging } from '../../../lib/log.js';
import { bootstrapInputFrom, renderBootstrap } from '../../../bootstrap/index.js';
import { grpcBootstrap, serializeGrpcBootstrap, xdsSocketPath, type GrpcBootstrap } from '../../../agent/xds/index.js';
import { TestControlPlane } from '../../support/control-plane.js';
import { agentConfig } from '../../support/security-env.js';
import { xdsEnv, xdsPod } from '../../support/xds-agent.js';

configureLogging({ outputLevels: 'default:none' });

/** Istio's pkg/istio-agent/testdata/grpc-bootstrap.json. */
const GOLDEN = `{
  "xds_servers": [
    {
      "server_uri": "unix:///etc/istio/XDS",
      "channel_creds": [
        {
          "type": "insecure"
        }
      ],
      "server_features": [
        "xds_v3"
      ]
    }
  ],
  "node": {
    "id": "sidecar~127.0.0.1~pod1.fake-namespace~fake-namespace.svc.cluster.local",
    "metadata": {
      "GENERATOR": "grpc",
      "INSTANCE_IPS": "127.0.0.1",
      "ISTIO_VERSION": "version",
      "METADATA_DISCOVERY": "false",
      "PILOT_SAN": [
        "istiod.istio-system.svc"
      ]
    },
    "locality": {},
    "UserAgentVersionType": null
  },
  "certificate_providers": {
    "default": {
      "plugin_name": "file_watcher",
      "config": {
        "certificate_file": "/cert/path/cert-chain.pem",
        "private_key_file": "/cert/path/key.pem",
        "ca_certificate_file": "/cert/path/root-cert.pem",
        "refresh_interval": "900s"
      }
    }
  },
  "server_listener_resource_name_template": "xds.istio.io/grpc/lds/inbound/%s"
}`;

t.test("gRPC XDS bootstrap: Istio's golden file", async (t) => {
  // Istio's test agent: IP 127.0.0.1, no pod environment, discovery on localhost, OUTPUT_CERTS /cert/path.
  const base = agentConfig({ INSTANCE_IP: '127.0.0.1', OUTPUT_CERTS: '/cert/path', PROXY_CONFIG: '{"discoveryAddress":"localhost:15012"}' });
  const config = { ...base, identity: { ...base.identity, ipAddresses: ['127.0.0.1'], serviceNode: 'sidecar~127.0.0.1~pod1.fake-namespace~fake-namespace.svc.cluster.local' } };
  const b = grpcBootstrap(config, { xdsSocketPath: '/etc/istio/XDS', cwd: '/', istioVersion: 'version' });
  t.ok('PROXY_CONFIG' in b.node.metadata, 'PROXY_CONFIG is in the metadata (Istio’s test deletes it for determinism)');
  delete b.node.metadata.PROXY_CONFIG;
  t.equal(serializeGrpcBootstrap(b), GOLDEN, 'byte for byte');
});

t.test('metadata: typed only, GENERATOR grpc, labels and locality; Go escaping; no certificate provider without OUTPUT_CERTS', async (t) => {
  const config = agentConfig({
    ...xdsEnv(undefined),
    ISTIO_META_CUSTOM_THING: 'untyped',
    ISTIO_META_MESH_ID: 'mesh-a&b',
    ISTIO_METAJSON_LABELS: JSON.stringify({ app: 'reviews', 'topology.istio.io/locality': 'us-east.us-east-1a.rack1' }),
  });
  const b = grpcBootstrap(config, { xdsSocketPath: '/pod/etc/istio/proxy/XDS', cwd: '/pod', istioVersion: '1.32.0' });
  const md = b.node.metadata;
  t.equal(md.GENERATOR, 'grpc');
  t.notOk('CUSTOM_THING' in md, 'untyped ISTIO_META_* extras are left out');
  t.equal(md.MESH_ID, 'mesh-a&b');
  t.equal(md.NAMESPACE, 'default');
  t.equal(md.CLUSTER_ID, 'Kubernetes');
  t.notOk('ENVOY_STATUS_PORT' in md || 'ENVOY_PROMETHEUS_PORT' in md || 'WORKLOAD_IDENTITY_SOCKET_FILE' in md, 'no Envoy-only settings');
  t.same(Object.keys(md), [...Object.keys(md)].sort(), 'keys sorted');
  t.same(b.node.locality, { region: 'us-east', zone: 'us-east-1a', sub_zone: 'rack1' }, 'locality from the label');
  t.equal(b.certificate_providers, undefined);
  t.match(serializeGrpcBootstrap(b), /"MESH_ID": "mesh-a\\u0026b"/, '& escaped as Go does');
  t.same(Object.keys(b), ['xds_servers', 'node', 'server_listener_resource_name_template']);
  const withCerts = grpcBootstrap(agentConfig({ ...xdsEnv(undefined), OUTPUT_CERTS: 'etc/certs' }), { xdsSocketPath: '/pod/etc/istio/proxy/XDS', cwd: '/pod' });
  t.same(Object.keys(withCerts), ['xds_servers', 'node', 'certificate_providers', 'server_listener_resource_name_template']);
  t.equal(withCerts.certificate_providers!.default!.config.certificate_file, '/pod/etc/certs/cert-chain.pem', 'a relative OUTPUT_CERTS resolves against the agent’s directory');
});

t.test('written at start: GRPC_XDS_BOOTSTRAP (default etc/istio/proxy/grpc-bootstrap.json), 0644, pointing at the socket', async (t) => {
  const cp = await TestControlPlane.start();
  t.teardown(() => cp.stop());
  const pod = await xdsPod(cp, { start: false, env: { OUTPUT_CERTS: 'var/lib/istio/data' } });
  t.teardown(pod.stop);
  t.notOk(existsSync(join(pod.cwd, 'etc/istio/proxy/grpc-bootstrap.json')));
  await pod.xds.start();
  await pod.xds.ready(); // written while Envoy starts
  const file = join(pod.cwd, 'etc/istio/proxy/grpc-bootstrap.json');
  t.equal(pod.xds.grpcBootstrapPath, file);
  t.equal(statSync(file).mode & 0o777, 0o644, 'mode 0644');
  t.equal(statSync(join(pod.cwd, 'etc/istio/proxy')).mode & 0o777, 0o750, 'the directory made by the socket listener (0750) first');
  const b = JSON.parse(readFileSync(file, 'utf8')) as GrpcBootstrap;
  t.equal(b.xds_servers[0]!.server_uri, `unix://${pod.socket}`, 'server_uri is the socket the proxy listens on');
  t.ok(statSync(pod.socket).isSocket());
  t.equal(statSync(pod.socket).mode & 0o777, 0o666, 'socket 0666');
  t.equal(b.node.id, 'sidecar~10.1.1.1~app-1.default~default.svc.cluster.local');
  t.equal(b.certificate_providers?.default?.config.ca_certificate_file, join(pod.cwd, 'var/lib/istio/data/root-cert.pem'));

  const elsewhere = await xdsPod(cp, { env: { GRPC_XDS_BOOTSTRAP: 'var/lib/grpc/bootstrap.json' } });
  t.teardown(elsewhere.stop);
  t.ok(existsSync(join(elsewhere.cwd, 'var/lib/grpc/bootstrap.json')), 'GRPC_XDS_BOOTSTRAP names the file');
  t.equal(statSync(join(elsewhere.cwd, 'var/lib/grpc')).mode & 0o777, 0o700, 'its directory created 0700');
  t.notOk(existsSync(join(elsewhere.cwd, 'etc/istio/proxy/grpc-bootstrap.json')));

  const off = await xdsPod(cp, { env: { GRPC_XDS_BOOTSTRAP: '' } });
  t.teardown(off.stop);
  t.equal(off.xds.grpcBootstrapPath, undefined);
  t.notOk(existsSync(join(off.cwd, 'etc/istio/proxy/grpc-bootstrap.json')), 'empty GRPC_XDS_BOOTSTRAP: no file');

  const bad = await xdsPod(cp, { start: false, env: { ISTIO_META_DNS_CAPTURE: 'yes' } });
  t.teardown(bad.stop);
  await t.rejects(bad.xds.start(), { message: /^failed generating gRPC XDS bootstrap: invalid node metadata DNS_CAPTURE: expected a boolean string/ });
  t.notOk(existsSync(bad.socket), 'a failed start leaves no socket behind');

  // A file that cannot be written (its directory would be the socket) ends the agent once Envoy runs.
  const unwritable = await xdsPod(cp, { env: { GRPC_XDS_BOOTSTRAP: 'etc/istio/proxy/XDS/grpc-bootstrap.json' } });
  t.teardown(unwritable.stop);
  await t.rejects(unwritable.xds.done, { message: /^failed generating gRPC XDS bootstrap: failed writing to .*\/etc\/istio\/proxy\/XDS\/grpc-bootstrap\.json: .*(ENOTDIR|EEXIST)/ });
});

t.test("the proxy's socket is the one Envoy's bootstrap dials (xds-grpc) and the gRPC bootstrap names", async (t) => {
  for (const configPath of [undefined, 'etc/custom/proxy', '/tmp/istio-xds-agreement/proxy/']) {
    const cwd = '/pod';
    const config = agentConfig(xdsEnv(undefined, configPath ? { proxyConfig: { configPath } } : {}));
    const socket = xdsSocketPath(config, cwd);
    const envoy = renderBootstrap(bootstrapInputFrom(config));
    const xdsCluster = envoy.static_resources?.clusters?.find((c) => c.name === 'xds-grpc') as {
      load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: { pipe: { path: string } } } }[] }[] };
    };
    const pipe = xdsCluster.load_assignment.endpoints[0]!.lb_endpoints[0]!.endpoint.address.pipe.path;
    t.equal(resolve(cwd, pipe), socket, `Envoy dials ${pipe} (configPath ${configPath ?? 'default'}) = ${socket}`);
    const grpc = grpcBootstrap(config, { xdsSocketPath: socket, cwd });
    t.equal(grpc.xds_servers[0]!.server_uri, `unix://${socket}`);
  }
  const inImage = grpcBootstrap(agentConfig(xdsEnv(undefined)), { xdsSocketPath: xdsSocketPath(agentConfig(xdsEnv(undefined)), '/'), cwd: '/' });
  t.equal(inImage.xds_servers[0]!.server_uri, 'unix:///etc/istio/proxy/XDS', 'in the image (cwd /): what Istio writes');
});
