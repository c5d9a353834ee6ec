// `pilot-agent request <method> <path> [body]`: one HTTP call to a local debug port, body to
// stdout (istioctl parses it). Used by the injected preStop hook: `request --debug-port=15020 POST drain`.
import { request as httpRequest } from 'undici';
import { AgentError } from '../../lib/errors.js';

export const ALLOWED_DEBUG_PORTS = [15000, 15004, 15020, 15021] as const;

export class RequestError extends AgentError {
  static override readonly code: string = 'CMD_REQUEST';
}

export interface RequestOptions {
  method: string;
  path: string;
  body?: string | undefined;
  debugPort: number;
  /** host:port to dial after the allow-list check; Istio always dials localhost:<debugPort> */
  authority?: string;
  timeoutMs?: number;
}

/** Performs the call; resolves with the body, or rejects with Istio's error text. */
export async function doRequest(o: RequestOptions): Promise<string> {
  if (!(ALLOWED_DEBUG_PORTS as readonly number[]).includes(o.debugPort)) {
    throw new RequestError(`debug port ${o.debugPort} is not in allowed list [${ALLOWED_DEBUG_PORTS.join(' ')}]`);
  }
  const path = o.path.startsWith('/') ? o.path.slice(1) : o.path;
  const url = `http://${o.authority ?? `localhost:${o.debugPort}`}/${path}`;
  const timeout = o.timeoutMs ?? 60_000;
  let res;
  try {
    res = await httpRequest(url, {
      method: o.method,
      body: o.body ?? '',
      headersTimeout: timeout,
      bodyTimeout: timeout,
      signal: AbortSignal.timeout(timeout),
    });
  } catch (err) {
    throw new RequestError(`${o.method} ${url}`, { cause: err });
  }
  const body = await res.body.text();
  if (res.statusCode > 399 && res.statusCode !== 404) {
    throw new RequestError(`received unsuccessful status code ${res.statusCode}: ${body}`);
  }
  return body;
}
