// What a test can script about the stand-in Envoy, and what it records. The stand-in reads the
// script from ENVOY_STANDIN_SCRIPT (a JSON file path, or inline JSON starting with `{`) and
// appends one JSON object per line to ENVOY_STANDIN_RECORD. Both variables reach the stand-in
// through the agent, which passes its environment to Envoy.

/** A stat whose value moves with time: `value + step * floor(elapsed / everyMs)`, clamped. */
export interface StatScript {
  value: number;
  step?: number;
  everyMs?: number;
  /** when the clock starts: at stand-in start (default) or at the first drain_listeners call */
  from?: 'start' | 'drain';
  min?: number;
  max?: number;
}

export interface XdsScript {
  /** type URLs subscribed on the ADS stream, in order (default: Cluster, then Listener) */
  types?: string[];
  /** delta xDS; default from the bootstrap's ads_config api_type (DELTA_GRPC) */
  delta?: boolean;
  /** type URLs whose responses are NACKed (counted as update_rejected) */
  nack?: string[];
  /** wait before reopening a closed stream, ms (default 1000) */
  reconnectMs?: number;
}

export interface SdsScript {
  /** secrets requested, one stream each as Envoy does (default: default, ROOTCA) */
  resourceNames?: string[];
  /** wait before reopening a closed stream, ms (default 1000) */
  reconnectMs?: number;
}

export interface StandinScript {
  /** listen here instead of the bootstrap's admin port (0: any free port, see the start record) */
  adminPort?: number;
  /** delay before the admin API listens, ms */
  startDelayMs?: number;
  /**
   * Stats served on /stats, overriding the built-in ones (`server.state` 0,
   * `listener_manager.workers_started` 1, the CDS/LDS update counters the xDS stream keeps,
   * `control_plane.connected_state`); `null` removes a stat.
   */
  stats?: Record<string, number | StatScript | null>;
  /** body of /stats/prometheus (default: the stats in Prometheus text format) */
  prometheus?: string;
  /** file streamed as the body of /stats/prometheus (large outputs) */
  prometheusFile?: string;
  /** admin paths (without query) answered with this HTTP status instead */
  adminStatus?: Record<string, number>;
  /** SIGTERM/SIGINT are recorded but do not stop the stand-in */
  ignoreSigterm?: boolean;
  /** exit by itself after this many ms, with `code` or by `signal` (a crash) */
  exit?: { afterMs: number; code?: number; signal?: NodeJS.Signals };
  /** `drain_listeners` without skip_exit makes Envoy exit after --drain-time-s (default true) */
  exitAfterDrain?: boolean;
  /**
   * Open the ADS stream over the bootstrap's `xds-grpc` pipe: `auto` (default) when the socket
   * exists at start, `true` keeps trying until it does, `false` never.
   */
  xds?: 'auto' | boolean | XdsScript;
  /** Open SDS streams over the `sds-grpc` pipe; same values as `xds`. */
  sds?: 'auto' | boolean | SdsScript;
  /** exit when the parent (the agent) goes away, so a killed test leaves nothing behind (default true) */
  exitWithParent?: boolean;
}

/** One line of the record file. `t` is Date.now() at the event. */
export type StandinEvent =
  | {
      e: 'start';
      t: number;
      pid: number;
      ppid: number;
      uid: number;
      gid: number;
      cwd: string;
      argv: string[];
      env: Record<string, string>;
      bootstrapPath: string;
      adminAddress: string;
      adminPort: number;
    }
  | { e: 'start-error'; t: number; argv: string[]; message: string }
  | { e: 'admin'; t: number; method: string; path: string; headers: Record<string, string> }
  | { e: 'drain'; t: number; inboundOnly: boolean; graceful: boolean; skipExit: boolean }
  | { e: 'signal'; t: number; signal: string }
  | { e: 'exit'; t: number; code: number; reason: string }
  | { e: 'xds-connect'; t: number; stream: string; target: string }
  | { e: 'xds-request'; t: number; stream: string; typeUrl: string; versionInfo: string; nonce: string; resourceNames: string[]; nack: boolean }
  | { e: 'xds-response'; t: number; stream: string; typeUrl: string; versionInfo: string; nonce: string; resources: XdsResource[]; removed?: string[] }
  | { e: 'xds-closed'; t: number; stream: string; code?: number; details: string }
  | { e: 'xds-skipped'; t: number; stream: string; reason: string };

/** A resource as recorded: its name, type and decoded body (bytes fields as text where readable). */
export interface XdsResource {
  name: string;
  typeUrl: string;
  version?: string;
  body?: Record<string, unknown>;
}

/** The value of a scripted stat at `now`. */
export function statValue(s: number | StatScript, now: number, startedAt: number, drainedAt: number | undefined): number {
  if (typeof s === 'number') return s;
  const origin = s.from === 'drain' ? drainedAt : startedAt;
  let v = s.value;
  if (origin !== undefined && s.step && s.everyMs && s.everyMs > 0) v += s.step * Math.floor((now - origin) / s.everyMs);
  if (s.min !== undefined) v = Math.max(s.min, v);
  if (s.max !== undefined) v = Math.min(s.max, v);
  return v;
}
