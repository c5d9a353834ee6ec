// Istio's bootstrap golden cases (shared/conformance/bootstrap/, or $BOOTSTRAP_CASES_DIR for
// another corpus in the same layout): each NAME.case.json holds the inputs Istio's TestGolden
// feeds its generator, NAME_golden.json the expected output. This module turns a case into our
// BootstrapInput and applies the normalisation Istio's test applies before comparing.
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { applyOverlay, parseDownwardApi, parseProxyConfigOverlay, type ProxyConfig } from '../../config/index.js';
import type { BootstrapInput, Platform } from '../../bootstrap/index.js';
import { parseGoBool } from '../../lib/goparse.js';
import { corpusPath } from './paths.js';

export const bootstrapCasesDir = corpusPath('bootstrap');

/** Where the case's template lived in Istio's tree; normalised away like Istio's test does. */
const ISTIO_TEMPLATE = '/istio-src/tools/packaging/common/envoy_bootstrap.json';

export interface BootstrapCase {
  name: string;
  /** The parsed NAME.case.json. */
  spec: CaseSpec;
  golden: unknown;
}

export interface CaseSpec {
  name: string;
  env: Record<string, string>;
  metadata: {
    annotationsFileContent?: string;
    podLabelsFile?: string | null;
    platformMetadata?: Record<string, string> | null;
    platformLocality?: { region?: string; zone?: string; subZone?: string; sub_zone?: string } | null;
    platformLabels?: Record<string, string> | null;
    platformIsKubernetes?: boolean;
  };
  options: {
    exercisedByGoTest?: boolean;
    proxyCfgFile: string;
    proxyConfigOverrides: Record<string, unknown>;
    envList: string[];
    nodeId: string;
    instanceIPs: string[];
    pilotSubjectAltName: string[];
    outlierLogPath: string;
    envoyPrometheusPort: number;
    envoyStatusPort: number;
    envoySecureMetricsPort: number;
    envoySecureMergedMetricsPort: number;
    workloadIdentitySocketFile: string;
    stsPort: number;
    xdsRootCert: string;
    credentialSocketExists: boolean;
    customCredentialsFileExists: boolean;
    exitOnZeroActiveConnections: boolean;
    metadataDiscovery: boolean | null;
    envoySkipDeprecatedLogs: boolean;
    compliancePolicy: string;
    logAsJSON: boolean;
    istioBinaryVersion: string;
    processEnvAssumed?: Record<string, string>;
    checkLocality: boolean;
    expectLightstepAccessToken: boolean;
    expectedStatsMatcher: { prefixes: string; suffixes: string; regexps: string };
  };
  notes?: string;
  proxyConfigJson: Record<string, unknown>;
}

export function listBootstrapCases(dir = bootstrapCasesDir): BootstrapCase[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.case.json'))
    .sort()
    .map((f) => {
      const spec = JSON.parse(readFileSync(join(dir, f), 'utf8')) as CaseSpec;
      const name = f.slice(0, -'.case.json'.length);
      return { name, spec, golden: JSON.parse(readFileSync(join(dir, `${name}_golden.json`), 'utf8')) as unknown };
    });
}

/** The ProxyConfig the case loads, after the harness's overrides. */
export function caseProxyConfig(spec: CaseSpec, tmpDir: string): ProxyConfig {
  const { fields } = parseProxyConfigOverlay(JSON.stringify(spec.proxyConfigJson), JSON.parse, `case ${spec.name}`);
  // Istio's test starts from an empty message (not mesh defaults).
  const pc = applyOverlay({ proxyMetadata: {} } as unknown as ProxyConfig, fields) as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(spec.options.proxyConfigOverrides)) {
    switch (k) {
      case 'config_path':
        pc.configPath = String(v).replace('<TMPDIR>', tmpDir);
        break;
      case 'custom_config_file':
        pc.customConfigFile = ISTIO_TEMPLATE;
        break;
      case 'status_port_if_zero':
        if (!pc.statusPort) pc.statusPort = v;
        break;
      case 'proxy_metadata':
        pc.proxyMetadata = { ...(pc.proxyMetadata as object), ...(v as object) };
        break;
      default:
        throw new Error(`case ${spec.name}: unknown proxyConfigOverrides key ${k}`);
    }
  }
  return pc as unknown as ProxyConfig;
}

/** `(unset => true)` / `(unset)` mean the default; anything else is the value the case sets. */
function assumed(spec: CaseSpec, name: string): string | undefined {
  const v = spec.options.processEnvAssumed?.[name];
  return v === undefined || v.startsWith('(unset') ? undefined : v;
}

function assumedBool(spec: CaseSpec, name: string, dflt: boolean): boolean {
  const v = assumed(spec, name);
  return v === undefined ? dflt : (parseGoBool(v) ?? dflt);
}

function splitEnv(entry: string): [string, string] {
  const i = entry.indexOf('=');
  return i < 0 ? [entry, ''] : [entry.slice(0, i), entry.slice(i + 1)];
}

export function casePlatform(spec: CaseSpec): Platform {
  const m = spec.metadata;
  const loc = m.platformLocality ?? {};
  return {
    name: 'unknown',
    metadata: m.platformMetadata ?? {},
    locality: { region: loc.region, zone: loc.zone, subZone: loc.subZone ?? loc.sub_zone },
    labels: m.platformLabels ?? {},
    isKubernetes: m.platformIsKubernetes ?? true,
  };
}

/** The case's inputs as our BootstrapInput (config path under `tmpDir`). */
export function caseInput(spec: CaseSpec, tmpDir: string, warn: (m: string) => void = () => {}): BootstrapInput {
  const o = spec.options;
  if (assumed(spec, 'ISTIO_BOOTSTRAP') !== undefined) throw new Error(`case ${spec.name}: custom templates are not rendered`);
  return {
    nodeId: o.nodeId,
    proxyConfig: caseProxyConfig(spec, tmpDir),
    envs: o.envList.filter((e) => e.includes('=')).map(splitEnv),
    instanceIps: o.instanceIPs,
    podLabels: typeof spec.metadata.podLabelsFile === 'string' ? parseDownwardApi(spec.metadata.podLabelsFile) : undefined,
    // The harness always writes the annotations file (possibly empty).
    podAnnotations: parseDownwardApi(spec.metadata.annotationsFileContent ?? ''),
    platform: casePlatform(spec),
    pilotSubjectAltName: o.pilotSubjectAltName,
    outlierLogPath: o.outlierLogPath,
    stsPort: o.stsPort,
    credentialSocketExists: o.credentialSocketExists,
    customCredentialsFileExists: o.customCredentialsFileExists,
    xdsRootCert: o.xdsRootCert,
    envoyStatusPort: o.envoyStatusPort,
    envoyPrometheusPort: o.envoyPrometheusPort,
    envoySecureMetricsPort: o.envoySecureMetricsPort,
    envoySecureMergedMetricsPort: o.envoySecureMergedMetricsPort,
    exitOnZeroActiveConnections: o.exitOnZeroActiveConnections,
    metadataDiscovery: o.metadataDiscovery ?? undefined,
    envoySkipDeprecatedLogs: o.envoySkipDeprecatedLogs,
    workloadIdentitySocketFile: o.workloadIdentitySocketFile,
    compliancePolicy: o.compliancePolicy,
    logAsJson: o.logAsJSON,
    istioVersion: o.istioBinaryVersion,
    dnsProxyAddr: assumed(spec, 'DNS_PROXY_ADDR'),
    process: {
      deltaXds: assumedBool(spec, 'ISTIO_DELTA_XDS', true),
      dualStack: assumedBool(spec, 'ISTIO_DUAL_STACK', false),
      statusPortProxyProtocol: assumedBool(spec, 'ENVOY_STATUS_PORT_ENABLE_PROXY_PROTOCOL', false),
      stripFragmentFromPath: assumedBool(spec, 'HTTP_STRIP_FRAGMENT_FROM_PATH_UNSAFE_IF_DISABLED', true),
      hostIp: assumed(spec, 'HOST_IP') ?? '',
    },
    warn,
  };
}

/** Every string in `v` with `from` replaced by `to` (Istio's test rewrites its temp dir). */
function replaceStrings(v: unknown, from: string, to: string): unknown {
  if (typeof v === 'string') return v.replaceAll(from, to);
  if (Array.isArray(v)) return v.map((x) => replaceStrings(x, from, to));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, replaceStrings(x, from, to)]));
  return v;
}

type Obj = Record<string, any>;

/**
 * Istio's correctForEnvDifference, applied to values rather than text: the lightstep token
 * path, the template path inside PROXY_CONFIG, the temp dir, the XDS pipe path, and (unless the
 * case checks it) the locality zone/region.
 */
export function normaliseGenerated(generated: unknown, tmpDir: string, checkLocality: boolean): Obj {
  const b = replaceStrings(generated, tmpDir, '/tmp') as Obj;
  const pc = b.node?.metadata?.PROXY_CONFIG as Obj | undefined;
  if (pc && typeof pc.customConfigFile === 'string' && pc.customConfigFile.endsWith('envoy_bootstrap.json')) pc.customConfigFile = 'envoy_bootstrap.json';
  const tracerCfg = b.tracing?.http?.typed_config as Obj | undefined;
  if (tracerCfg && typeof tracerCfg.access_token_file === 'string' && tracerCfg.access_token_file.endsWith('lightstep_access_token.txt')) {
    tracerCfg.access_token_file = '/test-path/lightstep_access_token.txt';
  }
  for (const c of (b.static_resources?.clusters ?? []) as Obj[]) {
    for (const ep of c.load_assignment?.endpoints ?? []) {
      for (const lb of ep.lb_endpoints ?? []) {
        const pipe = lb.endpoint?.address?.pipe;
        if (pipe && typeof pipe.path === 'string' && pipe.path.endsWith('/XDS')) pipe.path = '/tmp/XDS';
      }
    }
  }
  if (!checkLocality && b.node?.locality) {
    delete b.node.locality.zone;
    delete b.node.locality.region;
  }
  return b;
}

/** The matcher lists as Istio's checkStatsMatcher joins them. */
export function statsMatcherLists(b: Obj): { prefixes: string; suffixes: string; regexps: string } {
  const patterns = (b.stats_config?.stats_matcher?.inclusion_list?.patterns ?? []) as Obj[];
  const join = (pick: (p: Obj) => unknown) =>
    patterns
      .map(pick)
      .filter((x) => typeof x === 'string' && x !== '')
      .join(',');
  return { prefixes: join((p) => p.prefix), suffixes: join((p) => p.suffix), regexps: join((p) => p.safe_regex?.regex) };
}

const STATS_ANNOTATION_KEYS = ['sidecar.istio.io/statsInclusionPrefixes', 'sidecar.istio.io/statsInclusionSuffixes', 'sidecar.istio.io/statsInclusionRegexps'];

/** What Istio's test removes from both sides before the deep comparison. */
export function dropCheckedSeparately(b: Obj): Obj {
  const out = structuredClone(b);
  if (out.stats_config) delete out.stats_config.stats_matcher;
  for (const k of STATS_ANNOTATION_KEYS) if (out.node?.metadata) delete out.node.metadata[k];
  return out;
}

export function proxyCfgBase(spec: CaseSpec): string {
  return basename(spec.options.proxyCfgFile, '.proxycfg');
}
