// resolve(): argv-derived flags + environment + file contents → one immutable AgentConfig.
// Mirrors pilot-agent's proxy command: identity (initProxy), ProxyConfig (ConstructProxyConfig),
// then the environment with proxyMetadata merged in. Pure; the CLI shell does the reading.
import { readEnv, type EnvSource, type EnvValues } from '../lib/env.js';
import { parseGoInt } from '../lib/goparse.js';
import { defaultLogOptions, type LogOptions } from '../lib/log.js';
import { DownwardApiError, parseDownwardApi } from './downward.js';
import { agentEnv, type AgentEnvDefs } from './env.js';
import { parseProxyType, resolveIdentity, type InterfaceAddress, type ProxyIdentity } from './identity.js';
import { applyOverlay, ConfigError, defaultProxyConfig, parseMeshConfigFile, parseProxyConfigOverlay, validateProxyConfig, type ProxyConfig, type YamlParser } from './proxy-config.js';

/**
 * Flags of `pilot-agent proxy` with Istio's defaults (addFlags in
 * pilot/cmd/pilot-agent/app/cmd.go).
 */
export interface ProxyFlags {
  domain: string;
  meshConfig: string;
  stsPort: number;
  tokenManagerPlugin: string;
  serviceCluster: string;
  proxyLogLevel: string;
  proxyComponentLogLevel: string;
  concurrency: number;
  templateFile: string;
  outlierLogPath: string;
  profiling: boolean;
}

export const defaultProxyFlags: Readonly<ProxyFlags> = Object.freeze({
  domain: '',
  meshConfig: './etc/istio/config/mesh',
  stsPort: 0,
  tokenManagerPlugin: 'GoogleTokenExchange',
  serviceCluster: 'istio-proxy',
  proxyLogLevel: 'warning',
  proxyComponentLogLevel: '',
  concurrency: 0,
  templateFile: '',
  outlierLogPath: '',
  profiling: true,
});

export const ANNOTATION_PROXY_CONFIG = 'proxy.istio.io/config';
export const ANNOTATION_DISCOVERY_ADDRESS = 'sidecar.istio.io/discoveryAddress';
export const ANNOTATION_STATUS_PORT = 'status.sidecar.istio.io/port';
export const ANNOTATION_EXCLUDE_INTERFACES = 'traffic.sidecar.istio.io/excludeInterfaces';

export type AgentEnv = EnvValues<AgentEnvDefs>;

export interface AgentConfig {
  readonly identity: ProxyIdentity;
  readonly flags: Readonly<ProxyFlags>;
  readonly log: Readonly<LogOptions>;
  readonly proxyConfig: ProxyConfig;
  /** Typed values of every declared environment variable (process env, then proxyMetadata). */
  readonly env: AgentEnv;
  /**
   * The effective environment as name → value: the process environment with ProxyConfig
   * proxyMetadata filling names it does not set. Envoy inherits it; node metadata reads
   * ISTIO_META_* from it.
   */
  readonly environ: Readonly<Record<string, string>>;
  readonly podAnnotations: ReadonlyMap<string, string>;
  readonly podLabels: ReadonlyMap<string, string>;
}

export interface ResolveInputs {
  /** First positional argument of `proxy` (sidecar when absent). */
  proxyTypeArg?: string | undefined;
  flags?: Partial<ProxyFlags>;
  log?: Partial<LogOptions>;
  env: EnvSource;
  files: {
    /** contents of `--meshConfig`, or undefined when the file does not exist */
    meshConfig?: string | undefined;
    /** `./etc/istio/pod/annotations` contents, undefined when absent */
    podAnnotations?: string | undefined;
    /** `./etc/istio/pod/labels` contents, undefined when absent */
    podLabels?: string | undefined;
  };
  interfaces: readonly InterfaceAddress[];
  parseYaml: YamlParser;
}

export interface Resolution {
  config: AgentConfig;
  /** Lines the shell logs at warn level (bad env values, unreadable downward-API files, …). */
  warnings: string[];
  /** Lines the shell logs at info level (which overlays were applied). */
  infos: string[];
}

function readPodFile(text: string | undefined, what: string, warnings: string[]): Map<string, string> {
  if (text === undefined) return new Map();
  try {
    return parseDownwardApi(text);
  } catch (err) {
    if (err instanceof DownwardApiError) {
      warnings.push(`failed to read pod ${what}: ${err.message}`);
      return new Map();
    }
    throw err;
  }
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}

export function resolveAgentConfig(inputs: ResolveInputs): Resolution {
  const warnings: string[] = [];
  const infos: string[] = [];
  const flags: ProxyFlags = { ...defaultProxyFlags, ...inputs.flags };
  const logOpts: LogOptions = { ...defaultLogOptions, ...inputs.log };
  const rawEnv = inputs.env;
  const proxyType = parseProxyType(inputs.proxyTypeArg);

  const annotations = readPodFile(inputs.files.podAnnotations, 'annotations', warnings);
  const labels = readPodFile(inputs.files.podLabels, 'labels', warnings);

  // --- ProxyConfig: defaults, mesh config file, PROXY_CONFIG, annotation (later wins) ---
  let pc = defaultProxyConfig();
  const dropped: string[] = [];
  if (inputs.files.meshConfig !== undefined) {
    infos.push(`Apply mesh config from file ${inputs.files.meshConfig}`);
    const { fields, unknown } = parseMeshConfigFile(inputs.files.meshConfig, inputs.parseYaml, flags.meshConfig);
    pc = applyOverlay(pc, fields);
    dropped.push(...unknown);
  }
  const proxyConfigEnv = rawEnv.PROXY_CONFIG ?? '';
  if (proxyConfigEnv !== '') {
    infos.push(`Apply proxy config from env ${proxyConfigEnv}`);
    const { fields, unknown } = parseProxyConfigOverlay(proxyConfigEnv, inputs.parseYaml, 'environment');
    pc = applyOverlay(pc, fields);
    dropped.push(...unknown);
  }
  const annotationConfig = annotations.get(ANNOTATION_PROXY_CONFIG) ?? '';
  if (annotationConfig !== '') {
    infos.push(`Apply proxy config from annotation ${annotationConfig}`);
    const { fields, unknown } = parseProxyConfigOverlay(annotationConfig, inputs.parseYaml, 'annotation');
    pc = applyOverlay(pc, fields);
    dropped.push(...unknown);
  }
  if (dropped.length) infos.push(`Ignored unknown ProxyConfig fields: ${dropped.join(', ')}`);

  // --- post-processing, in Istio's order ---
  const next: Record<string, unknown> = { ...pc };
  const cpuLimitRaw = rawEnv.ISTIO_CPU_LIMIT;
  const cpuLimit = cpuLimitRaw === undefined ? 0 : parseGoInt(cpuLimitRaw);
  if (cpuLimit === undefined) warnings.push(`invalid value ${JSON.stringify(cpuLimitRaw)} for environment variable ISTIO_CPU_LIMIT: expecting a base-10 integer; using default 0`);
  if (next.concurrency === undefined && cpuLimit) next.concurrency = cpuLimit;
  if (flags.concurrency !== 0) {
    warnings.push('legacy --concurrency flag is set; it overrides ProxyConfig concurrency');
    next.concurrency = flags.concurrency;
  }
  if (next.serviceCluster === '') next.serviceCluster = flags.serviceCluster;
  pc = next as unknown as ProxyConfig;

  const errs = validateProxyConfig(pc);
  if (errs.length) throw new ConfigError(`failed to get proxy config: ${errs.join('; ')}`);

  // Annotation overrides, applied after validation as Istio does.
  const post: Record<string, unknown> = { ...pc };
  const disc = annotations.get(ANNOTATION_DISCOVERY_ADDRESS);
  if (disc !== undefined) post.discoveryAddress = disc;
  const sp = annotations.get(ANNOTATION_STATUS_PORT);
  if (sp !== undefined) {
    const n = parseGoInt(sp);
    if (n === undefined) {
      // Istio quirk, kept: applyAnnotations (pilot/cmd/pilot-agent/config/config.go) logs and
      // sets 0, which disables the status server. Users who typo this annotation get exactly
      // what Istio gives them, but the message says so plainly.
      warnings.push(`Invalid annotation ${ANNOTATION_STATUS_PORT}=${sp}: not an integer; the status server is disabled (status port 0)`);
      post.statusPort = 0;
    } else {
      post.statusPort = n;
    }
  }
  if (flags.templateFile !== '' && !post.customConfigFile) post.proxyBootstrapTemplatePath = flags.templateFile;
  pc = post as unknown as ProxyConfig;

  // --- environment: process env, with proxyMetadata filling names it does not set ---
  const environ: Record<string, string> = {};
  for (const [k, v] of Object.entries(pc.proxyMetadata)) environ[k] = v;
  for (const [k, v] of Object.entries(rawEnv)) if (v !== undefined) environ[k] = v;
  // ISTIO_CPU_LIMIT was read (and a bad value warned about) above, for concurrency: once is enough.
  const env = readEnv(agentEnv, environ, (w) => {
    if (!(w.name === 'ISTIO_CPU_LIMIT' && w.value === cpuLimitRaw)) warnings.push(w.message);
  });

  const identity = resolveIdentity({
    proxyType,
    instanceIp: env.INSTANCE_IP,
    podName: env.POD_NAME,
    podNamespace: env.POD_NAMESPACE,
    domainFlag: flags.domain,
    interfaces: inputs.interfaces,
    excludeInterfaces: (annotations.get(ANNOTATION_EXCLUDE_INTERFACES) ?? '').split(',').filter((s) => s !== ''),
  });

  const config: AgentConfig = deepFreeze({
    identity,
    flags,
    log: logOpts,
    proxyConfig: pc,
    env,
    environ,
    podAnnotations: annotations,
    podLabels: labels,
  });
  return { config, warnings, infos };
}

export { ConfigError };
