// The typed environment-variable registry mechanism. Each program declares its variables once
// (config/env.ts, iptables/env.ts) with name, type, default and description; values are
// read in one place with Go's parsing rules, and the README table is generated from the same
// declarations. Nothing else reads process.env.
import { formatGoDuration, parseGoBool, parseGoDuration, parseGoFloat, parseGoInt } from './goparse.js';

export type EnvKind = 'string' | 'bool' | 'int' | 'float' | 'duration';

interface KindValues {
  string: string;
  bool: boolean;
  int: number;
  float: number;
  /** milliseconds */
  duration: number;
}

export interface EnvVarDef<K extends EnvKind = EnvKind, Optional extends boolean = boolean> {
  kind: K;
  /** Used when the variable is unset (or unparsable). Ignored for optional variables. */
  default: KindValues[K];
  description: string;
  /** Optional variables read as `undefined` when unset, so "unset" and "set" can differ. */
  optional?: Optional;
  /** Which subsystem reads it; groups the README table. */
  group: string;
}

/** A family of variables sharing a prefix (`ISTIO_META_*`); read as a map of suffix → value. */
export interface EnvPrefixDef {
  kind: 'prefix';
  description: string;
  group: string;
}

export type EnvDef = EnvVarDef | EnvPrefixDef;
export type EnvDefs = Record<string, EnvDef>;

export type EnvValue<D> = D extends EnvPrefixDef ? ReadonlyMap<string, string> : D extends EnvVarDef<infer K, infer O> ? (O extends true ? KindValues[K] | undefined : KindValues[K]) : never;

export type EnvValues<T extends EnvDefs> = { readonly [N in keyof T]: EnvValue<T[N]> };

export type EnvSource = Readonly<Record<string, string | undefined>>;

export interface EnvWarning {
  name: string;
  value: string;
  message: string;
}

// Helpers that keep declarations short and their types exact.
export const str = (def: string, description: string, group: string): EnvVarDef<'string', false> => ({ kind: 'string', default: def, description, group });
export const optStr = (description: string, group: string): EnvVarDef<'string', true> => ({ kind: 'string', default: '', description, group, optional: true });
export const bool = (def: boolean, description: string, group: string): EnvVarDef<'bool', false> => ({ kind: 'bool', default: def, description, group });
export const optBool = (description: string, group: string): EnvVarDef<'bool', true> => ({ kind: 'bool', default: false, description, group, optional: true });
export const int = (def: number, description: string, group: string): EnvVarDef<'int', false> => ({ kind: 'int', default: def, description, group });
export const float = (def: number, description: string, group: string): EnvVarDef<'float', false> => ({ kind: 'float', default: def, description, group });
export const duration = (defMs: number, description: string, group: string): EnvVarDef<'duration', false> => ({ kind: 'duration', default: defMs, description, group });
export const prefix = (description: string, group: string): EnvPrefixDef => ({ kind: 'prefix', description, group });

const expectation: Record<EnvKind, string> = {
  string: 'a string',
  bool: 'a boolean (1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False)',
  int: 'a base-10 integer',
  float: 'a number',
  duration: 'a duration such as 500ms, 30s or 1h30m',
};

function parseValue(kind: EnvKind, raw: string): string | boolean | number | undefined {
  switch (kind) {
    case 'string':
      return raw;
    case 'bool':
      return parseGoBool(raw);
    case 'int':
      return parseGoInt(raw);
    case 'float':
      return parseGoFloat(raw);
    case 'duration':
      return parseGoDuration(raw);
  }
}

export function formatDefault(def: EnvDef): string {
  if (def.kind === 'prefix') return '—';
  if (def.optional) return '(unset)';
  if (def.kind === 'duration') return formatGoDuration(def.default as number);
  return String(def.default);
}

/**
 * Reads every declared variable from `source`. An unparsable value falls back to the default
 * and is reported through `warn` (Istio logs a warning and carries on for these).
 */
export function readEnv<T extends EnvDefs>(defs: T, source: EnvSource, warn: (w: EnvWarning) => void): EnvValues<T> {
  const out: Record<string, unknown> = {};
  for (const [name, def] of Object.entries(defs)) {
    if (def.kind === 'prefix') {
      const m = new Map<string, string>();
      for (const [k, v] of Object.entries(source)) {
        if (v !== undefined && k.startsWith(name) && k.length > name.length) m.set(k.slice(name.length), v);
      }
      out[name] = m;
      continue;
    }
    const raw = source[name];
    if (raw === undefined) {
      out[name] = def.optional ? undefined : def.default;
      continue;
    }
    const v = parseValue(def.kind, raw);
    if (v === undefined) {
      const fallback = def.optional ? 'unset' : formatDefault(def);
      warn({
        name,
        value: raw,
        message: `invalid value ${JSON.stringify(raw)} for environment variable ${name}: expecting ${expectation[def.kind]}; using ${def.optional ? '' : 'default '}${fallback}`,
      });
      out[name] = def.optional ? undefined : def.default;
    } else {
      out[name] = v;
    }
  }
  return Object.freeze(out) as EnvValues<T>;
}

/** Markdown rows for the README's environment table, grouped by subsystem. */
export function envTableMarkdown(defs: EnvDefs): string {
  const rows = ['| Variable | Type | Default | Meaning |', '|---|---|---|---|'];
  const byGroup = new Map<string, [string, EnvDef][]>();
  for (const entry of Object.entries(defs)) {
    const list = byGroup.get(entry[1].group) ?? [];
    list.push(entry);
    byGroup.set(entry[1].group, list);
  }
  for (const [group, entries] of byGroup) {
    rows.push(`| **${group}** | | | |`);
    for (const [name, def] of entries) {
      const shown = def.kind === 'prefix' ? `\`${name}<NAME>\`` : `\`${name}\``;
      const type = def.kind === 'prefix' ? 'string map' : def.kind;
      const dflt = formatDefault(def);
      const dfltCell = dflt === '—' || dflt === '(unset)' ? dflt : dflt === '' ? '`""`' : `\`${dflt}\``;
      rows.push(`| ${shown} | ${type} | ${dfltCell} | ${def.description.replace(/\|/g, '\\|')} |`);
    }
  }
  return rows.join('\n');
}
