// One GET to a metrics source (Envoy's `/stats/prometheus`, an application's endpoint), read
// into a small fixed set of reused 64 KiB buffers. Node's HTTP client allocates a fresh buffer for
// every socket read, and V8 frees those only when it next collects garbage — during a 10 MB scrape
// tens of megabytes of dead buffers pile up first. Here reads land in the same few buffers; body
// slices are handed on at once, a buffer is reused once the consumer is done with every slice
// of it, and reading pauses while four are in use — so a scrape costs the agent a fixed 320 KiB
// per source however large the source's body is, and reading overlaps writing.
//
// HTTP/1.1 response framing only as far as a GET needs it: status line, headers, then a body by
// Content-Length, chunked transfer coding, or up to the end of the connection.
import { connect } from 'node:net';
import { AgentError, errorMessage } from '../../lib/errors.js';

const READ_BUFFER_BYTES = 64 * 1024;
const READ_BUFFERS = 4;
const MAX_HEAD_BYTES = 64 * 1024;

export class SourceError extends AgentError {
  static override readonly code: string = 'STATUS_SOURCE';
}

/** A body chunk goes to the sink; the sink calls `done` once it no longer needs the bytes. */
export type BodySink = (chunk: Buffer, done: () => void) => void;

export interface SourceResponse {
  status: number;
  /** response headers, names lower-cased */
  headers: Record<string, string>;
  /**
   * Streams the body to `sink`, one chunk at a time. Resolves true at the end of the body, false
   * if the connection failed or closed before it (the chunks sent so far stay sent).
   */
  pipe(sink: BodySink): Promise<boolean>;
  /** The whole body, copied (at most `cap` bytes, else SourceError). */
  readAll(cap: number): Promise<Buffer>;
  destroy(): void;
}

type Framing = { kind: 'length'; remaining: number } | { kind: 'chunked'; state: 'size' | 'data' | 'data-end' | 'trailer'; remaining: number; line: string } | { kind: 'close' };

/**
 * Splits raw body bytes into payload slices per the framing; returns the slices (views into
 * `data`) and whether the body is complete. Pure apart from advancing `f`.
 */
export function decodeBody(f: Framing, data: Buffer): { slices: Buffer[]; complete: boolean } {
  const slices: Buffer[] = [];
  if (f.kind === 'close') return { slices: data.length > 0 ? [data] : [], complete: false };
  if (f.kind === 'length') {
    const n = Math.min(f.remaining, data.length);
    if (n > 0) slices.push(data.subarray(0, n));
    f.remaining -= n;
    return { slices, complete: f.remaining === 0 };
  }
  let i = 0;
  while (i < data.length) {
    switch (f.state) {
      case 'size':
      case 'trailer': {
        const nl = data.indexOf(0x0a, i);
        const end = nl < 0 ? data.length : nl;
        f.line += data.toString('latin1', i, end);
        if (f.line.length > 4096) throw new SourceError('malformed chunked encoding: line too long');
        i = end;
        if (nl < 0) break;
        i++;
        const line = f.line.replace(/\r$/, '');
        f.line = '';
        if (f.state === 'trailer') {
          if (line === '') return { slices, complete: true };
          break;
        }
        const size = parseInt(line.split(';')[0]!.trim(), 16);
        if (!Number.isFinite(size) || size < 0 || !/^[0-9a-fA-F]+$/.test(line.split(';')[0]!.trim())) throw new SourceError(`malformed chunked encoding: chunk size ${JSON.stringify(line)}`);
        if (size === 0) f.state = 'trailer';
        else {
          f.state = 'data';
          f.remaining = size;
        }
        break;
      }
      case 'data': {
        const n = Math.min(f.remaining, data.length - i);
        slices.push(data.subarray(i, i + n));
        f.remaining -= n;
        i += n;
        if (f.remaining === 0) f.state = 'data-end';
        break;
      }
      case 'data-end': {
        // The CRLF after a chunk's data.
        const c = data[i]!;
        i++;
        if (c === 0x0a) f.state = 'size';
        else if (c !== 0x0d) throw new SourceError('malformed chunked encoding: no CRLF after chunk data');
        break;
      }
    }
  }
  return { slices, complete: false };
}

interface Head {
  status: number;
  headers: Record<string, string>;
}

function parseHead(text: string): Head {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (!m) throw new SourceError(`malformed HTTP response: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i <= 0) continue;
    const k = l.slice(0, i).trim().toLowerCase();
    const v = l.slice(i + 1).trim();
    headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
  }
  return { status: Number(m[1]), headers };
}

function framingOf(h: Head): Framing {
  if (/\bchunked\b/i.test(h.headers['transfer-encoding'] ?? '')) return { kind: 'chunked', state: 'size', remaining: 0, line: '' };
  const len = h.headers['content-length'];
  if (len !== undefined) {
    if (!/^\d+$/.test(len)) throw new SourceError(`malformed Content-Length ${JSON.stringify(len)}`);
    return { kind: 'length', remaining: Number(len) };
  }
  if (h.status === 204 || h.status === 304) return { kind: 'length', remaining: 0 };
  return { kind: 'close' };
}

const clean = (v: string) => v.replace(/[\r\n]/g, '');

/**
 * GET http://localhost:<port><path> — every address `localhost` has, as Go dials it. Resolves once
 * the response head is in; the body waits (the socket paused) until `pipe` or `readAll`.
 */
export function getSource(port: number | string, path: string, headers: Record<string, string>, signal: AbortSignal): Promise<SourceResponse> {
  const url = `http://localhost:${port}${path}`;
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new SourceError(`error scraping ${url}: ${String(signal.reason)}`));
    // Node reads into the buffer the generator last returned, and asks for the next one right
    // after each read: reading pauses once READ_BUFFERS hold body bytes not yet consumed, so at
    // most READ_BUFFERS + 1 buffers ever exist.
    const free: Buffer[] = [];
    let inUse = 0;
    const take = () => free.pop() ?? Buffer.allocUnsafe(READ_BUFFER_BYTES);
    let paused = false;
    let head: Buffer[] = [];
    let headBytes = 0;
    let phase: 'head' | 'body' | 'done' = 'head';
    let framing: Framing = { kind: 'close' };
    let early: Buffer | undefined; // body bytes that came with the head, copied
    let sink: BodySink | undefined;
    let finish: ((ok: boolean) => void) | undefined;
    let failed: string | undefined;

    const end = (ok: boolean) => {
      if (phase === 'done') return;
      phase = 'done';
      socket.destroy();
      finish?.(ok);
    };
    const fail = (why: string) => {
      failed = why;
      if (phase === 'head') {
        phase = 'done';
        socket.destroy();
        reject(new SourceError(`error scraping ${url}: ${why}`));
      } else end(false);
    };
    /** A read buffer is free again: reading resumes if it had stopped for want of one. */
    const release = (buf: Buffer | undefined) => {
      if (buf) {
        inUse--;
        free.push(buf);
      }
      if (paused && inUse < READ_BUFFERS && phase === 'body' && sink) {
        paused = false;
        socket.resume();
      }
    };

    /**
     * Hands the body slices in `data` to the sink, all at once (the sink keeps their order);
     * `buf` is released when the sink is done with every one. Ends the body when complete.
     */
    const deliver = (data: Buffer, buf: Buffer | undefined): void => {
      let decoded: { slices: Buffer[]; complete: boolean };
      try {
        decoded = decodeBody(framing, data);
      } catch (err) {
        fail(errorMessage(err));
        return;
      }
      let pending = decoded.slices.length + 1;
      const done = () => {
        if (--pending === 0) release(buf);
      };
      for (const slice of decoded.slices) {
        if (phase === 'done') break;
        sink!(slice, done);
      }
      done();
      if (decoded.complete) end(true);
    };

    const start = (s: BodySink, res: (ok: boolean) => void) => {
      if (failed !== undefined || phase === 'done') return res(false);
      sink = s;
      finish = res;
      const first = early!;
      early = undefined;
      deliver(first, undefined);
      release(undefined);
    };

    const onread = (nread: number, buf: Buffer): boolean => {
      if (phase === 'done') return false;
      const data = buf.subarray(0, nread);
      if (phase === 'body') {
        inUse++;
        deliver(data, buf);
        // Enough unconsumed: stop reading until a buffer comes back.
        paused = inUse >= READ_BUFFERS;
        return !paused;
      }
      // The head, copied until its end is seen; the read buffer goes straight back.
      head.push(Buffer.from(data));
      free.push(buf);
      headBytes += nread;
      const all = head.length === 1 ? head[0]! : Buffer.concat(head);
      head = [all];
      const at = all.indexOf('\r\n\r\n');
      if (at < 0) {
        if (headBytes > MAX_HEAD_BYTES) fail('response head too large');
        return true;
      }
      let h: Head;
      try {
        h = parseHead(all.toString('latin1', 0, at));
        framing = framingOf(h);
      } catch (err) {
        fail(errorMessage(err));
        return false;
      }
      head = [];
      if (h.status !== 200) {
        fail(`status code: ${h.status}`);
        return false;
      }
      phase = 'body';
      early = all.subarray(at + 4);
      resolve({
        status: h.status,
        headers: h.headers,
        pipe: (s) => new Promise<boolean>((res) => start(s, res)),
        readAll: async (cap) => {
          const chunks: Buffer[] = [];
          let size = 0;
          let over = false;
          const ok = await new Promise<boolean>((res) =>
            start((c, done) => {
              size += c.length;
              if (size > cap) {
                over = true;
                end(false);
                return;
              }
              chunks.push(Buffer.from(c));
              done();
            }, res),
          );
          if (over) throw new SourceError(`error scraping ${url}: body exceeds ${cap} bytes`);
          if (!ok) throw new SourceError(`error scraping ${url}: ${failed ?? 'connection closed before the end of the body'}`);
          return Buffer.concat(chunks);
        },
        destroy: () => end(false),
      });
      // Until the consumer asks for the body, nothing more is read.
      paused = true;
      return false;
    };

    const socket = connect({ host: 'localhost', port: Number(port), onread: { buffer: take, callback: onread } });
    socket.once('connect', () => {
      const lines = [`GET ${path} HTTP/1.1`, `Host: localhost:${port}`, ...Object.entries(headers).map(([k, v]) => `${clean(k)}: ${clean(v)}`), 'Connection: close', '', ''];
      socket.write(lines.join('\r\n'));
    });
    socket.once('error', (err: Error & { code?: string }) => fail(err.code ?? err.message));
    socket.once('end', () => {
      if (phase === 'body' && framing.kind === 'close' && !early) end(true);
      else if (phase !== 'done') fail('connection closed before the end of the response');
    });
    socket.once('close', () => {
      if (phase !== 'done') fail('connection closed before the end of the response');
    });
    const onAbort = () => fail(String(signal.reason ?? 'aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('close', () => signal.removeEventListener('abort', onAbort));
  });
}
