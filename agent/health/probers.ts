// The probe primitives both users share: the status server's rewritten Kubernetes probes
// (`/app-health/...`, Istio's pilot/cmd/pilot-agent/status/server.go) and the VM workload health
// checker (pkg/istio-agent/health/health_probers.go). One implementation of each kind — HTTP(S)
// GET with Kubernetes' redirect rules and HTTP/2 over ALPN, TCP connect, gRPC health check, exec
// — so both behave alike. Everything is built on Node's own http/https/http2/net/tls modules:
// they are loaded anyway, and they let a probe bind its source address (127.0.0.6 / ::6, so the
// capture rules let it through), which gRPC-js cannot.
import { spawn } from 'node:child_process';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { request as httpRequest, type Agent } from 'node:http';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { exitText } from '../../lib/exit-text.js';
import { joinHostPort } from '../../lib/hostport.js';
import { abortError, ProbeError, raceAbort } from './probe-error.js';

export { ProbeError };

/**
 * The address family a bound source address forces on the destination. Go's dialer drops
 * destination addresses of the other family when LocalAddr is set; Node would try them and fail.
 */
function familyOf(localAddress: string | undefined): 4 | 6 | undefined {
  if (!localAddress) return undefined;
  const f = isIP(localAddress);
  return f === 4 || f === 6 ? f : undefined;
}

function dialError(host: string, port: number, err: Error & { code?: string }): ProbeError {
  const why = err.code === 'ECONNREFUSED' ? 'connect: connection refused' : (err.code ?? err.message);
  return new ProbeError(`dial tcp ${joinHostPort(host, port)}: ${why}`);
}

/** A timer that aborts, so one deadline covers dialing, redirects and reading the body (Go's Client.Timeout). */
function deadline(timeoutMs: number | undefined, outer?: AbortSignal): { signal: AbortSignal; clear(): void } {
  const ctl = new AbortController();
  const onOuter = () => ctl.abort(outer!.reason);
  if (outer) {
    if (outer.aborted) ctl.abort(outer.reason);
    else outer.addEventListener('abort', onOuter, { once: true });
  }
  const timer = timeoutMs && timeoutMs > 0 ? setTimeout(() => ctl.abort(new ProbeError('context deadline exceeded')), timeoutMs) : undefined;
  return {
    signal: ctl.signal,
    clear() {
      if (timer) clearTimeout(timer);
      outer?.removeEventListener('abort', onOuter);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// TCP

export interface TcpProbeOptions {
  /** connect timeout; 0/undefined = the OS default, as Go's dialer */
  timeoutMs?: number;
  /** bound source address (127.0.0.6 / ::6 for rewritten probes) */
  localAddress?: string;
  signal?: AbortSignal;
}

/** Connects and closes at once. Resolves on success, rejects with ProbeError otherwise. */
export async function tcpProbe(host: string, port: number, o: TcpProbeOptions = {}): Promise<void> {
  const d = deadline(o.timeoutMs, o.signal);
  try {
    await openSocket(host, port, o.localAddress, d.signal).then((s) => s.destroy());
  } finally {
    d.clear();
  }
}

function openSocket(host: string, port: number, localAddress: string | undefined, signal: AbortSignal): Promise<Socket> {
  let sock: Socket | undefined;
  const p = new Promise<Socket>((resolve, reject) => {
    const family = familyOf(localAddress);
    sock = netConnect({ host, port, ...(localAddress ? { localAddress } : {}), ...(family && !isIP(host) ? { family } : {}) });
    sock.once('connect', () => resolve(sock!));
    sock.once('error', (err) => reject(dialError(host, port, err)));
  });
  return raceAbort(p, signal, () => sock?.destroy()).catch((err: unknown) => {
    throw signal.aborted ? new ProbeError(`dial tcp ${joinHostPort(host, port)}: i/o timeout`) : err;
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP(S) GET

export interface HttpGetTarget {
  scheme: 'http' | 'https';
  host: string;
  port: number;
  /** request target: path (and query), starting with `/` */
  path: string;
}

/**
 * Which redirects are followed. `kubelet`: only to the same host, at most 10 requests, as
 * Kubernetes (and Istio's rewritten probes) do; a redirect elsewhere is the answer. `any`: Go's
 * default client policy (any host, at most 10 requests), used by the VM health checker.
 */
export type RedirectPolicy = 'kubelet' | 'any';

export interface HttpProbeOptions {
  /** request headers, each name with all its values */
  headers?: ReadonlyMap<string, readonly string[]>;
  /** Host header; default `<host>:<port>` of the URL */
  hostHeader?: string;
  /** whole exchange (dial, redirects, body); 0/undefined = none, as Go's Client.Timeout */
  timeoutMs?: number;
  localAddress?: string;
  /** offer h2 via ALPN on HTTPS and use it when the server picks it (ISTIO_ENABLE_HTTP2_PROBING) */
  http2?: boolean;
  /** keep-alive agent for plain-HTTP requests (ENABLE_PROBE_KEEPALIVE_CONNECTIONS); none = `Connection: close` */
  agent?: Agent;
  /** the body is read up to this many bytes and the rest dropped (default 10 KiB) */
  maxBodyBytes?: number;
  redirects?: RedirectPolicy;
  signal?: AbortSignal;
}

export interface HttpProbeResult {
  status: number;
  /** at most maxBodyBytes of the final response's body (empty for a redirect answer) */
  body: Buffer;
  protocol: 'HTTP/1.1' | 'HTTP/2.0';
}

const MAX_REQUESTS = 10;
const REDIRECT_CODES = new Set([301, 302, 303, 307, 308]);
// Never forwarded: they describe the agent's own connection, not the probe (RFC 9110 §7.6.1).
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host', 'content-length']);

/** HTTP status codes 300–399 (Kubernetes' isRedirect): answered as success by rewritten probes. */
export function isRedirect(code: number): boolean {
  return code >= 300 && code < 400;
}

function urlOf(t: HttpGetTarget): string {
  return `${t.scheme}://${joinHostPort(t.host, t.port)}${t.path}`;
}

/**
 * One HTTP(S) GET with redirects followed per `redirects`. Rejects with ProbeError on transport
 * errors, timeouts and redirect loops (`stopped after 10 redirects`); any HTTP status resolves.
 */
export async function httpGetProbe(target: HttpGetTarget, o: HttpProbeOptions = {}): Promise<HttpProbeResult> {
  const d = deadline(o.timeoutMs, o.signal);
  const policy = o.redirects ?? 'kubelet';
  const originalHost = target.host;
  let current = target;
  let hostHeader = o.hostHeader ?? joinHostPort(target.host, target.port);
  try {
    for (let n = 1; ; n++) {
      const res = await exchange(current, hostHeader, o, d.signal);
      const location = REDIRECT_CODES.has(res.status) ? res.location : undefined;
      if (location === undefined) return res;
      let next: URL;
      try {
        next = new URL(location, urlOf(current));
      } catch {
        return res; // Go returns a response with an unparsable Location as it is
      }
      const scheme = next.protocol === 'https:' ? 'https' : next.protocol === 'http:' ? 'http' : undefined;
      if (!scheme) return res;
      const nextHost = next.hostname.replace(/^\[(.*)\]$/, '$1');
      if (policy === 'kubelet' && nextHost !== originalHost) return res;
      if (n >= MAX_REQUESTS) throw new ProbeError(`Get "${next.href}": stopped after ${MAX_REQUESTS} redirects`);
      // Go keeps a custom Host header only across relative redirects.
      if (/^[a-z][a-z0-9+.-]*:/i.test(location) || location.startsWith('//')) hostHeader = next.host;
      current = { scheme, host: nextHost, port: Number(next.port || (scheme === 'https' ? 443 : 80)), path: `${next.pathname}${next.search}` };
    }
  } catch (err) {
    if (d.signal.aborted) throw new ProbeError(`Get "${urlOf(current)}": ${abortError(d.signal).message} (Client.Timeout exceeded)`);
    if (err instanceof ProbeError) throw err;
    const e = err as Error & { code?: string; syscall?: string };
    // Connection failures read as Go's (`dial tcp host:port: connect: connection refused`).
    const why = e.syscall === 'connect' || e.code === 'ENOTFOUND' ? dialError(current.host, current.port, e).message : e.message;
    throw new ProbeError(`Get "${urlOf(current)}": ${why}`);
  } finally {
    d.clear();
  }
}

interface Exchange extends HttpProbeResult {
  location?: string;
}

function http1Headers(o: HttpProbeOptions, hostHeader: string): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = {};
  for (const [name, values] of o.headers ?? []) {
    if (HOP_BY_HOP.has(name.toLowerCase())) continue;
    h[name] = values.length === 1 ? values[0]! : [...values];
  }
  h.Host = hostHeader;
  if (!o.agent) h.Connection = 'close';
  return h;
}

async function exchange(t: HttpGetTarget, hostHeader: string, o: HttpProbeOptions, signal: AbortSignal): Promise<Exchange> {
  if (t.scheme === 'http') {
    const family = familyOf(o.localAddress);
    return http1(
      (opts) =>
        httpRequest({
          host: t.host,
          port: t.port,
          path: t.path,
          method: 'GET',
          setHost: false,
          ...(o.agent ? { agent: o.agent } : { agent: false }),
          ...(o.localAddress ? { localAddress: o.localAddress } : {}),
          ...(family && !isIP(t.host) ? { family } : {}),
          headers: opts,
        }),
      http1Headers(o, hostHeader),
      o,
      signal,
    );
  }
  const tlsSock = await openTls(t, o, signal);
  if (tlsSock.alpnProtocol === 'h2') return http2Exchange(tlsSock, t, hostHeader, o, signal);
  return http1((headers) => httpRequest({ createConnection: () => tlsSock, path: t.path, method: 'GET', setHost: false, headers }), http1Headers(o, hostHeader), o, signal);
}

function openTls(t: HttpGetTarget, o: HttpProbeOptions, signal: AbortSignal): Promise<TLSSocket> {
  let sock: TLSSocket | undefined;
  const p = new Promise<TLSSocket>((resolve, reject) => {
    const family = familyOf(o.localAddress);
    sock = tlsConnect({
      host: t.host,
      port: t.port,
      // Kubernetes does not verify probe certificates; neither do rewritten probes.
      rejectUnauthorized: false,
      ...(isIP(t.host) ? {} : { servername: t.host }),
      ...(o.http2 ? { ALPNProtocols: ['h2', 'http/1.1'] } : {}),
      ...(o.localAddress ? { localAddress: o.localAddress } : {}),
      ...(family && !isIP(t.host) ? { family } : {}),
    });
    sock.once('secureConnect', () => resolve(sock!));
    sock.once('error', (err: Error) => reject(err));
  });
  return raceAbort(p, signal, () => sock?.destroy());
}

/**
 * Reads up to `max` bytes of a body stream, then drops the rest (and the connection): a probe
 * answer never costs more memory than the cap, however much the application sends.
 */
function readCapped(stream: NodeJS.ReadableStream & { destroy(): void }, max: number): Promise<{ body: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (complete: boolean) => {
      if (done) return;
      done = true;
      resolve({ body: Buffer.concat(chunks).subarray(0, max), complete });
    };
    stream.on('data', (c: Buffer) => {
      if (done) return;
      chunks.push(c);
      size += c.length;
      if (size > max) {
        finish(false);
        stream.destroy();
      }
    });
    stream.once('end', () => finish(true));
    stream.once('error', (err: Error) => {
      if (done) return;
      done = true;
      reject(err);
    });
    stream.once('close', () => finish(false));
  });
}

function http1(send: (headers: OutgoingHttpHeaders) => ReturnType<typeof httpRequest>, headers: OutgoingHttpHeaders, o: HttpProbeOptions, signal: AbortSignal): Promise<Exchange> {
  const req = send(headers);
  const p = new Promise<Exchange>((resolve, reject) => {
    req.once('error', (err) => reject(err));
    req.once('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (REDIRECT_CODES.has(status) && location !== undefined) {
        res.destroy();
        req.destroy();
        resolve({ status, body: Buffer.alloc(0), protocol: 'HTTP/1.1', location });
        return;
      }
      readCapped(res, o.maxBodyBytes ?? 10 * 1024).then(({ body, complete }) => {
        // A keep-alive connection goes back to the pool only when its response was read whole.
        if (!o.agent || !complete) req.destroy();
        resolve({ status, body, protocol: 'HTTP/1.1' });
      }, reject);
    });
    req.end();
  });
  return raceAbort(p, signal, () => req.destroy());
}

function http2Exchange(sock: TLSSocket, t: HttpGetTarget, hostHeader: string, o: HttpProbeOptions, signal: AbortSignal): Promise<Exchange> {
  let session: ClientHttp2Session | undefined;
  const p = new Promise<Exchange>((resolve, reject) => {
    session = http2Connect(`https://${joinHostPort(t.host, t.port)}`, { createConnection: () => sock });
    session.once('error', reject);
    const headers: OutgoingHttpHeaders = { ':method': 'GET', ':path': t.path, ':scheme': 'https', ':authority': hostHeader };
    for (const [name, values] of o.headers ?? []) {
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower)) continue;
      headers[lower] = values.length === 1 ? values[0]! : [...values];
    }
    const req = session.request(headers, { endStream: true });
    req.once('error', reject);
    req.once('response', (h) => {
      const status = Number(h[':status']);
      const location = h.location;
      if (REDIRECT_CODES.has(status) && typeof location === 'string') {
        req.close();
        resolve({ status, body: Buffer.alloc(0), protocol: 'HTTP/2.0', location });
        return;
      }
      readCapped(req, o.maxBodyBytes ?? 10 * 1024).then(({ body }) => resolve({ status, body, protocol: 'HTTP/2.0' }), reject);
    });
  });
  const close = () => session?.destroy();
  return raceAbort(p, signal, close).finally(close);
}

// ---------------------------------------------------------------------------------------------
// gRPC health

export interface GrpcProbeOptions {
  /** `grpc.health.v1.HealthCheckRequest.service` ("" = the server's overall health) */
  service?: string;
  /** deadline of the dial and the call together */
  timeoutMs: number;
  localAddress?: string;
  userAgent?: string;
  signal?: AbortSignal;
}

/**
 * `grpc.health.v1.Health/Check` over plaintext HTTP/2. Resolves with the serving status name;
 * rejects with ProbeError for transport errors, deadlines and non-OK gRPC statuses
 * (Unimplemented for a server without the health service).
 */
export async function grpcHealthProbe(host: string, port: number, o: GrpcProbeOptions): Promise<string> {
  const d = deadline(o.timeoutMs, o.signal);
  try {
    // protobufjs's wire writer comes with the first gRPC probe, not with the agent's start.
    const [{ checkHealth }, sock] = await Promise.all([import('./grpc-health.js'), openSocket(host, port, o.localAddress, d.signal)]);
    return await checkHealth(sock, joinHostPort(host, port), { service: o.service ?? '', userAgent: o.userAgent, signal: d.signal, timeoutMs: o.timeoutMs });
  } catch (err) {
    if (d.signal.aborted) throw new ProbeError(`rpc error: code = DeadlineExceeded desc = context deadline exceeded`);
    throw err;
  } finally {
    d.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// exec

/** Runs `command` (no shell) with a timeout; exit 0 = healthy. The child is killed at the deadline. */
export function execProbe(command: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const [file, ...args] = command;
    if (!file) {
      reject(new ProbeError('exec: no command'));
      return;
    }
    const child = spawn(file, args, { stdio: 'ignore' });
    let timedOut = false;
    const kill = () => {
      timedOut = true;
      child.kill('SIGKILL');
    };
    const timer = timeoutMs > 0 ? setTimeout(kill, timeoutMs) : undefined;
    signal?.addEventListener('abort', kill, { once: true });
    const done = () => {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', kill);
    };
    child.once('error', (err: Error & { code?: string }) => {
      done();
      reject(new ProbeError(err.code === 'ENOENT' ? `exec: "${file}": executable file not found in $PATH` : `exec: "${file}": ${err.message}`));
    });
    child.once('exit', (code, sig) => {
      done();
      if (code === 0) resolve();
      else reject(new ProbeError(timedOut ? `command timeout exceeded: ${exitText(code, sig)}` : exitText(code, sig)));
    });
  });
}
