// Every status-server answer goes through here (Istio wraps its status mux in gzhttp, in
// pilot/cmd/pilot-agent/status/server.go Run): `Vary: Accept-Encoding`, and gzip or zstd when
// the client accepts it and the body reaches 1 KiB — decided the way Go's gzhttp wrapper
// decides, by holding back the first KiB, so streamed bodies (the merged metrics) need not be
// known in advance. Writes report backpressure: a slow client slows the sources down instead of
// growing buffers.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
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
 * The body of one response. Headers are sent when the first KiB has arrived or the body ends,
 * whichever is first; `Content-Length` is set for bodies that end before that. `write` returns
 * false when the client is behind, and `drain` follows, as for a stream — but without a stream of
 * its own in between: chunks go straight to the socket (or the compressor), which matters for
 * a 10 MB scrape.
 */
export class ResponseBody extends EventEmitter {
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
    super();
    const type = String(headers['Content-Type'] ?? headers['content-type'] ?? '');
    const enc = negotiateEncoding(req.headers['accept-encoding'], ZSTD_AVAILABLE);
    this.#encoding = enc && !INCOMPRESSIBLE.test(type) && req.method !== 'HEAD' ? enc : undefined;
  }

  #open(compress: boolean): Writable {
    const headers: OutgoingHttpHeaders = { ...this.headers, Vary: 'Accept-Encoding' };
    let target: Writable = this.res;
    if (compress) {
      headers['Content-Encoding'] = this.#encoding;
      // Level 1: metrics text compresses to ~10 % even so, and a 10 MB scrape costs a fraction of
      // the CPU of zlib's default level — this runs in the sidecar, on every scrape.
      const z = this.#encoding === 'zstd' ? zstdCompress!({}) : zlib.createGzip({ level: 1 });
      z.pipe(this.res);
      z.on('error', () => this.res.destroy());
      target = z;
    }
    this.res.writeHead(this.status, headers);
    target.on('drain', () => this.emit('drain'));
    this.#target = target;
    return target;
  }

  /**
   * Queues a chunk; false when the client is behind (wait for `drain`). `flushed` is called once
   * the chunk's bytes are no longer needed — handed to the socket, or copied — so a caller that
   * reuses its buffer waits for it.
   */
  write(chunk: Buffer | string, flushed?: () => void): boolean {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const done = flushed ? () => flushed() : undefined;
    if (this.#target) return this.res.destroyed ? false : this.#target.write(b, done);
    this.#held.push(Buffer.from(b));
    this.#heldBytes += b.length;
    if (this.#heldBytes < MIN_COMPRESS_BYTES) {
      done?.();
      return true;
    }
    const target = this.#open(this.#encoding !== undefined);
    const held = Buffer.concat(this.#held);
    this.#held = [];
    const ok = target.write(held);
    done?.();
    return ok;
  }

  /** Ends the body (the response is complete once the socket has it). */
  end(chunk?: Buffer | string): void {
    if (chunk !== undefined && chunk.length > 0) this.write(chunk);
    if (this.#target) {
      this.#target.end();
      return;
    }
    const body = Buffer.concat(this.#held);
    this.#held = [];
    this.res.writeHead(this.status, { ...this.headers, Vary: 'Accept-Encoding', 'Content-Length': body.length });
    this.res.end(body);
  }

  /** Abandons the response (the client went away or a source failed fatally). */
  destroy(): void {
    this.#target?.destroy();
    this.res.destroy();
  }
}

/** Sends a whole (small) body through the compression rules. */
export function respond(req: IncomingMessage, res: ServerResponse, status: number, body: string | Buffer = '', headers: OutgoingHttpHeaders = {}): void {
  new ResponseBody(req, res, status, headers).end(body);
}

/** Go's http.Error: plain text, `nosniff`, the message and a newline. */
export function respondError(req: IncomingMessage, res: ServerResponse, status: number, message: string): void {
  respond(req, res, status, `${message}\n`, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
}
