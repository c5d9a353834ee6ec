// Backoff and timers. Istio's infinite retry loops (warm-up, proxyless fetch, file watches) use
// an exponential backoff: 500 ms first, ×1.5, ±50 % randomisation, capped at 60 s. Rotation
// timers can be weeks away, beyond what Node's setTimeout holds (2^31−1 ms ≈ 24.8 days: a
// longer delay overflows and fires at once), so LongTimer chains shorter timeouts and re-reads
// the wall clock at every hop.

export interface BackoffOptions {
  initialMs: number;
  multiplier: number;
  /** ± fraction applied to every interval (0.5 = 50 %) */
  randomization: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = Object.freeze({ initialMs: 500, multiplier: 1.5, randomization: 0.5, maxMs: 60_000 });

export class ExponentialBackoff {
  private current: number;

  constructor(
    private readonly o: BackoffOptions = DEFAULT_BACKOFF,
    private readonly rand: () => number = Math.random,
  ) {
    this.current = o.initialMs;
  }

  /** The next wait (ms), randomised around the current interval, which then grows. */
  next(): number {
    const delta = this.o.randomization * this.current;
    const wait = this.current - delta + this.rand() * 2 * delta;
    this.current = Math.min(this.current * this.o.multiplier, this.o.maxMs);
    return Math.max(0, Math.round(wait));
  }

  reset(): void {
    this.current = this.o.initialMs;
  }
}

/** Resolves after `ms`, or at once (false) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `fn` until it succeeds or `signal` aborts, waiting `backoff.next()` between attempts and
 * reporting each failure. Resolves to the result, or undefined when aborted.
 */
export async function retryUntilSuccess<T>(fn: () => Promise<T>, signal: AbortSignal, onError: (err: unknown, waitMs: number) => void, backoff = new ExponentialBackoff()): Promise<T | undefined> {
  while (!signal.aborted) {
    try {
      return await fn();
    } catch (err) {
      if (signal.aborted) return undefined;
      const wait = backoff.next();
      onError(err, wait);
      if (!(await sleep(wait, signal))) return undefined;
    }
  }
  return undefined;
}

/** setTimeout's largest delay; anything above overflows to an immediate call. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    // Timers never keep the process alive on their own; the agent's run loop does.
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** A one-shot timer for an absolute time any distance ahead. */
export class LongTimer {
  private handle: unknown;
  private at = 0;

  constructor(
    private readonly clock: Clock = systemClock,
    /** Longest single hop; re-checking the wall clock every hop also absorbs clock jumps and suspend. */
    private readonly maxHopMs = MAX_TIMEOUT_MS,
  ) {}

  /** Fires `fn` once at `atMs` (epoch ms), replacing any earlier schedule. */
  schedule(atMs: number, fn: () => void): void {
    this.cancel();
    this.at = atMs;
    const hop = () => {
      const remaining = this.at - this.clock.now();
      if (remaining <= 0) {
        this.handle = undefined;
        fn();
        return;
      }
      this.handle = this.clock.setTimeout(hop, Math.min(remaining, this.maxHopMs));
    };
    // Always asynchronous, even when already due.
    this.handle = this.clock.setTimeout(hop, Math.min(Math.max(0, atMs - this.clock.now()), this.maxHopMs));
  }

  cancel(): void {
    if (this.handle !== undefined) this.clock.clearTimeout(this.handle);
    this.handle = undefined;
  }

  get pending(): boolean {
    return this.handle !== undefined;
  }

  get scheduledAt(): number | undefined {
    return this.handle === undefined ? undefined : this.at;
  }
}

/**
 * Istio's rotation delay (rotateTime in security/pkg/nodeagent/cache/secretcache.go): rotate
 * when `ratio` (± a random jitter up to `jitter`) of the lifetime is left, never before now.
 * `lifetime = expire − created`.
 */
export function rotationDelay(item: { createdTime: number; expireTime: number }, ratio: number, jitter: number, now: number, rand: () => number = Math.random): number {
  const lifetime = item.expireTime - item.createdTime;
  const sign = rand() < 0.5 ? -1 : 1;
  const r = Math.min(1, Math.max(0, ratio + rand() * jitter * sign));
  return Math.max(0, item.expireTime - r * lifetime - now);
}
