// Envoy's command-line options (source/server/options_impl.cc), parsed the way Envoy's TCLAP
// parser does: `--flag value` or `--flag=value`, unknown flags and repeated flags are errors, and
// the values of the flags pilot-agent uses are checked. A stand-in that accepted anything would
// hide an argv Envoy refuses.

type Kind = 'value' | 'bool';

const FLAGS: Record<string, Kind> = {
  '--base-id': 'value',
  '--base-id-path': 'value',
  '--use-dynamic-base-id': 'bool',
  '--concurrency': 'value',
  '--config-path': 'value',
  '--config-yaml': 'value',
  '--allow-unknown-static-fields': 'bool',
  '--reject-unknown-dynamic-fields': 'bool',
  '--ignore-unknown-dynamic-fields': 'bool',
  '--skip-deprecated-logs': 'bool',
  '--log-level': 'value',
  '--component-log-level': 'value',
  '--log-format': 'value',
  '--log-format-escaped': 'bool',
  '--enable-fine-grain-logging': 'bool',
  '--log-path': 'value',
  '--restart-epoch': 'value',
  '--hot-restart-version': 'bool',
  '--service-cluster': 'value',
  '--service-node': 'value',
  '--service-zone': 'value',
  '--file-flush-interval-msec': 'value',
  '--file-flush-min-size-kb': 'value',
  '--drain-time-s': 'value',
  '--drain-strategy': 'value',
  '--parent-shutdown-time-s': 'value',
  '--mode': 'value',
  '--disable-hot-restart': 'bool',
  '--enable-mutex-tracing': 'bool',
  '--cpuset-threads': 'bool',
  '--disable-extensions': 'value',
  '--socket-path': 'value',
  '--socket-mode': 'value',
  '--enable-core-dump': 'bool',
  '--local-address-ip-version': 'value',
  '--stats-tag': 'value',
  '--version': 'bool',
  '--help': 'bool',
};

const SHORT: Record<string, string> = { '-c': '--config-path', '-l': '--log-level', '-h': '--help' };

const LOG_LEVELS = ['trace', 'debug', 'info', 'warning', 'warn', 'error', 'critical', 'off'];

export class EnvoyFlagError extends Error {
  override readonly name = 'EnvoyFlagError';
}

/** Parsed options, keyed by long flag name (`--config-path`); bool flags map to 'true'. */
export type EnvoyFlags = ReadonlyMap<string, string>;

function checkUint(name: string, v: string): void {
  if (!/^\d+$/.test(v)) throw new EnvoyFlagError(`PARSE ERROR: Argument: ${name}\n             Couldn't read argument value from string '${v}'`);
}

export function parseEnvoyFlags(argv: readonly string[]): EnvoyFlags {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const given = eq >= 0 ? a.slice(0, eq) : a;
    const name = SHORT[given] ?? given;
    const kind = FLAGS[name];
    if (!kind) throw new EnvoyFlagError(`PARSE ERROR: Argument: ${a}\n             Couldn't find match for argument`);
    if (out.has(name)) throw new EnvoyFlagError(`PARSE ERROR: Argument: ${given}\n             Argument already set!`);
    if (kind === 'bool') {
      if (eq >= 0) throw new EnvoyFlagError(`PARSE ERROR: Argument: ${a}\n             Couldn't find match for argument`);
      out.set(name, 'true');
      continue;
    }
    let v: string;
    if (eq >= 0) v = a.slice(eq + 1);
    else {
      if (i + 1 >= argv.length) throw new EnvoyFlagError(`PARSE ERROR: Argument: ${given}\n             Missing a value for this argument!`);
      v = argv[++i]!;
    }
    out.set(name, v);
  }
  validate(out);
  return out;
}

function validate(f: Map<string, string>): void {
  const level = f.get('--log-level');
  if (level !== undefined && !LOG_LEVELS.includes(level)) {
    throw new EnvoyFlagError(`PARSE ERROR: Argument: (--log-level)\n             Value '${level}' does not meet constraint: ${LOG_LEVELS.join('|')}`);
  }
  const comp = f.get('--component-log-level');
  if (comp !== undefined) {
    for (const item of comp.split(',')) {
      const [c, l, extra] = item.split(':');
      if (!c || l === undefined || extra !== undefined || !LOG_LEVELS.includes(l)) throw new EnvoyFlagError(`error: component log level not correctly specified '${item}'`);
    }
  }
  const strategy = f.get('--drain-strategy');
  if (strategy !== undefined && strategy !== 'gradual' && strategy !== 'immediate') throw new EnvoyFlagError(`error: unknown drain-strategy '${strategy}'`);
  const ipv = f.get('--local-address-ip-version');
  if (ipv !== undefined && ipv !== 'v4' && ipv !== 'v6') throw new EnvoyFlagError(`error: unknown IP address version '${ipv}'`);
  for (const n of ['--concurrency', '--drain-time-s', '--file-flush-interval-msec', '--file-flush-min-size-kb', '--parent-shutdown-time-s', '--restart-epoch', '--base-id']) {
    const v = f.get(n);
    if (v !== undefined) checkUint(n, v);
  }
  if (!f.has('--version') && !f.has('--help') && !f.has('--config-path') && !f.has('--config-yaml')) {
    throw new EnvoyFlagError('error: At least one of --config-path or --config-yaml or Options::configProto() should be non-empty');
  }
}
