// Rotation timing (Istio's TestRotateTimeNoJitter / TestRotateTimeWithJitter), the retry
// backoff, and timers far beyond setTimeout's 24.8-day limit.
import t from 'tap';
import { ExponentialBackoff, LongTimer, MAX_TIMEOUT_MS, rotationDelay, type Clock } from '../../../agent/security/index.js';

const H = 3_600_000;
const M = 60_000;

t.test('rotation delay without jitter', async (t) => {
  const now = 1_000_000_000_000;
  const item = (createdOffset: number, lifetime: number) => ({ createdTime: now + createdOffset, expireTime: now + createdOffset + lifetime });
  t.equal(rotationDelay(item(-2 * H, H), 0.5, 0, now), 0, 'expired → 0');
  t.equal(rotationDelay(item(0, H), 0.5, 0, now), 30 * M);
  t.equal(rotationDelay(item(0, H), 0.25, 0, now), 45 * M);
  t.equal(rotationDelay(item(0, H), 0.75, 0, now), 15 * M);
  t.equal(rotationDelay(item(0, H), 1, 0, now), 0, 'ratio 1 rotates at once');
  t.equal(rotationDelay(item(0, H), 0, 0, now), H, 'ratio 0 waits for the whole lifetime');
  t.equal(rotationDelay(item(30 * M, H), 0.25, 0, now), 75 * M, 'created in the future');
});

t.test('rotation delay with jitter stays within bounds (1000 samples)', async (t) => {
  const now = 0;
  const it = { createdTime: 0, expireTime: H };
  for (const [ratio, jitter, min, max] of [
    [1, 0.5, 0, 30 * M],
    [0.5, 0.5, 0, 60 * M],
    [0, 0.5, 30 * M, 60 * M],
  ] as const) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < 1000; i++) {
      const d = rotationDelay(it, ratio, jitter, now);
      lo = Math.min(lo, d);
      hi = Math.max(hi, d);
    }
    t.ok(lo >= min && hi <= max, `ratio ${ratio} jitter ${jitter}: [${lo / M}, ${hi / M}] min within [${min / M}, ${max / M}]`);
  }
});

t.test('exponential backoff: 500 ms ×1.5 ±50 %, capped at 60 s', async (t) => {
  const mid = new ExponentialBackoff(undefined, () => 0.5);
  t.same([mid.next(), mid.next(), mid.next()], [500, 750, 1125]);
  for (let i = 0; i < 30; i++) mid.next();
  t.equal(mid.next(), 60_000);
  const low = new ExponentialBackoff(undefined, () => 0);
  t.equal(low.next(), 250);
  const high = new ExponentialBackoff(undefined, () => 0.999999);
  t.equal(high.next(), 750);
});

/** A fake clock: timers fire when the test advances time. */
function fakeClock() {
  let now = 0;
  const timers: { at: number; fn: () => void; id: number }[] = [];
  let ids = 0;
  const delays: number[] = [];
  const clock: Clock = {
    now: () => now,
    setTimeout: (fn, ms) => {
      if (ms > MAX_TIMEOUT_MS) throw new Error(`setTimeout(${ms}) would overflow`);
      delays.push(ms);
      const id = ++ids;
      timers.push({ at: now + ms, fn, id });
      return id;
    },
    clearTimeout: (h) => {
      const i = timers.findIndex((x) => x.id === h);
      if (i >= 0) timers.splice(i, 1);
    },
  };
  const advance = (ms: number) => {
    const end = now + ms;
    for (;;) {
      timers.sort((a, b) => a.at - b.at);
      const next = timers[0];
      if (!next || next.at > end) break;
      timers.shift();
      now = next.at;
      next.fn();
    }
    now = end;
  };
  return { clock, advance, delays, pending: () => timers.length };
}

t.test('LongTimer fires once at the right time, 90 days ahead, never overflowing setTimeout', async (t) => {
  const { clock, advance, delays } = fakeClock();
  const timer = new LongTimer(clock);
  let fired = 0;
  const at = 90 * 24 * H;
  timer.schedule(at, () => fired++);
  t.equal(timer.scheduledAt, at);
  advance(at - 1);
  t.equal(fired, 0, 'not before its time');
  advance(1);
  t.equal(fired, 1, 'fires at its time');
  advance(365 * 24 * H);
  t.equal(fired, 1, 'exactly once');
  t.ok(
    delays.every((d) => d <= MAX_TIMEOUT_MS),
    'every hop fits in a setTimeout',
  );
  t.ok(delays.length >= 4, `chained over ${delays.length} hops`);
});

t.test('LongTimer: reschedule and cancel', async (t) => {
  const { clock, advance, pending } = fakeClock();
  const timer = new LongTimer(clock);
  let a = 0;
  let b = 0;
  timer.schedule(50 * 24 * H, () => a++);
  timer.schedule(10, () => b++);
  advance(100 * 24 * H);
  t.same([a, b], [0, 1], 'rescheduling replaces the earlier schedule');
  timer.schedule(1000, () => a++);
  timer.cancel();
  advance(2000);
  t.equal(a, 0);
  t.equal(pending(), 0);
});

t.test('LongTimer with the real clock: a delay past 2^31 ms does not fire at once', async (t) => {
  const timer = new LongTimer();
  let fired = false;
  timer.schedule(Date.now() + 60 * 24 * H, () => (fired = true));
  await new Promise((r) => setTimeout(r, 50));
  t.notOk(fired, 'Node would have fired an overflowing setTimeout immediately');
  timer.cancel();
});
