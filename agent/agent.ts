// The one place for lifecycle: subsystems start in order and stop in reverse. The run ends when
// the shutdown signal fires (SIGTERM/SIGINT, /quitquitquit) or when a subsystem ends on its own
// (Envoy exiting), whichever comes first. How the end is asked for — drain first or not — is
// the ShutdownController's business; stopping Envoy (the last subsystem, so the first stopped)
// carries the drain out.
import { scope } from '../lib/log.js';
import type { AgentConfig } from '../config/index.js';
import { errorMessage } from '../lib/errors.js';

const log = scope('default');

export interface Subsystem {
  readonly name: string;
  /** Called in start order; a rejection aborts start-up (already started ones are stopped). */
  start(shutdown: AbortSignal): Promise<void>;
  /** Called in reverse order; must not throw for a subsystem that never started. */
  stop(): Promise<void>;
  /** Resolves if the subsystem ends by itself, which ends the agent (Envoy exiting). */
  readonly done?: Promise<void> | undefined;
  /**
   * Called once every subsystem has started (Envoy spawned): work that can wait until then —
   * loading gRPC and protos, connecting to the CA — runs here, so it never delays Envoy's exec.
   * Must not throw; failures end the agent through `done`.
   */
  afterStart?(): void;
}

/**
 * The agent's shutdown switch, with Istio's three ways to end (pkg/envoy/agent.go, and the
 * handleQuit / handleDrain handlers of pilot/cmd/pilot-agent/status/server.go):
 * - `shutdown(cause)` (also plain `abort(cause)`): SIGTERM/SIGINT — Envoy is drained first;
 * - `requestShutdown(cause)`: `POST /quitquitquit` — no drain, Envoy is killed at once;
 * - `drain()`: `POST /drain` — Envoy's inbound listeners drain now (it keeps running), and the
 *   later SIGTERM then kills Envoy at once.
 * `signal` aborts on any of the first two; its `reason` is the cause readiness reports
 * ("server is terminated: <cause>").
 */
export class ShutdownController extends AbortController {
  #skipDrain = false;
  #drainer: (() => Promise<void>) | undefined;

  /** True after `/quitquitquit` or `/drain`: the shutdown kills Envoy without draining. */
  get skipDrain(): boolean {
    return this.#skipDrain;
  }

  /** SIGTERM semantics: graceful drain, then stop. Later calls change nothing. */
  shutdown(cause: string): void {
    if (!this.signal.aborted) this.abort(cause);
  }

  /** `/quitquitquit` semantics: stop without draining. */
  requestShutdown(cause = '/quitquitquit called'): void {
    this.#skipDrain = true;
    this.shutdown(cause);
  }

  /**
   * `/drain` semantics: `drain_listeners?inboundonly&graceful&skip_exit` now (when Envoy runs),
   * and mark the agent so the coming SIGTERM does not drain again. Never rejects.
   */
  async drain(): Promise<void> {
    if (this.#drainer) await this.#drainer();
    this.#skipDrain = true;
  }

  /** Used by the Envoy subsystem while Envoy runs; `undefined` unregisters. */
  setDrainer(drainer: (() => Promise<void>) | undefined): void {
    this.#drainer = drainer;
  }
}

export class Agent {
  private readonly started: Subsystem[] = [];

  constructor(
    readonly config: AgentConfig,
    private readonly subsystems: readonly Subsystem[],
  ) {}

  /** Starts everything, waits for shutdown or a subsystem's end, stops everything. */
  async run(shutdown: AbortSignal): Promise<void> {
    // Pending promises do not keep Node alive; this timer does, until the run is over.
    const keepAlive = setInterval(() => {}, 1 << 30);
    try {
      for (const s of this.subsystems) {
        if (shutdown.aborted) break;
        await s.start(shutdown);
        this.started.push(s);
      }
      if (!shutdown.aborted) for (const s of this.started) s.afterStart?.();
      const ended = this.started.flatMap((s) => (s.done ? [s.done.then(() => s.name)] : []));
      const aborted = new Promise<string>((resolve) => {
        if (shutdown.aborted) resolve('shutdown');
        else shutdown.addEventListener('abort', () => resolve('shutdown'), { once: true });
      });
      const why = await Promise.race([aborted, ...ended]);
      if (why === 'shutdown') log.info(`Agent draining: ${String(shutdown.reason ?? 'shutdown requested')}`);
      else log.info(`${why} exited; agent shutting down`);
    } finally {
      await this.stopAll();
      clearInterval(keepAlive);
    }
  }

  private async stopAll(): Promise<void> {
    for (const s of this.started.reverse()) {
      try {
        await s.stop();
      } catch (err) {
        log.warn(`failed to stop ${s.name}: ${errorMessage(err)}`);
      }
    }
    this.started.length = 0;
  }
}
