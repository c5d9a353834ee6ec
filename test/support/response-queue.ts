// Responses of a test client's gRPC stream, awaited one by one: `next()` resolves with the next
// response (queued or still to come) or rejects after a timeout or when the stream ends first;
// `nothingWithin()` checks that none comes. Shared by the SDS and ADS test clients.

export interface StreamEnd {
  code: number;
  details: string;
}

export class ResponseQueue<R> {
  private readonly queue: R[] = [];
  private waiters: ((r: R) => void)[] = [];
  private endedWith: StreamEnd | undefined;

  /** `what` names the responses in errors (e.g. "SDS response"); `ended` settles when the stream ends. */
  constructor(
    private readonly what: string,
    private readonly ended: Promise<StreamEnd>,
  ) {
    void ended.then((e) => (this.endedWith = e));
  }

  push(r: R): void {
    const w = this.waiters.shift();
    if (w) w(r);
    else this.queue.push(r);
  }

  /** The next response, or a rejection after `timeoutMs` or when the stream ends first. */
  next(timeoutMs = 10_000): Promise<R> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== got);
        reject(new Error(`no ${this.what} within ${timeoutMs} ms${this.endedWith ? ` (stream ended: ${JSON.stringify(this.endedWith)})` : ''}`));
      }, timeoutMs);
      const got = (r: R) => {
        clearTimeout(t);
        resolve(r);
      };
      this.waiters.push(got);
      void this.ended.then((e) => {
        if (this.waiters.includes(got)) {
          clearTimeout(t);
          this.waiters = this.waiters.filter((w) => w !== got);
          reject(new Error(`stream ended before a response: ${JSON.stringify(e)}`));
        }
      });
    });
  }

  /** Resolves true when no response arrives within `ms`. */
  async nothingWithin(ms: number): Promise<boolean> {
    if (this.queue.length) return false;
    try {
      await this.next(ms);
      return false;
    } catch {
      return true;
    }
  }
}
