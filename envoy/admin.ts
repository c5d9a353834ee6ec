// Envoy's admin API (`/ready`, `/stats`, `/server_info`, `/drain_listeners`, `/quitquitquit`) as
// pilot-agent uses it. undici is imported on first use: the start path never talks to the admin
// API, so it does not pay for loading the HTTP client.
import { countActiveConnections } from './connections.js';
import { AgentError, type AgentErrorOptions } from '../lib/errors.js';

type Undici = typeof import('undici');
let undici: Promise<Undici> | undefined;
const loadUndici = (): Promise<Undici> => (undici ??= import('undici'));

/** Where the admin API listens. `localhost` dials every address it resolves to, as Go does. */
export interface AdminAddress {
  host: string;
  port: number;
}

export class EnvoyAdminError extends AgentError {
  static override readonly code: string = 'ENVOY_ADMIN';
  constructor(
    message: string,
    /** the HTTP status when Envoy answered, undefined for transport errors */
    readonly status?: number,
    options?: AgentErrorOptions,
  ) {
    super(message, options);
  }
}

function urlOf(a: AdminAddress, pathAndQuery: string): string {
  const host = a.host.includes(':') ? `[${a.host}]` : a.host;
  return `http://${host}:${a.port}/${pathAndQuery.replace(/^\//, '')}`;
}

export interface AdminRequest {
  method?: 'GET' | 'POST';
  /** whole-request timeout in ms (Go's http.Client Timeout); none when undefined */
  timeoutMs?: number | undefined;
  /** treat any status other than 200 as an error (Istio's GET helpers do; its POST helper does not) */
  requireOk?: boolean;
}

export interface AdminResponse {
  status: number;
  body: string;
}

/** One request to the admin API. Transport errors and timeouts reject with EnvoyAdminError. */
export async function adminRequest(a: AdminAddress, pathAndQuery: string, o: AdminRequest = {}): Promise<AdminResponse> {
  const { request } = await loadUndici();
  const method = o.method ?? 'GET';
  const url = urlOf(a, pathAndQuery);
  let res: AdminResponse;
  try {
    const r = await request(url, {
      method,
      // Go's http.Post with an empty content type still sends the header, with an empty value.
      headers: method === 'POST' ? { 'content-type': '' } : {},
      // One connection per call: admin calls are rare, and an idle keep-alive socket would hold
      // the event loop open after the agent is done.
      reset: true,
      ...(o.timeoutMs !== undefined ? { signal: AbortSignal.timeout(o.timeoutMs) } : {}),
    });
    res = { status: r.statusCode, body: await r.body.text() };
  } catch (err) {
    const e = err as Error & { code?: string };
    const why = e.name === 'TimeoutError' ? `timeout after ${o.timeoutMs}ms` : (e.code ?? e.message);
    throw new EnvoyAdminError(`${method} ${url}: ${why}`);
  }
  if (o.requireOk && res.status !== 200) throw new EnvoyAdminError(`unexpected status ${res.status}`, res.status);
  return res;
}

/** GET returning the body; non-200 is an error (Istio's doHTTPGet). */
export async function adminGet(a: AdminAddress, pathAndQuery: string, timeoutMs?: number): Promise<string> {
  return (await adminRequest(a, pathAndQuery, { timeoutMs, requireOk: true })).body;
}

/**
 * `POST /drain_listeners`: `?inboundonly&graceful` for sidecars (`?graceful` otherwise), plus
 * `&skip_exit` for `/drain` so Envoy keeps running after its drain period. Sent to `localhost`
 * without a client timeout, as Istio does; only transport errors are errors.
 */
export async function drainListeners(adminPort: number, inboundOnly: boolean, skipExit: boolean): Promise<string> {
  let path = inboundOnly ? 'drain_listeners?inboundonly&graceful' : 'drain_listeners?graceful';
  if (skipExit) path += '&skip_exit';
  return (await adminRequest({ host: 'localhost', port: adminPort }, path, { method: 'POST' })).body;
}

/** `POST /quitquitquit`: Envoy shuts down by itself. */
export async function quitQuitQuit(adminPort: number): Promise<void> {
  await adminRequest({ host: 'localhost', port: adminPort }, 'quitquitquit', { method: 'POST' });
}

/** `GET /stats?…` text body (`name: value` lines). */
export function getStats(a: AdminAddress, query: string, timeoutMs?: number): Promise<string> {
  return adminGet(a, `stats${query === '' ? '' : `?${query}`}`, timeoutMs);
}

/** `GET /server_info` as parsed JSON. */
export async function getServerInfo(a: AdminAddress, timeoutMs?: number): Promise<Record<string, unknown>> {
  const body = await adminGet(a, 'server_info', timeoutMs);
  try {
    return JSON.parse(body) as Record<string, unknown>;
  } catch (err) {
    throw new EnvoyAdminError(`server_info is not JSON`, undefined, { cause: err });
  }
}

/** `GET /ready`: true when Envoy answers 200 (LIVE). */
export async function isReady(a: AdminAddress, timeoutMs?: number): Promise<boolean> {
  return (await adminRequest(a, 'ready', { timeoutMs })).status === 200;
}

/**
 * Envoy's active downstream connections (Istio's activeProxyConnections): -1 when Envoy returned
 * no stats; rejects when the stats could not be fetched.
 */
export async function activeProxyConnections(a: AdminAddress, known: ReadonlySet<string>, timeoutMs = 2000): Promise<{ count: number; skipped: string[] }> {
  let body: string;
  try {
    body = await getStats(a, 'usedonly&filter=downstream_cx_active$', timeoutMs);
  } catch (err) {
    throw new EnvoyAdminError(`unable to get listener stats from Envoy`, undefined, { cause: err });
  }
  return countActiveConnections(body, known);
}
