// The Envoy child process: exactly one, started once, never restarted (Istio's
// pkg/envoy/proxy.go Run). stdout/stderr are Envoy's own (inherited), stdin is /dev/null, the
// working directory is the agent's (Envoy resolves the relative bootstrap and socket paths
// against it).
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { exitText } from '../lib/exit-text.js';
import { AgentError, errorMessage } from '../lib/errors.js';

export class EnvoyStartError extends AgentError {
  static override readonly code: string = 'ENVOY_START';
}

export interface EnvoyExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Go's exec error text for an exit (`exit status 1`, `signal: killed`); undefined for exit 0. */
export function describeExit(e: EnvoyExit): string | undefined {
  if (e.signal || (e.code !== 0 && e.code !== null)) return exitText(e.code, e.signal);
  return undefined;
}

/**
 * Checks that the binary exists and is executable before anything is written for it, so a bad
 * `binaryPath` is one clear error with nothing left behind. A bare name is looked up on PATH, as
 * Go's exec.Command does.
 */
export async function checkEnvoyBinary(binaryPath: string, pathEnv: string | undefined): Promise<string> {
  const candidates = binaryPath.includes('/')
    ? [binaryPath]
    : (pathEnv ?? '')
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, binaryPath));
  let problem = 'not found';
  for (const file of candidates) {
    try {
      const st = await stat(file);
      if (st.isDirectory()) {
        problem = `is a directory (${file})`;
        continue;
      }
      await access(file, constants.X_OK);
      return file;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES') problem = binaryPath.includes('/') ? 'is not executable' : `is not executable (${file})`;
      else if (code !== 'ENOENT' && code !== 'ENOTDIR') problem = `cannot be used: ${errorMessage(err)}`;
    }
  }
  const where = binaryPath.includes('/') ? '' : ' on PATH';
  throw new EnvoyStartError(`cannot start Envoy: binary ${binaryPath}${where} ${problem} (ProxyConfig binaryPath)`);
}

export interface EnvoySpawnOptions {
  binaryPath: string;
  args: readonly string[];
  env: Readonly<Record<string, string>>;
  /** run Envoy as this uid/gid (the agent runs as root and the DNS proxy binds :53) */
  uid?: number | undefined;
  gid?: number | undefined;
}

export class EnvoyProcess {
  /** Resolves with the exit code or signal once Envoy has exited; never rejects. */
  readonly exited: Promise<EnvoyExit>;
  private exit: EnvoyExit | undefined;
  private readonly killOnAgentExit = () => {
    // The agent is going away without a shutdown (uncaught error, process.exit): never leave
    // an orphaned Envoy behind.
    if (!this.exit) this.child.kill('SIGKILL');
  };

  private constructor(private readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        process.off('exit', this.killOnAgentExit);
        resolve(this.exit);
      });
    });
    process.on('exit', this.killOnAgentExit);
  }

  /** Starts Envoy; rejects with EnvoyStartError when the exec fails (ENOENT, EACCES, ENOEXEC). */
  static start(o: EnvoySpawnOptions): Promise<EnvoyProcess> {
    return new Promise((resolve, reject) => {
      const child = spawn(o.binaryPath, o.args, {
        env: o.env,
        stdio: ['ignore', 'inherit', 'inherit'],
        ...(o.uid !== undefined ? { uid: o.uid } : {}),
        ...(o.gid !== undefined ? { gid: o.gid } : {}),
      });
      let started = false;
      // After the start, errors (a failed kill of an already reaped child) change nothing.
      child.on('error', (err) => {
        if (!started) reject(new EnvoyStartError(`cannot start Envoy: ${o.binaryPath}: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
      });
      child.once('spawn', () => {
        started = true;
        resolve(new EnvoyProcess(child));
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** Istio's "abort": SIGKILL, not SIGTERM — Envoy has already had its drain. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.exit === undefined) this.child.kill(signal);
  }
}
