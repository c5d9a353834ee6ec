// A BootstrapInput for tests: a plain IPv4 sidecar with Istio's default ProxyConfig, which
// each test adjusts. Every render in the suite goes through `renderChecked`, which also asserts
// that Envoy's schema and PGV rules accept the result.
import { defaultProxyConfig, type ProxyConfig } from '../../config/index.js';
import { renderBootstrap, type BootstrapInput } from '../../bootstrap/index.js';
import { loadEnvoySchema } from './envoy-schema.js';

type Overrides = Partial<Omit<BootstrapInput, 'proxyConfig' | 'process'>> & {
  proxyConfig?: Partial<ProxyConfig>;
  process?: Partial<BootstrapInput['process']>;
};

export function testInput(o: Overrides = {}): BootstrapInput {
  const { proxyConfig, process, ...rest } = o;
  return {
    nodeId: 'sidecar~10.1.2.3~web-0.shop~shop.svc.cluster.local',
    proxyConfig: { ...defaultProxyConfig(), ...proxyConfig },
    envs: [
      ['POD_NAME', 'web-0'],
      ['POD_NAMESPACE', 'shop'],
    ],
    instanceIps: ['10.1.2.3'],
    pilotSubjectAltName: ['istiod.istio-system.svc'],
    outlierLogPath: '',
    stsPort: 0,
    credentialSocketExists: false,
    customCredentialsFileExists: false,
    envoyStatusPort: 15021,
    envoyPrometheusPort: 15090,
    envoySecureMetricsPort: 0,
    envoySecureMergedMetricsPort: 0,
    exitOnZeroActiveConnections: false,
    envoySkipDeprecatedLogs: true,
    workloadIdentitySocketFile: 'socket',
    compliancePolicy: '',
    logAsJson: false,
    istioVersion: '1.32.0',
    ...rest,
    process: { deltaXds: true, dualStack: false, statusPortProxyProtocol: false, stripFragmentFromPath: true, hostIp: '', ...process },
  };
}

export type Json = Record<string, any>;

/** Renders, asserts Envoy's schema accepts it, and returns it as the JSON Envoy reads. */
export function renderChecked(t: { strictSame: (found: unknown, wanted: unknown, message: string) => unknown }, input: BootstrapInput): Json {
  const b = JSON.parse(JSON.stringify(renderBootstrap(input))) as Json;
  t.strictSame(loadEnvoySchema().validate(b), [], 'Envoy schema and PGV accept the bootstrap');
  return b;
}

export function cluster(b: Json, name: string): Json | undefined {
  return (b.static_resources.clusters as Json[]).find((c) => c.name === name);
}

export function listener(b: Json, name: string): Json | undefined {
  return (b.static_resources.listeners as Json[]).find((l) => l.name === name);
}
