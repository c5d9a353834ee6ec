// The one error type probes fail with; its message is Go's wording where Istio logs it.

/** A probe that could not complete, or whose target answered unhealthy. */
export class ProbeError extends Error {
  override readonly name = 'ProbeError';
}
