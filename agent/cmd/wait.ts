// `pilot-agent wait`: poll a readiness URL until it answers 200 (the postStart hook used with
// holdApplicationUntilProxyStarts).
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { AgentError, errorMessage } from '../../lib/errors.js';

export interface WaitOptions {
  url: string;
  timeoutSeconds: number;
  requestTimeoutMillis: number;
  periodMillis: number;
}

export const defaultWaitOptions: Readonly<WaitOptions> = Object.freeze({
  url: 'http://localhost:15021/healthz/ready',
  timeoutSeconds: 60,
  requestTimeoutMillis: 500,
  periodMillis: 500,
});

export class WaitTimeoutError extends AgentError {
  static override readonly code: string = 'CMD_WAIT_TIMEOUT';
}

async function probe(url: string, timeoutMs: number): Promise<string | undefined> {
  try {
    const res = await request(url, { signal: AbortSignal.timeout(timeoutMs), headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    await res.body.text();
    return res.statusCode === 200 ? undefined : `HTTP status code ${res.statusCode}`;
  } catch (err) {
    return errorMessage(err);
  }
}

/** Resolves when the URL answers 200; rejects with Istio's timeout message otherwise. */
export async function waitForReady(o: WaitOptions, onReady: () => void = () => {}): Promise<void> {
  const deadline = Date.now() + o.timeoutSeconds * 1000;
  let lastError = 'not attempted';
  for (;;) {
    // Istio waits one period before the first attempt.
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    await sleep(Math.min(o.periodMillis, remaining));
    if (Date.now() >= deadline) break;
    const err = await probe(o.url, Math.min(o.requestTimeoutMillis, Math.max(1, deadline - Date.now())));
    if (err === undefined) {
      onReady();
      return;
    }
    lastError = err;
  }
  throw new WaitTimeoutError(`timeout waiting for Envoy proxy to become ready. Last error: ${lastError}`);
}
