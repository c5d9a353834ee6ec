// The istio-iptables command line with cobra/pflag semantics (Istio's bindCmdlineFlags in
// tools/istio-iptables/pkg/cmd/root.go): short flags take the next argument (or `-pVALUE`,
// `-p=VALUE`), long flags `--name=value` or `--name value`, bool flags only `--flag` or
// `--flag=<bool>`, unknown flags are errors, positional arguments are ignored. Each flag's
// default comes from its environment variable (parsed the way pflag parses the flag, errors
// swallowed into pflag's fallback value), then the alias variable, then the command line.
import type { EnvSource } from '../lib/env.js';
import { parseGoBool, parseGoDuration } from '../lib/goparse.js';
import type { LogOptions } from '../lib/log.js';
import { iptablesEnv, type IptablesEnvName } from './env.js';
import { AgentError } from '../lib/errors.js';

export interface IptablesFlags {
  envoyPort: string;
  inboundCapturePort: string;
  inboundTunnelPort: string;
  proxyUid: string;
  proxyGid: string;
  interceptionMode: string;
  inboundPorts: string;
  inboundPortsExclude: string;
  excludeInterfaces: string;
  serviceCidr: string;
  serviceExcludeCidr: string;
  outboundPorts: string;
  outboundPortsExclude: string;
  kubeVirtInterfaces: string;
  tproxyMark: string;
  tproxyRouteTable: string;
  dryRun: boolean;
  probePort: number;
  /** milliseconds */
  probeTimeout: number;
  skipRuleApply: boolean;
  runValidation: boolean;
  redirectDns: boolean;
  captureAllDns: boolean;
  dropInvalid: boolean;
  dualStack: boolean;
  networkNamespace: string;
  cniMode: boolean;
  reconcile: boolean;
  cleanupOnly: boolean;
  forceApply: boolean;
  nativeNftables: boolean;
  forceIptablesBinary: string;
}

type Kind = 'string' | 'bool' | 'uint16' | 'duration' | 'int' | 'stringArray';

interface FlagSpec {
  long: string;
  short?: string;
  kind: Kind;
  help: string;
  /** Field of IptablesFlags; log flags have none. */
  key?: keyof IptablesFlags;
  /** Default when no env var carries it. */
  def?: string | boolean | number;
  env?: IptablesEnvName;
  alias?: IptablesEnvName;
}

const f = (long: string, short: string | undefined, kind: Kind, key: keyof IptablesFlags | undefined, help: string, extra: Partial<FlagSpec> = {}): FlagSpec => ({
  long,
  ...(short ? { short } : {}),
  kind,
  ...(key ? { key } : {}),
  help,
  ...extra,
});

/** Every flag, in `--help` order. */
export const FLAGS: readonly FlagSpec[] = [
  f('envoy-port', 'p', 'string', 'envoyPort', 'Specify the envoy port to which redirect all TCP traffic', { def: '15001' }),
  f('inbound-capture-port', 'z', 'string', 'inboundCapturePort', 'Port to which all inbound TCP traffic to the pod/VM should be redirected to', { env: 'INBOUND_CAPTURE_PORT' }),
  f('inbound-tunnel-port', 'e', 'string', 'inboundTunnelPort', 'Specify the istio tunnel port for inbound tcp traffic', { env: 'INBOUND_TUNNEL_PORT' }),
  f('proxy-uid', 'u', 'string', 'proxyUid', 'Specify the UID of the user for which the redirection is not applied. Typically, this is the UID of the proxy container', { env: 'PROXY_UID' }),
  f('proxy-gid', 'g', 'string', 'proxyGid', 'Specify the GID of the user for which the redirection is not applied (same default value as -u param)', { env: 'PROXY_GID' }),
  f('istio-inbound-interception-mode', 'm', 'string', 'interceptionMode', 'The mode used to redirect inbound connections to Envoy, either "REDIRECT" or "TPROXY"', {
    env: 'ISTIO_INBOUND_INTERCEPTION_MODE',
  }),
  f(
    'istio-inbound-ports',
    'b',
    'string',
    'inboundPorts',
    'Comma separated list of inbound ports for which traffic is to be redirected to Envoy (optional). The wildcard character "*" can be used to configure redirection for all ports. An empty list will disable',
    { env: 'ISTIO_INBOUND_PORTS' },
  ),
  f(
    'istio-local-exclude-ports',
    'd',
    'string',
    'inboundPortsExclude',
    'Comma separated list of inbound ports to be excluded from redirection to Envoy (optional). Only applies when all inbound traffic (i.e. "*") is being redirected',
    { env: 'ISTIO_LOCAL_EXCLUDE_PORTS' },
  ),
  f('istio-exclude-interfaces', 'c', 'string', 'excludeInterfaces', 'Comma separated list of NIC (optional). Neither inbound nor outbound traffic will be captured', {
    env: 'ISTIO_EXCLUDE_INTERFACES',
  }),
  f(
    'istio-service-cidr',
    'i',
    'string',
    'serviceCidr',
    'Comma separated list of IP ranges in CIDR form to redirect to envoy (optional). The wildcard character "*" can be used to redirect all outbound traffic. An empty list will disable all outbound',
    { env: 'ISTIO_SERVICE_CIDR' },
  ),
  f(
    'istio-service-exclude-cidr',
    'x',
    'string',
    'serviceExcludeCidr',
    'Comma separated list of IP ranges in CIDR form to be excluded from redirection. Only applies when all  outbound traffic (i.e. "*") is being redirected',
    { env: 'ISTIO_SERVICE_EXCLUDE_CIDR' },
  ),
  f('istio-outbound-ports', 'q', 'string', 'outboundPorts', 'Comma separated list of outbound ports to be explicitly included for redirection to Envoy', { env: 'ISTIO_OUTBOUND_PORTS' }),
  f('istio-local-outbound-ports-exclude', 'o', 'string', 'outboundPortsExclude', 'Comma separated list of outbound ports to be excluded from redirection to Envoy', {
    env: 'ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE',
  }),
  f('kube-virt-interfaces', 'k', 'string', 'kubeVirtInterfaces', 'Comma separated list of virtual interfaces whose inbound traffic (from VM) will be treated as outbound', {
    env: 'KUBE_VIRT_INTERFACES',
  }),
  f('istio-inbound-tproxy-mark', 't', 'string', 'tproxyMark', 'fwmark used by TPROXY mode', { env: 'ISTIO_INBOUND_TPROXY_MARK' }),
  f('istio-inbound-tproxy-route-table', 'r', 'string', 'tproxyRouteTable', 'routing table used by TPROXY mode', { env: 'ISTIO_INBOUND_TPROXY_ROUTE_TABLE' }),
  f('dry-run', 'n', 'bool', 'dryRun', 'Do not call any external dependencies like iptables', { env: 'DRY_RUN' }),
  f('iptables-probe-port', undefined, 'uint16', 'probePort', 'Set listen port for failure detection', { env: 'IPTABLES_PROBE_PORT' }),
  f('probe-timeout', undefined, 'duration', 'probeTimeout', 'Failure detection timeout', { env: 'PROBE_TIMEOUT' }),
  f('skip-rule-apply', undefined, 'bool', 'skipRuleApply', 'Skip iptables apply', { env: 'SKIP_RULE_APPLY' }),
  f('run-validation', undefined, 'bool', 'runValidation', 'Validate iptables', { env: 'RUN_VALIDATION' }),
  f('redirect-dns', undefined, 'bool', 'redirectDns', 'Enable capture of dns traffic by istio-agent', { env: 'REDIRECT_DNS', alias: 'ISTIO_META_DNS_CAPTURE' }),
  f(
    'capture-all-dns',
    undefined,
    'bool',
    'captureAllDns',
    'Instead of only capturing DNS traffic to DNS server IP, capture all DNS traffic at port 53. This setting is only effective when redirect dns is enabled.',
    { env: 'CAPTURE_ALL_DNS' },
  ),
  f('drop-invalid', undefined, 'bool', 'dropInvalid', 'Enable invalid drop in the iptables rules', { env: 'DROP_INVALID', alias: 'INVALID_DROP' }),
  f('dual-stack', undefined, 'bool', 'dualStack', 'Enable ipv4/ipv6 redirects for dual-stack.', { env: 'DUAL_STACK', alias: 'ISTIO_DUAL_STACK' }),
  f('network-namespace', undefined, 'string', 'networkNamespace', 'The network namespace that iptables rules should be applied to.', { env: 'NETWORK_NAMESPACE' }),
  f('cni-mode', undefined, 'bool', 'cniMode', 'Whether to run as CNI plugin.', { env: 'CNI_MODE' }),
  f('reconcile', undefined, 'bool', 'reconcile', 'Reconcile pre-existing and incompatible iptables rules instead of failing if drift is detected.', { env: 'RECONCILE' }),
  f('cleanup-only', undefined, 'bool', 'cleanupOnly', 'Perform a forced cleanup without creating new iptables chains or rules.', { env: 'CLEANUP_ONLY' }),
  f('force-apply', undefined, 'bool', 'forceApply', 'Apply iptables changes even if they appear to already be in place.', { env: 'FORCE_APPLY' }),
  f('native-nftables', undefined, 'bool', 'nativeNftables', 'Use native nftables instead of iptables rules', { env: 'NATIVE_NFTABLES' }),
  f('force-iptables-binary', undefined, 'string', 'forceIptablesBinary', 'Force the use of a specific iptables binary (legacy or nft)', { env: 'FORCE_IPTABLES_BINARY' }),
  // pilot-agent's global logging flags, inherited by the sub-command.
  f('log_as_json', undefined, 'bool', undefined, 'Whether to format output as JSON or in plain console-friendly format', { def: false }),
  f('log_caller', undefined, 'string', undefined, 'Comma-separated list of scopes for which to include caller information', { def: '' }),
  f('log_output_level', undefined, 'string', undefined, 'Comma-separated minimum per-scope logging level of messages to output, in the form of <scope>:<level>,<scope>:<level>,...', {
    def: 'default:info',
  }),
  f('log_rotate', undefined, 'string', undefined, 'The path for the optional rotating log file (accepted; logs go to --log_target)', { def: '' }),
  f('log_rotate_max_age', undefined, 'int', undefined, 'The maximum age in days of a log file beyond which the file is rotated out (accepted)', { def: 30 }),
  f('log_rotate_max_backups', undefined, 'int', undefined, 'The maximum number of log file backups to keep before older files are deleted (accepted)', { def: 1000 }),
  f('log_rotate_max_size', undefined, 'int', undefined, 'The maximum size in megabytes of a log file beyond which the file is rotated (accepted)', { def: 104857600 }),
  f('log_stacktrace_level', undefined, 'string', undefined, 'Comma-separated minimum per-scope logging level at which stack traces are captured', { def: 'default:none' }),
  f('log_target', undefined, 'stringArray', undefined, 'The set of paths where to output the log. This can be any path as well as the special values stdout and stderr', { def: 'stdout' }),
  f('vklog', undefined, 'int', undefined, 'number for the log level verbosity (accepted and ignored)', { def: 0 }),
];

/** A command-line error: cobra prints `Error: <message>` and pilot-agent exits 255. */
export class UsageError extends AgentError {
  static override readonly code: string = 'IPTABLES_USAGE';
}

export interface ParsedCommandLine {
  flags: IptablesFlags;
  log: LogOptions;
  help: boolean;
  /** Flags set on the command line (long names), for the start-up log. */
  setOnCommandLine: Set<string>;
  /** Env values pflag could not parse (kept as pflag's fallback value). */
  envWarnings: string[];
}

const quote = (s: string) => JSON.stringify(s);

/** Go strconv.ParseUint(s, 0, 16) as pflag's uint16 uses it: base prefixes, no sign. */
export function parseGoUint16(s: string): { value: number; error?: string } {
  let body = s.replace(/_/g, '');
  let base = 10;
  // Go allows `_` only between digits (or after a base prefix) when the base comes from the prefix.
  const underscoresOk = !s.includes('_') || /^(0[xXbBoO])?_?[0-9a-fA-F]+(_[0-9a-fA-F]+)*$/.test(s);
  if (/^0[xX]/.test(body)) [base, body] = [16, body.slice(2)];
  else if (/^0[bB]/.test(body)) [base, body] = [2, body.slice(2)];
  else if (/^0[oO]/.test(body)) [base, body] = [8, body.slice(2)];
  else if (/^0\d/.test(body)) [base, body] = [8, body.slice(1)];
  const digits = { 2: /^[01]+$/, 8: /^[0-7]+$/, 10: /^\d+$/, 16: /^[0-9a-fA-F]+$/ }[base as 2 | 8 | 10 | 16];
  if (!underscoresOk || body === '' || !digits.test(body)) return { value: 0, error: `strconv.ParseUint: parsing ${quote(s)}: invalid syntax` };
  const n = parseInt(body, base);
  if (n > 0xffff) return { value: 0xffff, error: `strconv.ParseUint: parsing ${quote(s)}: value out of range` };
  return { value: n };
}

type FlagValue = string | boolean | number | string[];

/** pflag's Set(): the parsed value, or pflag's fallback plus the error text. */
function parseValue(spec: FlagSpec, raw: string): { value: FlagValue; error?: string } {
  switch (spec.kind) {
    case 'string':
      return { value: raw };
    case 'stringArray':
      return { value: [raw] };
    case 'bool': {
      const b = parseGoBool(raw);
      return b === undefined ? { value: false, error: `strconv.ParseBool: parsing ${quote(raw)}: invalid syntax` } : { value: b };
    }
    case 'uint16':
      return parseGoUint16(raw);
    case 'int': {
      if (!/^[+-]?(\d+|0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+)$/.test(raw)) return { value: 0, error: `strconv.ParseInt: parsing ${quote(raw)}: invalid syntax` };
      return { value: Number(raw) };
    }
    case 'duration': {
      const d = parseGoDuration(raw);
      return d === undefined ? { value: 0, error: `time: invalid duration ${quote(raw)}` } : { value: d };
    }
  }
}

function envDefault(spec: FlagSpec): FlagValue {
  if (spec.env) return iptablesEnv[spec.env].default;
  if (spec.kind === 'stringArray') return [String(spec.def)];
  return spec.def as FlagValue;
}

function displayName(spec: FlagSpec): string {
  return spec.short ? `-${spec.short}, --${spec.long}` : `--${spec.long}`;
}

/**
 * Parses argv (after the `istio-iptables` word) against the env. Throws UsageError for what
 * cobra would reject.
 */
export function parseCommandLine(args: readonly string[], env: EnvSource): ParsedCommandLine {
  const values = new Map<FlagSpec, FlagValue>();
  const envWarnings: string[] = [];
  for (const spec of FLAGS) {
    let v = envDefault(spec);
    for (const name of [spec.env, spec.alias]) {
      if (!name) continue;
      const raw = env[name];
      if (raw === undefined) continue;
      const parsed = parseValue(spec, raw);
      if (parsed.error) envWarnings.push(`invalid value ${quote(raw)} for environment variable ${name} (${parsed.error}); using ${JSON.stringify(parsed.value)} as Istio does`);
      v = parsed.value;
    }
    values.set(spec, v);
  }

  const byLong = new Map(FLAGS.map((s) => [s.long, s]));
  const byShort = new Map(FLAGS.filter((s) => s.short).map((s) => [s.short!, s]));
  const setOnCommandLine = new Set<string>();
  let help = false;
  const assign = (spec: FlagSpec, raw: string) => {
    const parsed = parseValue(spec, raw);
    if (parsed.error) throw new UsageError(`invalid argument ${quote(raw)} for ${quote(displayName(spec))} flag: ${parsed.error}`);
    if (spec.kind === 'stringArray' && setOnCommandLine.has(spec.long)) {
      values.set(spec, [...(values.get(spec) as string[]), raw]);
    } else {
      values.set(spec, parsed.value);
    }
    setOnCommandLine.add(spec.long);
  };

  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') break; // the rest is positional, which the command ignores
    if (a.startsWith('--') && a.length > 2) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      if (name === 'help') {
        help = true;
        continue;
      }
      const spec = byLong.get(name);
      if (!spec) throw new UsageError(`unknown flag: --${name}`);
      if (eq >= 0) assign(spec, a.slice(eq + 1));
      else if (spec.kind === 'bool') assign(spec, 'true');
      else if (i + 1 < args.length) assign(spec, args[++i]!);
      else throw new UsageError(`flag needs an argument: --${name}`);
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      // A run of shorthands: bools may be combined (`-nh`); a value flag takes the rest.
      let rest = a.slice(1);
      while (rest.length > 0) {
        const c = rest[0]!;
        if (c === 'h') {
          help = true;
          rest = rest.slice(1);
          continue;
        }
        const spec = byShort.get(c);
        if (!spec) throw new UsageError(`unknown shorthand flag: '${c}' in -${rest}`);
        if (rest.length > 2 && rest[1] === '=') {
          assign(spec, rest.slice(2));
          rest = '';
        } else if (spec.kind === 'bool') {
          assign(spec, 'true');
          rest = rest.slice(1);
        } else if (rest.length > 1) {
          assign(spec, rest.slice(1));
          rest = '';
        } else if (i + 1 < args.length) {
          assign(spec, args[++i]!);
          rest = '';
        } else {
          throw new UsageError(`flag needs an argument: '${c}' in -${c}`);
        }
      }
      continue;
    }
    // A positional argument (e.g. the `false` of `--dry-run false`): cobra ignores it.
  }

  const flags = {} as Record<string, FlagValue>;
  const get = (long: string) => values.get(byLong.get(long)!)!;
  for (const spec of FLAGS) if (spec.key) flags[spec.key] = values.get(spec)!;
  return {
    flags: flags as unknown as IptablesFlags,
    log: {
      outputLevels: String(get('log_output_level')),
      stackTraceLevels: String(get('log_stacktrace_level')),
      logCallers: String(get('log_caller')),
      asJson: Boolean(get('log_as_json')),
      targets: get('log_target') as string[],
    },
    help,
    setOnCommandLine,
    envWarnings,
  };
}

/** `FLAG: --name="value"` lines, as cobra-based Istio commands log at start. */
export function describeFlags(flags: IptablesFlags): string[] {
  const out: string[] = [];
  for (const spec of FLAGS) {
    if (!spec.key) continue;
    const v = flags[spec.key];
    const shown = spec.kind === 'duration' ? `${Number(v) / 1000}s` : String(v);
    out.push(`FLAG: --${spec.long}="${shown}"`);
  }
  return out;
}

export function usage(): string {
  const lines = ['Script responsible for setting up port forwarding for Istio sidecar.', '', 'Usage:', '  istio-iptables [flags]', '', 'Flags:'];
  for (const spec of FLAGS) {
    const name = spec.short ? `-${spec.short}, --${spec.long}` : `    --${spec.long}`;
    const type = spec.kind === 'bool' ? '' : ` ${spec.kind === 'stringArray' ? 'stringArray' : spec.kind}`;
    const env = spec.env ? ` (env ${spec.env}${spec.alias ? `, then ${spec.alias}` : ''})` : '';
    lines.push(`  ${(name + type).padEnd(52)} ${spec.help}${env}`);
  }
  lines.push(`  ${'-h, --help'.padEnd(52)} help for istio-iptables`);
  return lines.join('\n') + '\n';
}
