// What is already in the tables (Istio's GetStateFromSave in the rule builder and
// VerifyIptablesState in tools/istio-iptables/pkg/capture/helper.go): iptables-save text →
// table → chain → rule lines, and the comparison with the planned rules. Pure; the -C checks
// are run by the caller.
import type { Rule } from './ruleset.js';

export type TableState = Map<string, string[]>;
/** table → chain → rule lines; filter, nat, mangle and raw are always present. */
export type SaveState = Map<string, TableState>;

const TRACKED_TABLES = ['filter', 'nat', 'mangle', 'raw'];

const unquote = (s: string) => s.replace(/^"(.*)"$/, '$1');

/** Istio's parse of save/restore text (GetStateFromSave). */
export function parseSave(text: string): SaveState {
  const state: SaveState = new Map(TRACKED_TABLES.map((t): [string, TableState] => [t, new Map<string, string[]>()]));
  let table: TableState | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line === 'COMMIT') continue;
    if (line.startsWith('*')) {
      table = state.get(line.slice(1).trim());
      continue;
    }
    if (!table) continue;
    if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0]!;
      if (name.startsWith('ISTIO') && !table.has(name)) table.set(name, []);
      continue;
    }
    const words = line.split(' ');
    for (let i = 0; i < words.length - 1; i++) {
      const w = words[i];
      const name = unquote(words[i + 1]!);
      if (w === '-A' || w === '--append' || w === '-I' || w === '--insert') {
        const rules = table.get(name) ?? [];
        rules.push(line);
        table.set(name, rules);
        break;
      }
      if ((w === '-N' || w === '--new') && name.startsWith('ISTIO')) {
        if (!table.has(name)) table.set(name, []);
        break;
      }
    }
  }
  return state;
}

/** Expected chains and their rule counts for one family, from the plan. */
export function expectedState(rules: readonly Rule[]): SaveState {
  const state: SaveState = new Map(TRACKED_TABLES.map((t): [string, TableState] => [t, new Map<string, string[]>()]));
  for (const r of rules) {
    let t = state.get(r.table);
    if (!t) state.set(r.table, (t = new Map<string, string[]>()));
    const list = t.get(r.chain) ?? [];
    list.push(r.params.join(' '));
    t.set(r.chain, list);
  }
  return state;
}

export function hasResidue(current: SaveState): boolean {
  for (const t of current.values()) if (t.size > 0) return true;
  return false;
}

function isEmpty(state: SaveState): boolean {
  return !hasResidue(state);
}

/**
 * The structural checks of Istio's VerifyIptablesState: a planned chain missing, an ISTIO_* chain
 * with a different number of rules, an ISTIO_* chain that is not planned. Returns a reason, or
 * undefined when the remaining question is only whether every planned rule passes `-C`.
 */
export function structuralDelta(current: SaveState, expected: SaveState): string | undefined {
  if (!hasResidue(current)) return isEmpty(expected) ? undefined : 'no existing rules';
  for (const [table, chains] of expected) {
    const cur = current.get(table) ?? new Map<string, string[]>();
    for (const [chain, rules] of chains) {
      const have = cur.get(chain);
      // Built-in chains only exist in the save output once they hold rules.
      if (!have) return `chain ${chain} missing from table ${table}`;
      if (chain.startsWith('ISTIO') && have.length !== rules.length) return `chain ${chain} in table ${table} has ${have.length} rules, want ${rules.length}`;
    }
  }
  for (const [table, chains] of current) {
    for (const chain of chains.keys()) {
      if (chain.startsWith('ISTIO') && !expected.get(table)?.has(chain)) return `unexpected chain ${chain} in table ${table}`;
    }
  }
  return undefined;
}

/** Rules of the saved state that belong to Istio in any way: ISTIO_ chains and jumps into them. */
export function istioFootprint(current: SaveState): { table: string; chains: string[]; jumps: string[] }[] {
  const out: { table: string; chains: string[]; jumps: string[] }[] = [];
  for (const [table, chains] of current) {
    const istioChains = [...chains.keys()].filter((c) => c.startsWith('ISTIO_'));
    const jumps: string[] = [];
    for (const [chain, rules] of chains) {
      if (chain.startsWith('ISTIO_')) continue;
      for (const r of rules) if (/(^| )(-j|--jump|-g|--goto) ISTIO_/.test(r)) jumps.push(r);
    }
    if (istioChains.length || jumps.length) out.push({ table, chains: istioChains, jumps });
  }
  return out;
}

/** Splits save text into its per-table sections (`*table` … `COMMIT`), verbatim. */
export function saveSections(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let table: string | undefined;
  let lines: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      table = line.slice(1).trim();
      lines = [`*${table}`];
      continue;
    }
    if (table === undefined || line === '' || line.startsWith('#')) continue;
    lines.push(line);
    if (line === 'COMMIT') {
      out.set(table, lines.join('\n') + '\n');
      table = undefined;
    }
  }
  return out;
}
