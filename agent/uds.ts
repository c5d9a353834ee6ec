// Unix-socket listeners for the agent's gRPC servers (SDS, XDS), bound before gRPC is loaded.
//
// Istio's agent starts SDS and the XDS proxy before Envoy so the sockets exist when Envoy first
// dials them; a missing socket costs Envoy a reconnect backoff. Loading @grpc/grpc-js and Envoy's
// protos takes ~100 ms of Node start-up, which would otherwise delay Envoy's exec by as much.
// Here the socket is bound at once (microseconds, no gRPC), Envoy starts, and connections that
// arrive before the gRPC server is ready wait in this listener; once it is ready they are handed
// to it through grpc-js's connection injector, with nothing lost (HTTP/2 bytes stay buffered in
// the socket).
//
// Path handling is Istio's pkg/uds: remove a stale file (an error other than "not found" fails),
// `mkdir -p` the parent with 0750 (a failure is only a warning), listen, chmod the socket 0666.
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Duplex } from 'node:stream';
import { scope } from '../lib/log.js';

const log = scope('default');

/** What grpc-js's Server.createConnectionInjector() returns (the part we use). */
export interface ConnectionSink {
  injectConnection(connection: Duplex): void;
}

export class UdsListener {
  private sink: ConnectionSink | undefined;
  private readonly pending = new Set<Socket>();
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly server: Server,
  ) {
    server.on('connection', (sock) => this.accept(sock));
  }

  /** Binds `path` now; connections wait until attach(). */
  static async listen(path: string): Promise<UdsListener> {
    try {
      await unlink(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`failed to remove unix://${path}: ${(err as Error).message}`);
    }
    try {
      await mkdir(dirname(path), { recursive: true, mode: 0o750 });
    } catch (err) {
      log.warn(`failed to create directory for ${path}: ${(err as Error).message}`);
    }
    const server = createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await chmod(path, 0o666);
    return new UdsListener(path, server);
  }

  private accept(sock: Socket): void {
    if (this.sink) {
      sock.resume();
      this.sink.injectConnection(sock);
      return;
    }
    // Paused (pauseOnConnect): the client's bytes stay in the socket until the server is ready.
    this.pending.add(sock);
    sock.once('close', () => this.pending.delete(sock));
  }

  /** Hands every waiting and future connection to the gRPC server behind `sink`. */
  attach(sink: ConnectionSink): void {
    if (this.closed) return;
    this.sink = sink;
    for (const sock of this.pending) {
      this.pending.delete(sock);
      if (sock.destroyed) continue;
      sock.resume();
      sink.injectConnection(sock);
    }
  }

  /** Number of connections waiting for attach() (for tests and logs). */
  get waiting(): number {
    return this.pending.size;
  }

  /** Stops accepting, drops waiting connections and removes the socket file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const sock of this.pending) sock.destroy();
    this.pending.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      await unlink(this.path);
    } catch {
      // net.Server removes its socket file itself; nothing to do
    }
  }
}
