// Small helpers shared by benchmarks: timing a command repeatedly, percentiles, process memory.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function median(xs: readonly number[]): number {
  return percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );
}

/** Wall time (ms) from spawn to exit (or until `until` matches stdout, then the child is killed). */
export function timeCommand(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; until?: RegExp } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve(Number(process.hrtime.bigint() - t0) / 1e6);
    };
    child.stdout.on('data', (d: Buffer) => {
      if (!opts.until) return;
      out += d.toString();
      if (opts.until.test(out)) {
        finish();
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', () => (opts.until ? !done && reject(new Error(`${cmd} exited before ${opts.until}`)) : finish()));
  });
}

/** A field of /proc/<pid>/status in kB (VmRSS: resident now; VmHWM: peak since start or reset). */
export function procStatusKb(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}
