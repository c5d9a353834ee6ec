// The AgentConfig of an in-process agent whose Envoy is the stand-in: a sidecar `p.default` with
// one interface address, ProxyConfig pointing `binaryPath` at the stand-in with the given admin and
// status ports, and the stand-in's scripting environment.
import { parse as parseYaml } from 'yaml';
import { jsonThenYaml, resolveAgentConfig, type AgentConfig, type InterfaceAddress } from '../../../config/index.js';
import { standinBin, type Standin } from './index.js';

export interface StandinAgentOptions {
  s: Standin;
  adminPort: number;
  statusPort: number;
  /** the only interface address; also INSTANCE_IP */
  iface: InterfaceAddress;
  terminationDrainDuration: string;
  /** ProxyConfig fields over the defaults above */
  proxyConfig?: Record<string, unknown>;
  /** environment over the defaults and the stand-in's */
  env?: Record<string, string>;
}

export function standinAgentConfig(o: StandinAgentOptions): AgentConfig {
  return resolveAgentConfig({
    proxyTypeArg: 'sidecar',
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      INSTANCE_IP: o.iface.address,
      POD_NAME: 'p',
      POD_NAMESPACE: 'default',
      PROXY_CONFIG: JSON.stringify({
        binaryPath: standinBin,
        proxyAdminPort: o.adminPort,
        statusPort: o.statusPort,
        drainDuration: '1s',
        terminationDrainDuration: o.terminationDrainDuration,
        ...o.proxyConfig,
      }),
      ...o.s.env,
      ...o.env,
    },
    files: {},
    interfaces: [o.iface],
    parseYaml: jsonThenYaml(parseYaml),
  }).config;
}
