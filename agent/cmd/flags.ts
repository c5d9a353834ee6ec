// pflag compatibility in front of commander. Istio's CLI (cobra/pflag) ignores unknown flags on
// the root and on `proxy`, lets bool flags take `--flag=false`, and prints every flag at start.
// Commander parses the known flags; this module rewrites argv so that it only ever sees them.
import type { Command } from 'commander';
import { parseGoBool } from '../../lib/goparse.js';
import { AgentError } from '../../lib/errors.js';

interface FlagInfo {
  takesValue: boolean;
  /** commander's negated spelling for bool flags (`--no-x`), when defined */
  negate?: string;
}

function optionsOf(cmd: Command): Map<string, FlagInfo> {
  // commander's own help flag is not in cmd.options
  const out = new Map<string, FlagInfo>([
    ['--help', { takesValue: false }],
    ['-h', { takesValue: false }],
  ]);
  for (const o of cmd.options) {
    if (o.negate) continue;
    const info: FlagInfo = { takesValue: o.required || o.optional };
    const neg = cmd.options.find((n) => n.negate && n.long === `--no-${o.long?.slice(2)}`);
    if (neg?.long) info.negate = neg.long;
    if (o.long) out.set(o.long, info);
    if (o.short) out.set(o.short, info);
  }
  return out;
}

export class FlagError extends AgentError {
  static override readonly code: string = 'CMD_FLAG';
}

/**
 * Rewrites argv (without node and script) so commander sees only flags the command chain
 * declares, the way pflag with UnknownFlags=true would have parsed them:
 * - an unknown `--flag` is dropped, and so is the following argument when it does not start
 *   with `-` (pflag treats it as the unknown flag's value);
 * - `--bool=false` becomes `--no-bool`, `--bool=true` becomes `--bool`;
 * - everything after `--` is left alone.
 * Subcommands are followed as they appear so each one's flags are known.
 */
export function normalizeArgv(root: Command, args: readonly string[]): string[] {
  const out: string[] = [];
  let cmd = root;
  let known = optionsOf(root);
  let sawPositional = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      out.push(...args.slice(i));
      break;
    }
    if (a.startsWith('--') && a.length > 2) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a : a.slice(0, eq);
      const info = known.get(name);
      if (!info) {
        // pflag: `--unknown value` swallows `value`; `--unknown=value` and `--unknown --next` do not.
        if (eq < 0 && i + 1 < args.length && !args[i + 1]!.startsWith('-')) i++;
        continue;
      }
      if (!info.takesValue && eq >= 0) {
        const v = parseGoBool(a.slice(eq + 1));
        if (v === undefined) {
          throw new FlagError(`invalid argument ${JSON.stringify(a.slice(eq + 1))} for "${name}" flag: strconv.ParseBool: parsing ${JSON.stringify(a.slice(eq + 1))}: invalid syntax`);
        }
        if (v) out.push(name);
        else if (info.negate) out.push(info.negate);
        continue;
      }
      out.push(a);
      if (info.takesValue && eq < 0 && i + 1 < args.length) out.push(args[++i]!);
      continue;
    }
    if (a.startsWith('-') && a.length > 1 && !/^-\d/.test(a)) {
      const name = a.slice(0, 2);
      const info = known.get(name);
      if (!info) {
        if (a.length === 2 && i + 1 < args.length && !args[i + 1]!.startsWith('-')) i++;
        continue;
      }
      out.push(a);
      if (info.takesValue && a.length === 2 && i + 1 < args.length) out.push(args[++i]!);
      continue;
    }
    // A positional: descend into a subcommand when it names one.
    if (!sawPositional) {
      const sub = cmd.commands.find((c) => c.name() === a || c.aliases().includes(a));
      if (sub) {
        cmd = sub;
        known = new Map([...optionsOf(root), ...optionsOf(sub)]);
        out.push(a);
        continue;
      }
      sawPositional = true;
    }
    out.push(a);
  }
  return out;
}

/**
 * `FLAG: --name="value"` lines for every flag of the command chain, sorted by name, as Istio's
 * cmd.PrintFlags logs them at start.
 */
export function describeFlags(cmds: readonly Command[]): string[] {
  const lines = new Map<string, string>();
  for (const c of cmds) {
    const values = c.opts<Record<string, unknown>>();
    for (const o of c.options) {
      if (o.negate || !o.long || o.hidden) continue;
      const v = values[o.attributeName()];
      const shown = Array.isArray(v) ? `[${v.join(',')}]` : typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : '';
      lines.set(o.long.slice(2), `FLAG: ${o.long}=${JSON.stringify(shown)}`);
    }
  }
  return [...lines.keys()].sort().map((k) => lines.get(k)!);
}
