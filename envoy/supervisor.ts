// Supervision of the one Envoy process (Istio's pkg/envoy/agent.go): Envoy exiting on its own is
// logged and ends the agent; termination drains Envoy's inbound listeners gracefully, waits (a
// fixed period, or until no connections remain), then kills it. A generated bootstrap is deleted
// whenever Envoy is gone, however it went.
import { scope } from '../lib/log.js';
import { formatGoDuration } from '../lib/goparse.js';
import { activeProxyConnections, drainListeners } from './admin.js';
import { describeExit, EnvoyProcess, type EnvoyExit, type EnvoySpawnOptions } from './process.js';
import { errorMessage } from '../lib/errors.js';

const log = scope('default');

export interface DrainOptions {
  adminPort: number;
  /** `127.0.0.1`, or `::1` for IPv6-only proxies: where the connection count is read */
  localhost: string;
  /** sidecars drain inbound listeners only */
  inboundOnly: boolean;
  /** ProxyConfig terminationDrainDuration, ms */
  terminationDrainDurationMs: number;
  /** MINIMUM_DRAIN_DURATION, ms */
  minDrainDurationMs: number;
  /** EXIT_ON_ZERO_ACTIVE_CONNECTIONS */
  exitOnZeroActiveConnections: boolean;
  /** stat names of Istio's own listeners, left out of the connection count */
  knownListeners: ReadonlySet<string>;
  /** how often the connection count is read (Istio: 1 s) */
  pollIntervalMs?: number;
}

export interface SupervisorOptions extends EnvoySpawnOptions, DrainOptions {
  /** runs once after Envoy has gone (or failed to start), before `exited` resolves */
  cleanup?: () => Promise<void> | void;
}

const MAX_STATS_RETRIES = 5;
const DRAIN_POST_LIMIT_MS = 10_000;

type Outcome = 'elapsed' | 'exited';

export class EnvoySupervisor {
  /** Resolves when Envoy has gone and the cleanup has run. */
  readonly exited: Promise<EnvoyExit>;
  private terminating: Promise<void> | undefined;
  private exit: EnvoyExit | undefined;
  /** callbacks for Envoy's exit; one set, so a long connection-count wait does not pile them up */
  private readonly exitWaiters = new Set<() => void>();

  private constructor(
    private readonly proc: EnvoyProcess,
    private readonly o: SupervisorOptions,
  ) {
    void proc.exited.then(() => {
      for (const w of this.exitWaiters) w();
      this.exitWaiters.clear();
    });
    this.exited = proc.exited.then(async (e) => {
      await runCleanup(o.cleanup);
      this.exit = e;
      if (!this.terminating) {
        // Envoy ended by itself: Istio logs it and the agent exits (with status 0).
        const err = describeExit(e);
        if (err) {
          if (err === 'signal: killed') log.warn('Envoy may have been out of memory killed. Check memory usage and limits.');
          log.error(`Envoy exited with error: ${err}`);
        } else {
          log.info('Envoy exited normally');
        }
      }
      return e;
    });
  }

  /** Spawns Envoy. A failed start runs the cleanup and rejects with EnvoyStartError. */
  static async start(o: SupervisorOptions): Promise<EnvoySupervisor> {
    let proc: EnvoyProcess;
    try {
      proc = await EnvoyProcess.start(o);
    } catch (err) {
      await runCleanup(o.cleanup);
      throw err;
    }
    return new EnvoySupervisor(proc, o);
  }

  get pid(): number {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.exit === undefined && this.proc.running;
  }

  /**
   * `/drain` (Istio's DrainNow): drain inbound listeners without letting Envoy exit after the
   * drain period. The caller marks the agent so a later shutdown skips its own drain.
   */
  async drainNow(): Promise<void> {
    log.info('Agent draining proxy');
    try {
      await drainListeners(this.o.adminPort, this.o.inboundOnly, true);
    } catch (err) {
      log.warn(`Error in invoking drain listeners endpoint: ${errorMessage(err)}`);
    }
  }

  /** Kills Envoy now (SIGKILL) and waits until it has gone. */
  async abort(): Promise<void> {
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  /**
   * The shutdown sequence: drain, wait, kill. With `skipDrain` (after `/quitquitquit` or
   * `/drain`) Envoy is killed at once. Safe to call more than once.
   */
  terminate(skipDrain: boolean): Promise<void> {
    this.terminating ??= this.runTermination(skipDrain);
    return this.terminating;
  }

  private async runTermination(skipDrain: boolean): Promise<void> {
    if (!this.proc.running) {
      await this.exited;
      return;
    }
    log.info('Agent draining Proxy for termination');
    if (skipDrain) {
      log.info('Agent already drained, exiting immediately');
      await this.abort();
      return;
    }
    const o = this.o;
    const drain = drainListeners(o.adminPort, o.inboundOnly, false).then(
      () => undefined,
      (err: Error) => log.warn(`Error in invoking drain listeners endpoint: ${err.message}`),
    );
    // Istio waits for the POST without a limit, so a hung admin API holds the pod until the
    // kubelet's SIGKILL. Here the wait for the answer is bounded; the drain period starts when
    // the answer is in (or the bound is reached), never earlier, as in Istio.
    const postLimit = Math.max(DRAIN_POST_LIMIT_MS, o.exitOnZeroActiveConnections ? o.minDrainDurationMs : o.terminationDrainDurationMs);
    if ((await this.race(drain, postLimit)) === 'exited') return this.endedEarly();

    if (o.exitOnZeroActiveConnections) {
      await this.drainUntilNoConnections();
    } else {
      log.info(`Graceful termination period is ${formatGoDuration(o.terminationDrainDurationMs)}, starting...`);
      if ((await this.race(undefined, o.terminationDrainDurationMs)) === 'exited') return this.endedEarly();
      log.info('Graceful termination period complete, terminating remaining proxies.');
    }
    if (!this.proc.running) return this.endedEarly();
    await this.abort();
    log.info('Envoy aborted normally');
    log.warn('Aborted proxy instance');
  }

  private async drainUntilNoConnections(): Promise<void> {
    const o = this.o;
    log.info(`Agent draining proxy for ${formatGoDuration(o.minDrainDurationMs)}, then waiting for active connections to terminate...`);
    if ((await this.race(undefined, o.minDrainDurationMs)) === 'exited') return;
    log.info('Checking for active connections...');
    const admin = { host: o.localhost, port: o.adminPort };
    let retries = 0;
    for (;;) {
      if ((await this.race(undefined, o.pollIntervalMs ?? 1000)) === 'exited') return;
      let count: number;
      try {
        const ac = await activeProxyConnections(admin, o.knownListeners);
        for (const line of ac.skipped) log.warn(`envoy stat line could not be parsed. line:${line}`);
        count = ac.count;
      } catch (err) {
        if (!this.proc.running) return;
        log.error(errorMessage(err));
        retries++;
        if (retries >= MAX_STATS_RETRIES) {
          log.warn(`Graceful termination logic ended prematurely, error while obtaining downstream_cx_active stat (Max retry ${retries} exceeded)`);
          return;
        }
        log.warn(`Retrying (${retries} attempt) to obtain active connections...`);
        continue;
      }
      if (!this.proc.running) return;
      if (count === -1) {
        log.info('downstream_cx_active are not available. This either means there are no downstream connection established yet or the stats are not enabled. Skipping active connections check...');
        return;
      }
      if (count === 0) {
        log.info('There are no more active connections. terminating proxy...');
        return;
      }
      log.info(`There are still ${count} active connections`);
      retries = 0;
    }
  }

  private async endedEarly(): Promise<void> {
    const e = await this.exited;
    log.info(`Envoy exited with status ${describeExit(e) ?? 'exit status 0'}`);
    log.info('Graceful termination logic ended prematurely, envoy process terminated early');
  }

  /** Waits for `work` (when given) or `ms`, whichever first, unless Envoy exits before either. */
  private race(work: Promise<unknown> | undefined, ms: number): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      if (!this.proc.running) return resolve('exited');
      const done = (r: Outcome) => {
        clearTimeout(timer);
        this.exitWaiters.delete(onExit);
        resolve(r);
      };
      const onExit = () => done('exited');
      const timer = setTimeout(() => done('elapsed'), Math.max(0, ms));
      this.exitWaiters.add(onExit);
      if (work) void work.then(() => done('elapsed'));
    });
  }
}

async function runCleanup(cleanup: (() => Promise<void> | void) | undefined): Promise<void> {
  if (!cleanup) return;
  try {
    await cleanup();
  } catch (err) {
    log.warn(errorMessage(err));
  }
}
