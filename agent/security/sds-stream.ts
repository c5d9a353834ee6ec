// One SDS stream's state machine (Istio's shared xDS stream loop in pkg/xds/server.go, with the
// SDS Context of security/pkg/nodeagent/sds/sdsservice.go), free of gRPC so it can be driven
// directly: requests and pushes go in, responses or a terminal error come out. Each stream has a
// single loop; a waiting request is taken before a waiting push, and a push is never starved
// (the loop drains both queues in turn).
import { randomUUID } from 'node:crypto';
import type { DiscoveryRequest } from './protos.js';
import { SECRET_TYPE_URL } from './protos.js';
import { AgentError, errorMessage, type AgentErrorOptions } from '../../lib/errors.js';

/** Types for which Envoy's xDS rules treat an empty name list as "unsubscribe". */
const NON_WILDCARD_TYPES = new Set([
  SECRET_TYPE_URL,
  'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  'type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig',
]);

let responseCounter = 0;
let connectionCounter = 0;

/** RFC 3339 local time with offset, seconds precision (Go's time.RFC3339). */
export function rfc3339Local(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  const zone = off === 0 ? 'Z' : `${off > 0 ? '+' : '-'}${p(Math.floor(Math.abs(off) / 60))}:${p(Math.abs(off) % 60)}`;
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}${zone}`;
}

/** `<RFC 3339 time>/<process-wide response counter>`, as Istio's SDS versions. */
export function nextVersion(now = new Date()): string {
  return `${rfc3339Local(now)}/${++responseCounter}`;
}

/** An error that ends the stream with a gRPC status. */
export class StreamError extends AgentError {
  static override readonly code: string = 'SDS_STREAM';
  constructor(
    message: string,
    /** gRPC status code: 2 UNKNOWN (Istio's plain errors), 3 INVALID_ARGUMENT */
    readonly grpcCode: number,
    options?: AgentErrorOptions,
  ) {
    super(message, options);
  }
}

export interface SdsStreamHooks {
  /** Builds the encoded Secret resource for a name (throws → the stream ends). */
  generate(name: string): Promise<Uint8Array>;
  send(res: { version_info: string; resources: { type_url: string; value: Uint8Array }[]; type_url: string; nonce: string }): void;
  /** Ends the stream with an error status. */
  fail(err: StreamError): void;
  /** Stats: a NACK, a stale nonce. */
  onNack?(message: string): void;
  onStaleNonce?(): void;
  /** Names whose generation failed with an unknown-name error get INVALID_ARGUMENT. */
  statusFor?(err: unknown): number;
}

interface Watch {
  names: string[];
  lastNonceSent: string;
  lastNonceAcked: string;
  lastError: string;
}

export class SdsConnection {
  /** Numeric id ("1", "2", …) given on the first valid request. */
  id = '';
  private watch: Watch | undefined;
  private readonly requests: DiscoveryRequest[] = [];
  private readonly pushes: string[] = [];
  private running = false;
  private ended = false;

  constructor(private readonly hooks: SdsStreamHooks) {}

  get watchedNames(): readonly string[] {
    return this.watch?.names ?? [];
  }

  get closed(): boolean {
    return this.ended;
  }

  onRequest(req: DiscoveryRequest): void {
    if (this.ended) return;
    this.requests.push(req);
    this.kick();
  }

  /** A resource changed; sent only if this stream watches it. */
  onPush(name: string): void {
    if (this.ended) return;
    this.pushes.push(name);
    this.kick();
  }

  /** The stream went away; queued work is dropped. */
  close(): void {
    this.ended = true;
    this.requests.length = 0;
    this.pushes.length = 0;
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    void this.loop();
  }

  private async loop(): Promise<void> {
    try {
      while (!this.ended) {
        const req = this.requests.shift();
        if (req) {
          await this.handleRequest(req);
          continue;
        }
        const push = this.pushes.shift();
        if (push === undefined) break;
        await this.handlePush(push);
      }
    } catch (err) {
      const e = err instanceof StreamError ? err : new StreamError(errorMessage(err), 2, { cause: err, appendCause: false });
      this.ended = true;
      this.hooks.fail(e);
    } finally {
      this.running = false;
    }
  }

  private async handleRequest(req: DiscoveryRequest): Promise<void> {
    if (this.id === '') {
      if (!req.node || !req.node.id) throw new StreamError('missing node information', 3);
      this.id = String(++connectionCounter);
    }
    const typeUrl = req.type_url ?? '';
    const nonWildcard = NON_WILDCARD_TYPES.has(typeUrl);
    const names = req.resource_names ?? [];
    // 1. NACK: remember it, answer nothing. (Istio dereferences a missing watch here and
    //    panics the whole agent; a NACK without a watch is simply ignored.)
    if (req.error_detail && (req.error_detail.code || req.error_detail.message)) {
      const msg = req.error_detail.message ?? '';
      if (this.watch) this.watch.lastError = msg;
      this.hooks.onNack?.(msg);
      return;
    }
    // 2. Unsubscribe.
    if (names.length === 0 && nonWildcard) {
      this.watch = undefined;
      return;
    }
    // 3. New subscription (first request, reconnect with an old nonce, after unsubscribe).
    if (!req.response_nonce || !this.watch) {
      this.watch = { names: [...names], lastNonceSent: '', lastNonceAcked: '', lastError: '' };
      await this.respond(names);
      return;
    }
    // 4. Stale nonce.
    if (req.response_nonce !== this.watch.lastNonceSent) {
      this.hooks.onStaleNonce?.();
      return;
    }
    // 5. ACK, possibly with a changed name list: answer only the added names.
    const old = new Set(this.watch.names);
    this.watch.names = [...names];
    this.watch.lastNonceAcked = req.response_nonce;
    this.watch.lastError = '';
    const added = names.filter((n) => !old.has(n));
    if (added.length > 0) {
      await this.respond(added);
    } else if (!nonWildcard && names.length !== old.size) {
      await this.respond(names);
    }
  }

  private async handlePush(name: string): Promise<void> {
    if (!this.watch || !this.watch.names.includes(name)) return;
    await this.respond([name]);
  }

  private async respond(names: readonly string[]): Promise<void> {
    const resources: { type_url: string; value: Uint8Array }[] = [];
    for (const n of names) {
      try {
        resources.push({ type_url: SECRET_TYPE_URL, value: await this.hooks.generate(n) });
      } catch (err) {
        throw new StreamError(`failed to generate secret for ${n}`, this.hooks.statusFor?.(err) ?? 2, { cause: err });
      }
    }
    if (this.ended) return;
    const nonce = randomUUID();
    this.hooks.send({ version_info: nextVersion(), resources, type_url: SECRET_TYPE_URL, nonce });
    if (this.watch) this.watch.lastNonceSent = nonce;
  }
}
