// ISTIO_KUBE_APP_PROBERS (Istio's NewServer and validateAppKubeProber in
// pilot/cmd/pilot-agent/status/server.go): the injector's JSON of the pod's rewritten Kubernetes
// probes, `{"/app-health/<container>/<kind>": Prober}`. Decoded the way Go's encoding/json
// decodes Istio's struct — field names case-insensitive (`gRPC`), unknown fields ignored, wrong
// JSON types are decode errors — then validated as Istio does. Pure.
import { AgentError } from '../../lib/errors.js';

export const APP_PROBER_PATTERN = /^\/(app-health|app-lifecycle)\/[^/]+\/(livez|readyz|startupz|prestopz|poststartz)$/;
const PATTERN_TEXT = '^/(app-health|app-lifecycle)/[^/]+/(livez|readyz|startupz|prestopz|poststartz)$';

export type AppProber =
  | { kind: 'httpGet'; port: number; path: string; scheme: 'HTTP' | 'HTTPS'; timeoutSeconds: number }
  | { kind: 'tcpSocket'; port: number; timeoutSeconds: number }
  | { kind: 'grpc'; port: number; service: string; timeoutSeconds: number };

export type AppProbers = ReadonlyMap<string, AppProber>;

export class AppProbersError extends AgentError {
  static override readonly code: string = 'STATUS_APP_PROBERS';
}

type Json = Record<string, unknown>;

/** Go's encoding/json wording for a value of the wrong type (wrapped into AppProbersError). */
class DecodeError extends AgentError {
  static override readonly code: string = 'STATUS_APP_PROBERS_DECODE';
}

/** Go's case-insensitive field lookup (an exact match wins). */
function field(o: Json, name: string): unknown {
  if (name in o) return o[name];
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(o)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v === 'object' ? 'object' : typeof v;
}

function object(v: unknown, where: string): Json | undefined {
  if (v === undefined || v === null) return undefined;
  if (jsonType(v) !== 'object') throw new DecodeError(`json: cannot unmarshal ${jsonType(v)} into Go struct field ${where}`);
  return v as Json;
}

function int32(v: unknown, where: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31)
    throw new DecodeError(`json: cannot unmarshal ${jsonType(v)} ${JSON.stringify(v)} into Go struct field ${where} of type int32`);
  return v;
}

function string(v: unknown, where: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new DecodeError(`json: cannot unmarshal ${jsonType(v)} into Go struct field ${where} of type string`);
  return v;
}

/** Kubernetes IntOrString: a number is Int, a string is String (an error for probes). */
function intOrString(v: unknown, where: string): number | string {
  if (typeof v === 'string') return v;
  return int32(v, where);
}

interface Decoded {
  httpGet?: { port: number | string; path: string; scheme: string };
  tcpSocket?: { port: number | string };
  grpc?: { port: number; service: string };
  timeoutSeconds: number;
}

function decodeProber(v: unknown): Decoded | undefined {
  const o = object(v, 'Prober');
  if (!o) return undefined;
  const d: Decoded = { timeoutSeconds: int32(field(o, 'timeoutSeconds'), 'Prober.timeoutSeconds') };
  const h = object(field(o, 'httpGet'), 'Prober.httpGet');
  if (h) {
    // host and httpHeaders are decoded (type-checked) but not used: kubelet already sends the
    // probe's headers to the status port, and they are forwarded from there.
    string(field(h, 'host'), 'HTTPGetAction.host');
    const headers = field(h, 'httpHeaders');
    if (headers !== undefined && headers !== null && !Array.isArray(headers)) throw new DecodeError(`json: cannot unmarshal ${jsonType(headers)} into Go struct field HTTPGetAction.httpHeaders`);
    d.httpGet = { port: intOrString(field(h, 'port'), 'HTTPGetAction.port'), path: string(field(h, 'path'), 'HTTPGetAction.path'), scheme: string(field(h, 'scheme'), 'HTTPGetAction.scheme') };
  }
  const t = object(field(o, 'tcpSocket'), 'Prober.tcpSocket');
  if (t) d.tcpSocket = { port: intOrString(field(t, 'port'), 'TCPSocketAction.port') };
  const g = object(field(o, 'grpc'), 'Prober.grpc');
  if (g) d.grpc = { port: int32(field(g, 'port'), 'GRPCAction.port'), service: string(field(g, 'service'), 'GRPCAction.service') };
  return d;
}

function validate(path: string, d: Decoded | undefined): AppProber {
  if (!APP_PROBER_PATTERN.test(path)) throw new AppProbersError(`invalid path, must be in form of regex pattern ${PATTERN_TEXT}`);
  const count = d ? [d.httpGet, d.tcpSocket, d.grpc].filter(Boolean).length : 0;
  if (!d || count !== 1) throw new AppProbersError('invalid prober type, must be one of type httpGet, tcpSocket or gRPC');
  const intPort = (p: number | string) => {
    if (typeof p === 'string') throw new AppProbersError(`invalid prober config for ${path}, the port must be int type`);
    return p;
  };
  if (d.httpGet) {
    const p = d.httpGet.path;
    return { kind: 'httpGet', port: intPort(d.httpGet.port), path: p.startsWith('/') ? p : `/${p}`, scheme: d.httpGet.scheme === 'HTTPS' ? 'HTTPS' : 'HTTP', timeoutSeconds: d.timeoutSeconds };
  }
  if (d.tcpSocket) return { kind: 'tcpSocket', port: intPort(d.tcpSocket.port), timeoutSeconds: d.timeoutSeconds };
  return { kind: 'grpc', port: d.grpc!.port, service: d.grpc!.service, timeoutSeconds: d.timeoutSeconds };
}

/**
 * Parses and validates ISTIO_KUBE_APP_PROBERS. An empty value means no probes. Throws
 * AppProbersError with Istio's message (`failed to decode app prober …`, `invalid path …`,
 * `invalid prober type …`, `… the port must be int type`).
 */
export function parseAppProbers(value: string): AppProbers {
  const probers = new Map<string, AppProber>();
  if (value === '') return probers;
  let decoded: Map<string, Decoded | undefined>;
  try {
    const raw: unknown = JSON.parse(value);
    if (raw === null) return probers; // Go decodes `null` into an empty map
    if (jsonType(raw) !== 'object') throw new DecodeError(`json: cannot unmarshal ${jsonType(raw)} into Go value of type status.KubeAppProbers`);
    decoded = new Map(Object.entries(raw as Json).map(([k, v]) => [k, decodeProber(v)]));
  } catch (err) {
    if (err instanceof SyntaxError || err instanceof DecodeError) throw new AppProbersError(`failed to decode app prober err = ${err.message}, json string = ${value}`);
    throw err;
  }
  for (const [path, d] of decoded) probers.set(path, validate(path, d));
  return probers;
}
