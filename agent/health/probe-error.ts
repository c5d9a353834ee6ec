// The one error type probes fail with (its message is Go's wording where Istio logs it), and the
// abort race every prober ends with.
import { AgentError } from '../../lib/errors.js';

/** A probe that could not complete, or whose target answered unhealthy. */
export class ProbeError extends AgentError {
  static override readonly code: string = 'PROBE';
}

export function abortError(signal: AbortSignal): ProbeError {
  const r = signal.reason as unknown;
  return r instanceof ProbeError ? r : new ProbeError(r instanceof Error ? r.message : 'context canceled');
}

/** Rejects with the abort reason (a ProbeError) when the signal aborts first; `onAbort` runs then. */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal, onAbort: () => void): Promise<T> {
  if (signal.aborted) {
    onAbort();
    return Promise.reject(abortError(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      onAbort();
      reject(abortError(signal));
    };
    signal.addEventListener('abort', abort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', abort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(e instanceof Error ? e : new ProbeError(String(e)));
      },
    );
  });
}
