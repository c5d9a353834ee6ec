// The dependencies layer (Istio's dependencies.Dependencies): the only place that runs programs.
// RealDependencies spawns them; DryRunRecorder runs nothing and records every call exactly as
// Istio's stub does (spec §6), which is what --dry-run prints and the golden tests compare.
import { spawn } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Family } from './ruleset.js';

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
  // Copied once: spawn() walks the env object on every call, and process.env is slow to walk.
  private readonly env: NodeJS.ProcessEnv = { ...process.env };

  legacyTables(family: Family): string[] | undefined {
    try {
      return readFileSync(`/proc/net/${family === 'v4' ? 'ip' : 'ip6'}_tables_names`, 'utf8').split('\n').filter(Boolean);
    } catch {
      return undefined;
    }
  }

  exec(bin: string, args: readonly string[], opts: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
    return new Promise((resolve) => {
      const child = spawn(bin, args, { stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: opts.env ?? this.env });
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
