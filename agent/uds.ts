// Unix sockets of the agent's gRPC servers (SDS, XDS): listeners bound before gRPC is loaded, the
// "bind early, serve after Envoy starts" lifecycle both servers share, and the probe that tells a
// live socket from a stale file.
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
import { statSync } from 'node:fs';
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Duplex } from 'node:stream';
import { AgentError, errnoCode, errorMessage } from '../lib/errors.js';
import { scope, type Scope } from '../lib/log.js';

const log = scope('default');

/** A socket path that cannot be taken over. */
export class SocketError extends AgentError {
  static override readonly code: string = 'UDS_SOCKET';
}

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
      if (errnoCode(err) !== 'ENOENT') throw new SocketError(`failed to remove unix://${path}`, { cause: err });
    }
    try {
      await mkdir(dirname(path), { recursive: true, mode: 0o750 });
    } catch (err) {
      log.warn(`failed to create directory for ${path}: ${errorMessage(err)}`);
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

/**
 * The lifecycle a server shares when it binds its socket before Envoy starts and serves once
 * Envoy has been spawned (Subsystem.afterStart): the early listener, the one serve step, `ready()`
 * for whoever must wait for it, and `done`, which rejects when a background step fails so the
 * agent ends, as a failed start would. After `stop()` nothing is reported any more.
 */
export class LateServer {
  /** Rejects when a background step fails (the Subsystem's `done`). */
  readonly done: Promise<void>;
  #rejectDone: (err: Error) => void = () => {};
  readonly #stopping = new AbortController();
  #listener: UdsListener | undefined;
  #serving: Promise<void> | undefined;

  constructor(private readonly log: Scope) {
    this.done = new Promise<void>((_resolve, reject) => {
      this.#rejectDone = reject;
    });
    // A subsystem used on its own (tests, benchmarks) may never await `done`.
    this.done.catch(() => {});
  }

  /** Aborts when the server is stopping; background work watches it. */
  get signal(): AbortSignal {
    return this.#stopping.signal;
  }

  get stopped(): boolean {
    return this.#stopping.signal.aborted;
  }

  /** The early listener, when bind() succeeded. */
  get listener(): UdsListener | undefined {
    return this.#listener;
  }

  /** Binds `path` now; connections wait in it until the server attaches. */
  async bind(path: string): Promise<UdsListener> {
    this.#listener = await UdsListener.listen(path);
    return this.#listener;
  }

  /**
   * Runs `serve` once (later calls do nothing); its failure, as `wrap` words it, is reported
   * through fail().
   */
  serve(serve: () => Promise<void>, wrap: (err: unknown) => Error): void {
    this.#serving ??= serve().catch((err: unknown) => this.fail(wrap(err)));
  }

  /** Resolves once the serve step has finished (whether or not it succeeded). */
  async ready(): Promise<void> {
    await this.#serving;
  }

  /** A background step failed: logged once and the agent ends, unless the server is stopping. */
  fail(err: Error): void {
    if (this.stopped) return;
    this.log.error(err.message);
    this.#rejectDone(err);
  }

  /**
   * Stops reporting, runs `stopServer` (the gRPC server ends the connections it was handed), then
   * closes the early listener: a net.Server closes only once its connections have ended.
   */
  async stop(stopServer?: () => Promise<void>): Promise<void> {
    this.#stopping.abort();
    await stopServer?.();
    await this.#listener?.close();
    this.#listener = undefined;
  }
}

/** Does anything accept connections on the unix socket? A stale file refuses at once. */
function socketAccepts(path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(path);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/**
 * A unix socket someone answers gRPC on within `timeoutMs` (Istio dials with a 1 s timeout).
 * The socket file left by a previous agent in the same pod (an emptyDir outlives container
 * restarts) refuses connections: that is answered without loading gRPC or waiting the second.
 */
export async function socketHealthy(path: string, timeoutMs = 1000): Promise<boolean> {
  if (!(await socketAccepts(path, timeoutMs))) return false;
  const grpc = await import('@grpc/grpc-js');
  const client = new grpc.Client(`unix:${path}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  try {
    return await new Promise<boolean>((resolve) => client.waitForReady(Date.now() + timeoutMs, (err) => resolve(!err)));
  } finally {
    client.close();
  }
}

/** Whether `path` is a unix socket (false when it is absent or anything else). */
export function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}
