// Istio-style scoped logging: `--log_output_level=default:info,xds:debug`, `--log_as_json`,
// `--log_target`, `--log_caller`, `--log_stacktrace_level`. Output lines look like Istio's so
// existing log pipelines keep parsing them:
//   2026-11-22T10:00:00.123000Z\tinfo\txdsproxy\tmessage
// (the scope column is omitted for the `default` scope, as Istio does).
import { closeSync, openSync, writeSync } from 'node:fs';
import { AgentError } from './errors.js';

export const LEVELS = ['debug', 'info', 'warn', 'error', 'fatal', 'none'] as const;
export type Level = (typeof LEVELS)[number];
const rank: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3, fatal: 4, none: 5 };

export interface LogOptions {
  /** `--log_output_level` */
  outputLevels: string;
  /** `--log_stacktrace_level` */
  stackTraceLevels: string;
  /** `--log_caller` (comma list of scopes) */
  logCallers: string;
  /** `--log_as_json` */
  asJson: boolean;
  /** `--log_target`: stdout, stderr or file paths */
  targets: string[];
}

/** Istio's effective defaults when the flags are absent. */
export const defaultLogOptions: LogOptions = {
  outputLevels: 'default:info,grpc:none',
  stackTraceLevels: 'default:none',
  logCallers: '',
  asJson: false,
  targets: ['stdout'],
};

/** Thrown by `fatal()`: the CLI maps it to exit status 1, as Istio's logger exits 1 on fatal. */
export class FatalError extends AgentError {
  static override readonly code: string = 'LOG_FATAL';
}

/** A bad value for one of the log flags; the CLI reports it and exits like any config error. */
export class LogConfigError extends AgentError {
  static override readonly code: string = 'LOG_CONFIG';
}

interface Sink {
  write(line: string): void;
  close(): void;
}

const state = {
  levels: new Map<string, Level>(),
  allLevel: undefined as Level | undefined,
  callers: new Set<string>(),
  asJson: false,
  sinks: [] as Sink[],
  configured: false,
};

/**
 * Parses a `scope:level,scope:level` list. A bare `level` applies to every scope (Istio's
 * behaviour). Unknown levels are errors naming the bad value.
 */
export function parseLevelList(spec: string, flag: string): { all?: Level; scopes: Map<string, Level> } {
  const scopes = new Map<string, Level>();
  let all: Level | undefined;
  for (const raw of spec.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const idx = item.lastIndexOf(':');
    const scope = idx < 0 ? '' : item.slice(0, idx);
    const level = (idx < 0 ? item : item.slice(idx + 1)) as Level;
    if (!LEVELS.includes(level)) {
      throw new LogConfigError(`invalid ${flag} value "${spec}": unknown level "${level}" (want one of ${LEVELS.join(', ')})`);
    }
    if (scope === '') all = level;
    else scopes.set(scope, level);
  }
  return all === undefined ? { scopes } : { all, scopes };
}

export function configureLogging(opts: Partial<LogOptions> = {}): void {
  const o = { ...defaultLogOptions, ...opts };
  // Istio layers the user's levels over `default:info,grpc:none`.
  const base = parseLevelList(defaultLogOptions.outputLevels, '--log_output_level');
  const user = parseLevelList(o.outputLevels, '--log_output_level');
  parseLevelList(o.stackTraceLevels, '--log_stacktrace_level');
  for (const s of state.sinks) s.close();
  state.levels = new Map(base.scopes);
  state.allLevel = undefined;
  if (user.all !== undefined) {
    // A bare level resets every scope, including grpc.
    state.allLevel = user.all;
    state.levels.clear();
  }
  for (const [k, v] of user.scopes) state.levels.set(k, v);
  state.callers = new Set(
    o.logCallers
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  state.asJson = o.asJson;
  state.sinks = (o.targets.length ? o.targets : ['stdout']).map(openSink);
  state.configured = true;
}

const ignoredStreams = new WeakSet<NodeJS.WriteStream>();

/** A reader that went away (`| head`, a closed pipe) must not crash the agent. */
function streamSink(stream: NodeJS.WriteStream): Sink {
  if (!ignoredStreams.has(stream)) {
    ignoredStreams.add(stream);
    stream.on('error', () => {});
  }
  return { write: (l) => void stream.write(l), close: () => {} };
}

function openSink(target: string): Sink {
  if (target === 'stdout') return streamSink(process.stdout);
  if (target === 'stderr') return streamSink(process.stderr);
  let fd: number;
  try {
    fd = openSync(target, 'a', 0o644);
  } catch (err) {
    throw new LogConfigError(`invalid --log_target "${target}"`, { cause: err });
  }
  // Synchronous appends keep ordering with process exit; log volume is small.
  return { write: (l) => void writeSync(fd, l), close: () => closeSync(fd) };
}

function levelFor(scope: string): Level {
  return state.levels.get(scope) ?? state.allLevel ?? state.levels.get('default') ?? 'info';
}

function timestamp(d: Date): string {
  // Istio prints microseconds; JS has milliseconds, so the last three digits are zero.
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

function callerInfo(): string | undefined {
  const stack = new Error().stack?.split('\n') ?? [];
  // [0] "Error", [1] callerInfo, [2] emit, [3] Scope method, [4] the caller.
  const frame = stack[4]?.trim();
  const m = frame && /\(?([^()\s]+):(\d+):\d+\)?$/.exec(frame);
  if (!m) return undefined;
  const file = m[1]!.split('/').slice(-2).join('/');
  return `${file}:${m[2]}`;
}

function emit(scope: string, level: Exclude<Level, 'none'>, msg: string, fields?: Record<string, unknown>): void {
  if (!state.configured) configureLogging();
  if (rank[level] < rank[levelFor(scope)]) return;
  const now = new Date();
  const caller = state.callers.has(scope) || state.callers.has('all') ? callerInfo() : undefined;
  let line: string;
  if (state.asJson) {
    const rec: Record<string, unknown> = { level, time: timestamp(now) };
    if (scope !== 'default') rec.scope = scope;
    if (caller) rec.caller = caller;
    rec.msg = msg;
    if (fields) Object.assign(rec, fields);
    line = JSON.stringify(rec) + '\n';
  } else {
    const parts = [timestamp(now), level];
    if (scope !== 'default') parts.push(scope);
    if (caller) parts.push(caller);
    let text = msg;
    if (fields) {
      for (const [k, v] of Object.entries(fields)) text += `\t${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`;
    }
    parts.push(text);
    line = parts.join('\t') + '\n';
  }
  for (const s of state.sinks) s.write(line);
}

export interface Scope {
  readonly name: string;
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** Logs at fatal level and throws FatalError (exit status 1 at the CLI). */
  fatal(msg: string, fields?: Record<string, unknown>): never;
  debugEnabled(): boolean;
}

const scopes = new Map<string, Scope>();

/** Returns the logger for an Istio scope name (`default`, `xdsproxy`, `sds`, `cache`, …). */
export function scope(name: string): Scope {
  let s = scopes.get(name);
  if (!s) {
    s = {
      name,
      debug: (m, f) => emit(name, 'debug', m, f),
      info: (m, f) => emit(name, 'info', m, f),
      warn: (m, f) => emit(name, 'warn', m, f),
      error: (m, f) => emit(name, 'error', m, f),
      fatal: (m, f) => {
        emit(name, 'fatal', m, f);
        throw new FatalError(m);
      },
      debugEnabled: () => rank.debug >= rank[levelFor(name)],
    };
    scopes.set(name, s);
  }
  return s;
}

export const log = scope('default');
