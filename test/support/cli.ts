// Spawns the real built CLI (the `pilot-agent` bin, dist/bundle/pilot-agent.mjs) and collects its output and exit status.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { pilotAgentBin } from './paths.js';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Spawned {
  child: ChildProcess;
  output(): { stdout: string; stderr: string };
  /** Resolves when stdout has printed a line matching `re`. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<RunResult>;
}

export function spawnCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; bin?: string } = {}): Spawned {
  const child = spawn(process.execPath, [opts.bin ?? pilotAgentBin, ...args], {
    cwd: opts.cwd,
    env: opts.env ?? { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    for (const w of waiters.splice(0)) {
      if (w.re.test(stdout)) w.resolve();
      else waiters.push(w);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = once(child, 'close').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null, stdout, stderr }));
  return {
    child,
    output: () => ({ stdout, stderr }),
    waitFor: (re, timeoutMs = 15_000) =>
      new Promise<void>((resolve, reject) => {
        if (re.test(stdout)) return resolve();
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} in output:\n${stdout}\n${stderr}`)), timeoutMs);
        waiters.push({ re, resolve: () => (clearTimeout(timer), resolve()) });
        void exited.then(() => reject(new Error(`process exited before ${re} appeared:\n${stdout}\n${stderr}`)));
      }),
    exited,
  };
}

export async function runCliToEnd(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; bin?: string } = {}): Promise<RunResult> {
  return spawnCli(args, opts).exited;
}
