// Istio's istio_agent_* XDS proxy counters (pkg/istio-agent/metrics), kept as plain numbers and
// read by the status server at scrape time. Names are without the `istio_agent_` prefix.
//
// istiod_connection_terminations and envoy_connection_terminations carry Istio's `type` label:
// `cancelled` for graceful and expected ends (EOF, Canceled, a closing transport), `error` for
// everything else.

/** How a stream side ended, as Istio's grpc.GRPCErrorType sorts it. */
export type Termination = 'graceful' | 'expected' | 'unexpected';

export class XdsProxyMetrics {
  /** Requests sent upstream (Envoy's, and the agent's own ACKs, subscriptions and health). */
  requests = 0;
  /** Responses received from istiod. */
  responses = 0;
  /** Upstream connections that could not be set up (TLS material unusable). */
  istiodConnectionFailures = 0;
  readonly istiodTerminations = { cancelled: 0, error: 0 };
  readonly envoyTerminations = { cancelled: 0, error: 0 };

  countTermination(side: 'istiod' | 'envoy', kind: Termination): void {
    const t = side === 'istiod' ? this.istiodTerminations : this.envoyTerminations;
    if (kind === 'unexpected') t.error++;
    else t.cancelled++;
  }

  /** Totals by name, for the status server's /stats/prometheus. */
  record(): Record<string, number> {
    return {
      xds_proxy_requests: this.requests,
      xds_proxy_responses: this.responses,
      istiod_connection_failures: this.istiodConnectionFailures,
      istiod_connection_terminations: this.istiodTerminations.cancelled + this.istiodTerminations.error,
      envoy_connection_terminations: this.envoyTerminations.cancelled + this.envoyTerminations.error,
    };
  }
}

/** gRPC status codes (numbers, so this module needs no gRPC import). */
const CANCELLED = 1;
const DEADLINE_EXCEEDED = 4;
const INTERNAL = 13;
const UNAVAILABLE = 14;

/**
 * Istio's error classification (pilot/pkg/grpc/grpc.go, GRPCErrorType), for logs and metrics: no
 * error is a graceful end; Canceled, DeadlineExceeded, an Unavailable transport going away and
 * an RST_STREAM NO_ERROR are expected; anything else is unexpected. grpc-js words a dropped
 * connection differently from grpc-go; both wordings are recognised.
 */
export function classifyTermination(err: { code?: number; details?: string; message?: string } | null | undefined): Termination {
  if (!err) return 'graceful';
  const text = `${err.details ?? ''} ${err.message ?? ''}`;
  if (err.code === CANCELLED || err.code === DEADLINE_EXCEEDED) return 'expected';
  if (err.code === UNAVAILABLE && /client disconnected|error reading from server: EOF|transport is closing|Connection dropped/.test(text)) return 'expected';
  if (err.code === INTERNAL && /RST_STREAM with code 0\b/.test(text)) return 'expected';
  return 'unexpected';
}
