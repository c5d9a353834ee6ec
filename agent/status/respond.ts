// Every status-server answer goes through here (spec agent.md §7): `Vary: Accept-Encoding`, and
// gzip or zstd when the client accepts it and the body reaches 1 KiB — decided the way Go's
// gzhttp wrapper decides, by holding back the first KiB, so streamed bodies (the merged metrics)
// need not be known in advance. Writes honour backpressure: a slow client slows the sources down
// instead of growing buffers.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import * as zlib from 'node:zlib';
import { negotiateEncoding, type ContentEncoding } from './negotiate.js';

/** gzhttp's default minimum size: smaller bodies are sent as they are. */
export const MIN_COMPRESS_BYTES = 1024;

type ZstdZlib = typeof zlib & { createZstdCompress?: (o?: object) => zlib.Gzip };
const zstdCompress = (zlib as ZstdZlib).createZstdCompress;
/** zlib has zstd from Node 22.15 / 23.8; on older Node only gzip is offered. */
export const ZSTD_AVAILABLE = typeof zstdCompress === 'function';

// Types that are already compressed (gzhttp's default filter); everything else is compressed.
const INCOMPRESSIBLE = /^(image\/(?!svg)|video\/|audio\/|application\/(zip|gzip|x-gzip|zstd|octet-stream|x-7z|x-rar|pdf|wasm))/i;

/**
 * A writable body for one response. Headers are sent when the first KiB has arrived or the body
 * ends, whichever is first; `Content-Length` is set for bodies that end before that.
 */
export class ResponseBody extends Writable {
  #held: Buffer[] = [];
  #heldBytes = 0;
  #target: Writable | undefined;
  readonly #encoding: ContentEncoding | undefined;

  constructor(
    req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly status: number,
    private readonly headers: OutgoingHttpHeaders = {},
  ) {
    super({ highWaterMark: 64 * 1024 });
    const type = String(headers['Content-Type'] ?? headers['content-type'] ?? '');
    const enc = negotiateEncoding(req.headers['accept-encoding'], ZSTD_AVAILABLE);
    this.#encoding = enc && !INCOMPRESSIBLE.test(type) && req.method !== 'HEAD' ? enc : undefined;
  }

  /** Whether the client went away (the response can no longer be written). */
  get gone(): boolean {
    return this.res.destroyed && !this.res.writableFinished;
  }

  #open(compress: boolean): Writable {
    const headers: OutgoingHttpHeaders = { ...this.headers, Vary: 'Accept-Encoding' };
    if (!compress) {
      this.res.writeHead(this.status, headers);
      return this.res;
    }
    headers['Content-Encoding'] = this.#encoding;
    this.res.writeHead(this.status, headers);
    // Level 1: metrics text compresses to ~10 % even so, and a 10 MB scrape costs a fraction of
    // the CPU of zlib's default level — this runs in the sidecar, on every scrape.
    const z = this.#encoding === 'zstd' ? zstdCompress!({}) : zlib.createGzip({ level: 1 });
    z.pipe(this.res);
    z.on('error', () => this.res.destroy());
    return z;
  }

  #forward(chunk: Buffer, cb: (err?: Error | null) => void): void {
    const t = this.#target!;
    if (this.res.destroyed) return cb(new Error('client went away'));
    if (t.write(chunk)) return cb();
    const onDrain = () => {
      this.res.off('close', onClose);
      cb();
    };
    const onClose = () => {
      t.off('drain', onDrain);
      cb(new Error('client went away'));
    };
    t.once('drain', onDrain);
    this.res.once('close', onClose);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#target) return this.#forward(chunk, cb);
    this.#held.push(chunk);
    this.#heldBytes += chunk.length;
    if (this.#heldBytes < MIN_COMPRESS_BYTES) return cb();
    this.#target = this.#open(this.#encoding !== undefined);
    const held = Buffer.concat(this.#held);
    this.#held = [];
    this.#forward(held, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.#target) {
      const body = Buffer.concat(this.#held);
      this.#held = [];
      this.res.writeHead(this.status, { ...this.headers, Vary: 'Accept-Encoding', 'Content-Length': body.length });
      this.res.end(body);
    } else if (this.#target !== this.res) {
      this.#target.end();
    } else {
      this.res.end();
    }
    if (this.res.writableFinished || this.res.destroyed) return cb();
    const done = () => cb();
    this.res.once('finish', done);
    this.res.once('close', done);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (err && !this.res.writableFinished) this.res.destroy();
    cb(err);
  }
}

/** Sends a whole (small) body through the compression rules. */
export function respond(req: IncomingMessage, res: ServerResponse, status: number, body: string | Buffer = '', headers: OutgoingHttpHeaders = {}): void {
  const b = new ResponseBody(req, res, status, headers);
  b.on('error', () => {});
  b.end(body);
}

/** Go's http.Error: plain text, `nosniff`, the message and a newline. */
export function respondError(req: IncomingMessage, res: ServerResponse, status: number, message: string): void {
  respond(req, res, status, `${message}\n`, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
}
