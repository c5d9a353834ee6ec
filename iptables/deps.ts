// The dependencies layer (Istio's tools/istio-iptables/pkg/dependencies): the only place that
// runs programs, and the choice of which iptables binaries to run. RealDependencies spawns them;
// DryRunRecorder runs nothing and records every call exactly as Istio's stub (stub.go) does,
// which is what --dry-run prints and the golden tests compare.
import { spawn } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Family } from './ruleset.js';
import { AgentError } from '../lib/errors.js';

export interface ExecResult {
  /** Exit status; 127 when the program could not be started. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface Dependencies {
  readonly dryRun: boolean;
  exec(bin: string, args: readonly string[], opts?: { stdin?: string; env?: NodeJS.ProcessEnv }): Promise<ExecResult>;
  /**
   * Legacy xtables tables that exist in this network namespace (/proc/net/ip{,6}_tables_names),
   * or undefined when that cannot be read. Lets detection skip a legacy `-save` exec when
   * legacy holds nothing.
   */
  legacyTables?(family: Family): string[] | undefined;
}

export class RealDependencies implements Dependencies {
  readonly dryRun = false;
  // iptables and ip need only PATH (and the xtables knobs); Istio's children get no more than
  // its own config variables. A small object also keeps each spawn() cheap.
  private readonly env: NodeJS.ProcessEnv = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k === 'PATH' || k.startsWith('XTABLES_'))),
  };

  legacyTables(family: Family): string[] | undefined {
    try {
      return readFileSync(`/proc/net/${family === 'v4' ? 'ip' : 'ip6'}_tables_names`, 'utf8')
        .split('\n')
        .filter(Boolean);
    } catch {
      return undefined;
    }
  }

  exec(bin: string, args: readonly string[], opts: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
    return new Promise((resolve) => {
      const child = spawn(bin, args, { stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: opts.env ? { ...this.env, ...opts.env } : this.env });
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', (err: NodeJS.ErrnoException) => resolve({ code: 127, stdout, stderr: `${bin}: ${err.code === 'ENOENT' ? 'executable file not found in $PATH' : err.message}` }));
      child.on('close', (code, signal) => resolve({ code: code ?? 128 + (signal ? 9 : 0), stdout, stderr }));
      if (opts.stdin !== undefined) {
        child.stdin!.on('error', () => {}); // the program may exit before reading it all
        child.stdin!.end(opts.stdin);
      }
    });
  }
}

/**
 * Records calls instead of running them. A call with stdin records each stdin line on its own
 * (the restore command line itself is not recorded); any other call records "bin args…".
 * Every call succeeds with empty output.
 */
export class DryRunRecorder implements Dependencies {
  readonly dryRun = true;
  readonly record: string[] = [];

  constructor(private readonly file?: string) {}

  async exec(bin: string, args: readonly string[], opts: { stdin?: string } = {}): Promise<ExecResult> {
    if (opts.stdin !== undefined) {
      const lines = opts.stdin.split('\n');
      if (lines[lines.length - 1] === '') lines.pop();
      this.record.push(...lines);
    } else {
      this.record.push([bin, ...args].join(' '));
    }
    if (this.file) {
      // QUIRK 13 (fixed): Istio rewrites the file in place without truncating it, so a longer
      // earlier record leaves its tail behind. Written whole and renamed into place instead.
      const tmp = `${this.file}.tmp-${process.pid}`;
      writeFileSync(tmp, this.record.map((l) => `${l}\n`).join(''));
      renameSync(tmp, this.file);
    }
    return { code: 0, stdout: '', stderr: '' };
  }
}

// --- Backend detection ---
// Which iptables binaries to use per family, legacy or nft (Istio's DetectIptablesVersion in
// tools/istio-iptables/pkg/dependencies/implementation.go). Istio's rule: legacy when it already
// holds rules, else nft, else plain `iptables`. Its probe (append and delete a rule in nat
// INPUT) is not needed for that decision and leaves the legacy nat table behind, which makes
// the next run in the same namespace pick legacy (QUIRK 12, fixed here: see README). Instead, the
// `-save` run of each candidate is the probe, and its output is reused as the state snapshot; the
// legacy save is skipped when /proc shows no legacy table. Detection changes nothing, and costs
// one exec per family on a pod that uses nft.
export type Flavour = 'legacy' | 'nft' | 'unknown';

export interface Backend {
  readonly family: Family;
  readonly flavour: Flavour;
  readonly cmd: string;
  readonly save: string;
  readonly restore: string;
  readonly version: string;
  /** legacy ≥ 1.6.2 takes the xtables lock: writes get `--wait=30`. */
  readonly lock: boolean;
  /** The save output read during detection; verification uses it instead of a second save. */
  snapshot?: ExecResult | undefined;
}

export class DetectionError extends AgentError {
  static override readonly code: string = 'IPTABLES_DETECTION';
}

const base = (family: Family) => (family === 'v4' ? 'iptables' : 'ip6tables');

function names(family: Family, variant: '' | '-legacy' | '-nft') {
  const b = base(family) + variant;
  return { cmd: b, save: `${base(family)}${variant}-save`, restore: `${base(family)}${variant}-restore` };
}

/** The plain binaries Istio's dry-run stub reports. */
export function dryRunBackend(family: Family): Backend {
  return { family, flavour: 'unknown', ...names(family, ''), version: '', lock: false };
}

/** `v1.8.9` from `iptables-save v1.8.9 (legacy)` or a dump's `# Generated by iptables-save v1.8.9`. */
export function parseVersion(text: string): string | undefined {
  return /v(\d+(?:\.\d+)+)/.exec(text)?.[1];
}

function versionAtLeast(v: string, want: number[]): boolean {
  const parts = v.split('.').map(Number);
  for (let i = 0; i < want.length; i++) {
    const a = parts[i] ?? 0;
    if (a !== want[i]) return a > want[i]!;
  }
  return true;
}

/** A dump "has rules" when it holds at least one rule line (Istio counted newlines instead). */
export function hasRules(dump: string): boolean {
  return /^-A /m.test(dump);
}

function describeFailure(save: string, r: ExecResult): string {
  return `failed to execute ${save}: exit status ${r.code}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').join('; ')}` : ''}`;
}

async function backendFrom(deps: Dependencies, family: Family, flavour: Flavour, n: ReturnType<typeof names>, snapshot: ExecResult): Promise<Backend> {
  let version = parseVersion(snapshot.stdout) ?? '';
  if (flavour !== 'nft' && version === '') {
    // The lock decision needs the version; an empty dump has no header to read it from.
    const v = await deps.exec(n.save, ['--version']);
    if (v.code === 0 && !v.stderr.includes('unrecognized option')) {
      version = parseVersion(v.stdout) ?? '';
      if (flavour === 'unknown') flavour = v.stdout.includes('nf_tables') ? 'nft' : 'legacy';
    } else if (flavour === 'unknown') {
      flavour = 'legacy';
    }
  } else if (flavour === 'unknown') {
    flavour = snapshot.stdout.includes('nf_tables') ? 'nft' : 'legacy';
  }
  const lock = flavour === 'legacy' && versionAtLeast(version || '0.0.0', [1, 6, 2]);
  return { family, flavour, ...n, version, lock, snapshot };
}

export async function detectBackend(deps: Dependencies, family: Family, forced: '' | 'legacy' | 'nft'): Promise<Backend> {
  if (deps.dryRun) return dryRunBackend(family);
  if (forced) {
    const n = names(family, `-${forced}`);
    const r = await deps.exec(n.save, []);
    if (r.code !== 0) throw new DetectionError(`forced ${forced} ${base(family)} is not usable: ${describeFailure(n.save, r)}`);
    return backendFrom(deps, family, forced, n, r);
  }
  const legacy = names(family, '-legacy');
  const nft = names(family, '-nft');
  // No legacy table in this namespace means no legacy rules: no need to run its save.
  const legacyTables = deps.legacyTables?.(family);
  const skipLegacy = legacyTables !== undefined && legacyTables.length === 0;
  const [l, n] = await Promise.all([skipLegacy ? undefined : deps.exec(legacy.save, []), deps.exec(nft.save, [])]);
  if (l && l.code === 0 && hasRules(l.stdout)) return backendFrom(deps, family, 'legacy', legacy, l);
  if (n.code === 0) return backendFrom(deps, family, 'nft', nft, n);
  const plain = names(family, '');
  const p = await deps.exec(plain.save, []);
  if (p.code === 0) return backendFrom(deps, family, 'unknown', plain, p);
  throw new DetectionError(`no usable ${base(family)} binary: ${[l && describeFailure(legacy.save, l), describeFailure(nft.save, n), describeFailure(plain.save, p)].filter(Boolean).join('; ')}`);
}
