// The rule builder (Istio's IptablesRuleBuilder): it only collects rules, per address family, in
// generation order, and renders them. Nothing here runs a command, so the capture logic and the
// renderers are tested rule for rule against Istio's goldens
// (tools/istio-iptables/pkg/builder/iptables_builder_impl.go and its testdata).

export type Family = 'v4' | 'v6';

export interface Rule {
  readonly chain: string;
  readonly table: string;
  /** The stored arguments: `-A <chain> …` or `-I <chain> <n> …`. */
  readonly params: readonly string[];
}

/** Ordered rules per family; v6 is empty when IPv6 is off. */
export interface RuleSet {
  readonly v4: readonly Rule[];
  readonly v6: readonly Rule[];
}

/** Placeholder replaced by the family's value in versioned rules. */
export const IP_VERSION_SPECIFIC = '\u0000IP_VERSION_SPECIFIC\u0000';

export const BUILT_IN_CHAINS: ReadonlySet<string> = new Set(['INPUT', 'OUTPUT', 'FORWARD', 'PREROUTING', 'POSTROUTING', 'ACCEPT', 'RETURN', 'DROP']);

export class RuleBuilder {
  private readonly rules: { v4: Rule[]; v6: Rule[] } = { v4: [], v6: [] };

  constructor(private readonly enableIPv6: boolean) {}

  private add(family: Family, chain: string, table: string, params: readonly string[]): this {
    if (family === 'v6' && !this.enableIPv6) return this;
    this.rules[family].push({ chain, table, params });
    return this;
  }

  appendV4(chain: string, table: string, ...params: string[]): this {
    return this.add('v4', chain, table, ['-A', chain, ...params]);
  }

  appendV6(chain: string, table: string, ...params: string[]): this {
    return this.add('v6', chain, table, ['-A', chain, ...params]);
  }

  /** Same rule in both families. */
  append(chain: string, table: string, ...params: string[]): this {
    return this.appendV4(chain, table, ...params).appendV6(chain, table, ...params);
  }

  /** Both families, with IP_VERSION_SPECIFIC replaced by `v4` or `v6`. */
  appendVersioned(v4: string, v6: string, chain: string, table: string, ...params: string[]): this {
    const sub = (value: string) => params.map((p) => (p === IP_VERSION_SPECIFIC ? value : p));
    return this.appendV4(chain, table, ...sub(v4)).appendV6(chain, table, ...sub(v6));
  }

  insertV4(chain: string, table: string, position: number, ...params: string[]): this {
    return this.add('v4', chain, table, ['-I', chain, String(position), ...params]);
  }

  insertV6(chain: string, table: string, position: number, ...params: string[]): this {
    return this.add('v6', chain, table, ['-I', chain, String(position), ...params]);
  }

  insert(chain: string, table: string, position: number, ...params: string[]): this {
    return this.insertV4(chain, table, position, ...params).insertV6(chain, table, position, ...params);
  }

  build(): RuleSet {
    return { v4: [...this.rules.v4], v6: [...this.rules.v6] };
  }
}

const isBuiltIn = (chain: string) => BUILT_IN_CHAINS.has(chain);
const key = (chain: string, table: string) => `${table}\u0000${chain}`;

/** Tables with content, in the order the restore payload lists them (alphabetical). */
export function payloadTables(rules: readonly Rule[]): string[] {
  return [...new Set(rules.map((r) => r.table))].sort();
}

/** Istio's buildRestore: the iptables-restore payload of a family ('' when there are no rules). */
export function renderRestore(rules: readonly Rule[]): string {
  const buckets = new Map<string, string[]>([
    ['filter', []],
    ['nat', []],
    ['mangle', []],
  ]);
  const bucket = (table: string) => {
    let b = buckets.get(table);
    if (!b) buckets.set(table, (b = []));
    return b;
  };
  const seen = new Set<string>();
  for (const r of rules) {
    const k = key(r.chain, r.table);
    if (seen.has(k)) continue;
    seen.add(k);
    if (!isBuiltIn(r.chain)) bucket(r.table).push(`-N ${r.chain}`);
  }
  // Chains that are only jumped to: caught when `-j X` ends the rule (targets with options are not).
  for (const r of rules) {
    const n = r.params.length;
    if (n < 2 || r.params[n - 2] !== '-j') continue;
    const target = r.params[n - 1]!;
    const k = key(target, r.table);
    if (seen.has(k) || isBuiltIn(target)) continue;
    seen.add(k);
    bucket(r.table).push(`-N ${target}`);
  }
  for (const r of rules) bucket(r.table).push(r.params.join(' '));
  let out = '';
  for (const table of [...buckets.keys()].sort()) {
    const lines = buckets.get(table)!;
    if (lines.length === 0) continue;
    out += `* ${table}\n${lines.join('\n')}\nCOMMIT\n`;
  }
  return out;
}

/** Istio's buildRules: `-t T -N C` per new chain, then `-t T <args>` per rule (the goldens). */
export function renderCommands(rules: readonly Rule[]): string[][] {
  const out: string[][] = [];
  const seen = new Set<string>();
  for (const r of rules) {
    const k = key(r.chain, r.table);
    if (seen.has(k)) continue;
    seen.add(k);
    if (!isBuiltIn(r.chain)) out.push(['-t', r.table, '-N', r.chain]);
  }
  for (const r of rules) out.push(['-t', r.table, ...r.params]);
  return out;
}

/** `-A`/`-I n` → `-C`: the existence checks of state verification (Istio's buildCheckRules). */
export function renderChecks(rules: readonly Rule[]): string[][] {
  return rules.map((r) => ['-t', r.table, ...toVerb(r.params, '-C')]);
}

function toVerb(params: readonly string[], verb: string): string[] {
  const [op, chain, ...rest] = params;
  if (op === '-I' || op === '--insert') return [verb, chain!, ...rest.slice(1)];
  return [verb, chain!, ...rest];
}

function jumpsToIstio(params: readonly string[]): boolean {
  for (let i = 0; i < params.length - 1; i++) {
    if ((params[i] === '-j' || params[i] === '--jump') && params[i + 1]!.startsWith('ISTIO_')) return true;
  }
  return false;
}

/**
 * Istio's "undo" list (UndoRules in tools/istio-iptables/pkg/builder/helper.go; plan-based
 * cleanup): deletes of the planned rules outside ISTIO_ chains and of every jump into one,
 * newest first, then flush + delete of each planned chain.
 */
export function renderUndo(rules: readonly Rule[]): string[][] {
  const reversed = [...rules].reverse();
  const out: string[][] = [];
  for (const r of reversed) {
    if (r.chain.startsWith('ISTIO_') && !jumpsToIstio(r.params)) continue;
    out.push(['-t', r.table, ...toVerb(r.params, '-D')]);
  }
  const seen = new Set<string>();
  for (const r of reversed) {
    const k = key(r.chain, r.table);
    if (seen.has(k) || isBuiltIn(r.chain)) continue;
    seen.add(k);
    out.push(['-t', r.table, '-F', r.chain], ['-t', r.table, '-X', r.chain]);
  }
  return out;
}
