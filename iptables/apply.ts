// The applier (Istio's IptablesConfigurator.Run and executeCommands in
// tools/istio-iptables/pkg/capture/run.go): verify what is in the tables, decide, then apply one
// `iptables-restore --noflush` per family, or clean up. Everything runs through Dependencies, so
// --dry-run (and the golden tests) take exactly this path with a recorder.
//
// Beyond Istio: a failed run leaves the tables as they were. Each family's pre-run save output is
// the snapshot; when a restore fails (or IPv6 fails after IPv4 succeeded), every table the run
// touched is restored from it (a table that did not exist is removed again where the backend can).
import type { Scope } from '../lib/log.js';
import { buildRules, type CapturePlan } from './capture.js';
import type { CaptureConfig } from './config.js';
import { DetectionError, type Backend, type Dependencies, type ExecResult } from './deps.js';
import { payloadTables, renderChecks, renderRestore, renderUndo, type Family, type Rule } from './ruleset.js';
import { expectedState, hasResidue, istioFootprint, parseSave, saveSections, structuralDelta, type SaveState } from './state.js';
import { AgentError, errorMessage } from '../lib/errors.js';

export interface ApplyOptions {
  cleanupOnly: boolean;
  reconcile: boolean;
  forceApply: boolean;
  /** --cni-mode: a pod-scoped lock file (XTABLES_LOCKFILE) for legacy writes. */
  lockFile?: string;
}

/** A failure of the rule step: logged, exit status 1. */
export class ApplyError extends AgentError {
  static override readonly code: string = 'IPTABLES_APPLY';
}

/** Tables istio-iptables writes; the state sweep and rollback stay inside them. */
const CAPTURE_TABLES = ['mangle', 'nat', 'raw'];
const GUARDRAILS: [string, string][] = [
  ['INPUT', 'tcp'],
  ['INPUT', 'udp'],
  ['FORWARD', 'tcp'],
  ['FORWARD', 'udp'],
  ['OUTPUT', 'tcp'],
  ['OUTPUT', 'udp'],
];
const CHECK_CONCURRENCY = 4;

interface FamilyRun {
  family: Family;
  backend: Backend;
  rules: readonly Rule[];
  /** save output before this run changed anything ('' when the save failed) */
  before: string;
  state: SaveState;
  residue: boolean;
  delta?: string | undefined;
}

const XTABLES_PROBLEM: Record<number, string> = { 1: 'other problem', 2: 'parameter problem', 3: 'version problem', 4: 'resource problem' };

function oneLine(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^Try `.*' for more information\.$/.test(l))
    .join('; ');
}

export class Applier {
  /** The detected backends, kept for the final dump. */
  private v4?: Backend;
  private v6?: Backend | undefined;

  constructor(
    private readonly deps: Dependencies,
    private readonly log: Scope,
    private readonly opts: ApplyOptions,
  ) {}

  private writeArgs(b: Backend, args: readonly string[]): string[] {
    return b.lock ? [...args, '--wait=30'] : [...args];
  }

  private writeEnv(b: Backend): NodeJS.ProcessEnv | undefined {
    // Istio's CNI mode: a pod-scoped lock file instead of the host's /run/xtables.lock.
    if (!b.lock || !this.opts.lockFile) return undefined;
    return { XTABLES_LOCKFILE: this.opts.lockFile };
  }

  private iptables(b: Backend, args: readonly string[]): Promise<ExecResult> {
    const env = this.writeEnv(b);
    return this.deps.exec(b.cmd, this.writeArgs(b, args), env ? { env } : {});
  }

  private restore(b: Backend, payload: string, noflush: boolean): Promise<ExecResult> {
    const env = this.writeEnv(b);
    return this.deps.exec(b.restore, this.writeArgs(b, noflush ? ['--noflush'] : []), env ? { stdin: payload, env } : { stdin: payload });
  }

  private async save(b: Backend, useSnapshot: boolean): Promise<ExecResult> {
    if (useSnapshot && b.snapshot) {
      const s = b.snapshot;
      b.snapshot = undefined;
      return s;
    }
    return this.deps.exec(b.save, []);
  }

  /**
   * The rule step; returns once the rules are in place (or removed, for cleanup-only). The
   * backends come as promises: the caller starts detection as early as it can.
   */
  async run(cfg: CaptureConfig, plan: CapturePlan, detectV4: Promise<Backend>, detectV6: Promise<Backend | undefined>): Promise<void> {
    const [r4, r6] = await Promise.allSettled([detectV4, detectV6]);
    if (r4.status === 'rejected') throw asApplyError(r4.reason);
    const v4 = (this.v4 = r4.value);
    let v6: Backend | undefined;
    if (r6.status === 'fulfilled') v6 = r6.value;
    else if (cfg.enableIPv6) throw asApplyError(r6.reason);
    else this.log.warn(`ip6tables is not usable (${errorMessage(r6.reason)}); IPv6 rules are not cleaned up`);
    this.v6 = v6;
    const flavour = v4.flavour === 'unknown' ? '' : ` (${v4.flavour}${v4.version ? ` ${v4.version}` : ''})`;
    this.log.info(`Using ${v4.cmd}${flavour}${v6 ? ` and ${v6.cmd}` : ''}`);
    await this.rules(cfg, plan, v4, v6);
  }

  /**
   * The final dump (the iptables-save Istio's Run defers): what `kubectl logs istio-init` shows.
   * Runs after the rule step whether it succeeded or not; output is only logged.
   */
  async finalDump(cfg: CaptureConfig): Promise<void> {
    const backends = [this.v4, cfg.enableIPv6 ? this.v6 : undefined].filter((b): b is Backend => b !== undefined);
    for (const d of await Promise.all(backends.map((b) => this.deps.exec(b.save, [])))) if (d.code === 0 && d.stdout.trim()) this.log.info(`Command output: \n${d.stdout.trimEnd()}`);
  }

  private async rules(cfg: CaptureConfig, plan: CapturePlan, v4: Backend, v6: Backend | undefined): Promise<void> {
    const runs = await Promise.all([this.inspect('v4', v4, plan.rules.v4), v6 ? this.inspect('v6', v6, plan.rules.v6) : undefined]);
    const families = runs.filter((r): r is FamilyRun => r !== undefined);
    for (const f of families) if (f.residue && f.rules.length === 0) this.log.warn(`residual ${f.backend.cmd} rules are ignored: no ${f.family === 'v6' ? 'IPv6' : 'IPv4'} rules are planned`);

    if (this.opts.cleanupOnly) {
      await this.cleanupOnly(cfg, families);
      return;
    }
    const counted = families.filter((f) => f.residue && f.rules.length > 0);
    const toApply = families.filter((f) => f.rules.length > 0);
    if (counted.length === 0) {
      await this.apply(toApply);
      return;
    }
    for (const f of counted) f.delta = await this.delta(f);
    const drift = counted.filter((f) => f.delta !== undefined);
    if (drift.length === 0) {
      if (!this.opts.forceApply) {
        this.log.info('Found compatible residual iptables rules; nothing to apply');
        return;
      }
      this.log.warn('--force-apply: applying although equivalent rules are already in place');
      await this.apply(toApply);
      return;
    }
    const why = drift.map((f) => `${f.backend.cmd}: ${f.delta}`).join('; ');
    if (!this.opts.reconcile) {
      this.log.info(`Existing iptables state differs from the wanted rules (${why}); applying. If Istio rules are already in place, reconcile is recommended (--reconcile).`);
      await this.apply(toApply);
      return;
    }
    this.log.info(`Reconciling: existing iptables state differs from the wanted rules (${why})`);
    await this.reconcile(toApply);
  }

  private async inspect(family: Family, backend: Backend, rules: readonly Rule[]): Promise<FamilyRun> {
    const r = await this.save(backend, true);
    const before = r.code === 0 ? r.stdout : '';
    const state = parseSave(before);
    return { family, backend, rules, before, state, residue: hasResidue(state) };
  }

  /** Istio's VerifyIptablesState for a family with residue: a reason when the state differs. */
  private async delta(f: FamilyRun): Promise<string | undefined> {
    const structural = structuralDelta(f.state, expectedState(f.rules));
    if (structural) return structural;
    const checks = renderChecks(f.rules);
    let failed: string | undefined;
    let next = 0;
    const worker = async () => {
      while (failed === undefined && next < checks.length) {
        const args = checks[next++]!;
        const r = await this.iptables(f.backend, args);
        if (r.code !== 0) failed ??= `rule missing: ${args.join(' ')}`;
      }
    };
    await Promise.all(Array.from({ length: Math.min(CHECK_CONCURRENCY, checks.length) }, worker));
    return failed;
  }

  /** One restore per family, all families at once; any failure rolls every family back. */
  private async apply(families: readonly FamilyRun[], rollbackExtra: readonly string[] = []): Promise<void> {
    const payloads = families.map((f) => renderRestore(f.rules));
    families.forEach((f, i) => this.log.info(`Running iptables restore with: ${f.backend.restore} and the following input:\n${payloads[i]!.trim()}`));
    const results = await Promise.all(families.map((f, i) => this.restore(f.backend, payloads[i]!, true)));
    const failed = results.findIndex((r) => r.code !== 0);
    if (failed < 0) return;
    await this.rollback(families, rollbackExtra);
    throw restoreError(families[failed]!.backend, payloads[failed]!, results[failed]!);
  }

  /** Puts every table the run touched back to its pre-run content. */
  private async rollback(families: readonly FamilyRun[], extraTables: readonly string[]): Promise<void> {
    for (const f of families) {
      const sections = saveSections(f.before);
      const tables = new Set([...payloadTables(f.rules), ...extraTables]);
      // `*T` + `COMMIT` without --noflush empties T; iptables-nft removes the table itself.
      const input = [...tables]
        .sort()
        .map((t) => sections.get(t) ?? `*${t}\nCOMMIT\n`)
        .join('');
      const r = await this.restore(f.backend, input, false);
      if (r.code === 0) this.log.warn(`Rolled back ${f.backend.cmd} tables ${[...tables].sort().join(', ')} to their state before this run`);
      else this.log.error(`rollback of ${f.backend.cmd} failed (exit status ${r.code}): ${oneLine(r.stderr)}`);
    }
  }

  private async reconcile(families: readonly FamilyRun[]): Promise<void> {
    const guarded: FamilyRun[] = [];
    try {
      for (const f of families) {
        for (const [chain, proto] of GUARDRAILS) await this.iptables(f.backend, ['-t', 'filter', '-D', chain, '-p', proto, '-j', 'DROP']);
        guarded.push(f);
        for (const [chain, proto] of GUARDRAILS) {
          const r = await this.iptables(f.backend, ['-t', 'filter', '-I', chain, '1', '-p', proto, '-j', 'DROP']);
          if (r.code !== 0) throw new ApplyError(`failed to insert guardrail ${chain} -p ${proto} -j DROP: ${oneLine(r.stderr)}`);
        }
      }
      const sweptTables = new Set<string>();
      for (const f of families) {
        await this.undo(f.backend, f.rules);
        for (const t of await this.sweep(f.backend)) sweptTables.add(t);
      }
      await this.apply(families, [...sweptTables]);
    } finally {
      for (const f of guarded) {
        for (const [chain, proto] of GUARDRAILS) {
          const r = await this.iptables(f.backend, ['-t', 'filter', '-D', chain, '-p', proto, '-j', 'DROP']);
          if (r.code !== 0) break;
        }
        // Guardrails instantiate the filter table; leave no trace where it did not exist.
        if (!saveSections(f.before).has('filter')) await this.dropEmptyTables(f.backend, ['filter']);
      }
    }
  }

  private async cleanupOnly(cfg: CaptureConfig, families: readonly FamilyRun[]): Promise<void> {
    // IPv6 rules are removed whenever ip6tables works, also if this host's IPv6 detection says off
    // (the rules may come from a dual-stack run); hence the v6 plan is built regardless.
    const v6Rules = cfg.enableIPv6 ? undefined : buildRules({ ...cfg, enableIPv6: true }).rules.v6;
    for (const f of families) await this.undo(f.backend, f.family === 'v6' && v6Rules ? v6Rules : f.rules);
    for (const f of families) {
      await this.sweep(f.backend);
      await this.dropEmptyTables(f.backend, CAPTURE_TABLES);
    }
  }

  /**
   * Plan-based cleanup (Istio's BuildCleanupV4/V6): the undo list, one command at a time,
   * errors ignored.
   */
  private async undo(b: Backend, rules: readonly Rule[]): Promise<void> {
    for (const args of renderUndo(rules)) await this.iptables(b, args);
  }

  /**
   * State-based cleanup after the plan-based one: any jump into an ISTIO_ chain and any ISTIO_
   * chain still present (left by a run with other flags) goes, in one restore. Returns the
   * tables it changed.
   */
  private async sweep(b: Backend): Promise<string[]> {
    const r = await this.deps.exec(b.save, []);
    if (r.code !== 0) return [];
    const footprint = istioFootprint(parseSave(r.stdout)).filter((t) => CAPTURE_TABLES.includes(t.table));
    if (footprint.length === 0) return [];
    let input = '';
    for (const t of footprint) {
      const lines = [...t.jumps.map((j) => j.replace(/^-A /, '-D ')), ...t.chains.map((c) => `-F ${c}`), ...t.chains.map((c) => `-X ${c}`)];
      input += `*${t.table}\n${lines.join('\n')}\nCOMMIT\n`;
    }
    const res = await this.restore(b, input, true);
    if (res.code !== 0) this.log.warn(`removing leftover Istio chains with ${b.restore} failed: ${oneLine(res.stderr)}`);
    return footprint.map((t) => t.table);
  }

  /**
   * iptables-nft keeps a table once anything touched it; an empty one (no rules, no user
   * chains, ACCEPT policies) is removed so cleanup leaves `iptables-save` as it found it.
   */
  private async dropEmptyTables(b: Backend, tables: readonly string[]): Promise<void> {
    if (b.flavour !== 'nft') return;
    const r = await this.deps.exec(b.save, []);
    if (r.code !== 0) return;
    const sections = saveSections(r.stdout);
    const empty = tables.filter((t) => {
      const s = sections.get(t);
      if (!s) return false;
      return s.split('\n').every((l) => l === '' || l === 'COMMIT' || l.startsWith('*') || /^:\S+ ACCEPT /.test(l));
    });
    if (empty.length === 0) return;
    await this.restore(b, empty.map((t) => `*${t}\nCOMMIT\n`).join(''), false);
  }
}

function asApplyError(err: unknown): Error {
  if (err instanceof DetectionError) return new ApplyError(err.message);
  return err as Error;
}

/** One line naming what iptables rejected, with the payload line it points at. */
export function restoreError(b: Backend, payload: string, r: ExecResult): ApplyError {
  const detail = oneLine(r.stderr);
  const m = /line:? (\d+)/.exec(r.stderr);
  const lineNo = m ? Number(m[1]) : 0;
  const line = lineNo > 0 ? payload.split('\n')[lineNo - 1] : undefined;
  const problem = XTABLES_PROBLEM[r.code] ? ` (xtables ${XTABLES_PROBLEM[r.code]})` : '';
  return new ApplyError(`${b.restore} --noflush failed: exit status ${r.code}${problem}: ${detail}${line ? ` [input line ${lineNo}: ${line}]` : ''}`);
}
