// proxy-wasm ABI 0.2.1 as the host side sees it (proxy-wasm/spec abi-versions/v0.2.1): status
// codes, enums, and the signature of every host function this host provides. A module that
// imports anything else, or one of these with another signature, fails to link, as it does in
// Envoy (proxy-wasm-cpp-host src/v8/v8.cc V8::link).

export const Status = {
  Ok: 0,
  NotFound: 1,
  BadArgument: 2,
  SerializationFailure: 3,
  ParseFailure: 4,
  InvalidMemoryAccess: 6,
  Empty: 7,
  CasMismatch: 8,
  InternalFailure: 10,
  Unimplemented: 12,
} as const;

export const MapType = {
  RequestHeaders: 0,
  RequestTrailers: 1,
  ResponseHeaders: 2,
  ResponseTrailers: 3,
  GrpcReceiveInitialMetadata: 4,
  GrpcReceiveTrailingMetadata: 5,
  HttpCallResponseHeaders: 6,
  HttpCallResponseTrailers: 7,
} as const;
export const MAX_MAP_TYPE = 7;

export const BufferType = {
  HttpRequestBody: 0,
  HttpResponseBody: 1,
  DownstreamData: 2,
  UpstreamData: 3,
  HttpCallResponseBody: 4,
  GrpcReceiveBuffer: 5,
  VmConfiguration: 6,
  PluginConfiguration: 7,
  ForeignFunctionArguments: 8,
} as const;
export const MAX_BUFFER_TYPE = 8;

export const MetricType = { Counter: 0, Gauge: 1, Histogram: 2 } as const;
export type MetricTypeValue = (typeof MetricType)[keyof typeof MetricType];

export const LogLevel = { Trace: 0, Debug: 1, Info: 2, Warn: 3, Error: 4, Critical: 5 } as const;

export const Action = { Continue: 0, Pause: 1 } as const;

/** Wasm value types as they appear in a function signature. */
export type ValType = 'i32' | 'i64' | 'f32' | 'f64';

export interface Signature {
  params: ValType[];
  results: ValType[];
}

const i32 = 'i32' as const;
const i64 = 'i64' as const;

function sig(params: ValType[], results: ValType[] = [i32]): Signature {
  return { params, results };
}

/** The `env` functions this host implements, with their ABI 0.2.1 signatures. */
export const hostFunctionSignatures: Record<string, Signature> = {
  proxy_log: sig([i32, i32, i32]),
  proxy_get_log_level: sig([i32]),
  proxy_get_property: sig([i32, i32, i32, i32]),
  proxy_set_property: sig([i32, i32, i32, i32]),
  proxy_get_header_map_value: sig([i32, i32, i32, i32, i32]),
  proxy_get_header_map_pairs: sig([i32, i32, i32]),
  proxy_get_header_map_size: sig([i32, i32]),
  proxy_add_header_map_value: sig([i32, i32, i32, i32, i32]),
  proxy_replace_header_map_value: sig([i32, i32, i32, i32, i32]),
  proxy_remove_header_map_value: sig([i32, i32, i32]),
  proxy_get_buffer_bytes: sig([i32, i32, i32, i32, i32]),
  proxy_get_buffer_status: sig([i32, i32, i32]),
  proxy_define_metric: sig([i32, i32, i32, i32]),
  proxy_increment_metric: sig([i32, i64]),
  proxy_record_metric: sig([i32, i64]),
  proxy_get_metric: sig([i32, i32]),
  proxy_set_tick_period_milliseconds: sig([i32]),
  proxy_get_current_time_nanoseconds: sig([i32]),
  proxy_set_effective_context: sig([i32]),
  proxy_done: sig([]),
  proxy_call_foreign_function: sig([i32, i32, i32, i32, i32, i32]),
  proxy_get_shared_data: sig([i32, i32, i32, i32, i32]),
  proxy_set_shared_data: sig([i32, i32, i32, i32, i32]),
};

/** The only WASI function a proxy-wasm module may need from a host for these filters. */
export const wasiFunctionSignatures: Record<string, Signature> = {
  proc_exit: sig([i32], []),
};

/** Exports a proxy-wasm module must have, with their ABI 0.2.1 signatures (checked when present). */
export const moduleExportSignatures: Record<string, Signature> = {
  proxy_abi_version_0_2_1: sig([], []),
  proxy_on_memory_allocate: sig([i32]),
  malloc: sig([i32]),
  _initialize: sig([], []),
  _start: sig([], []),
  proxy_on_context_create: sig([i32, i32], []),
  proxy_on_vm_start: sig([i32, i32]),
  proxy_on_configure: sig([i32, i32]),
  proxy_on_tick: sig([i32], []),
  proxy_on_request_headers: sig([i32, i32, i32]),
  proxy_on_response_headers: sig([i32, i32, i32]),
  proxy_on_new_connection: sig([i32]),
  proxy_on_downstream_data: sig([i32, i32, i32]),
  proxy_on_upstream_data: sig([i32, i32, i32]),
  proxy_on_log: sig([i32], []),
  proxy_on_done: sig([i32]),
  proxy_on_delete: sig([i32], []),
};

export function formatSignature(s: Signature): string {
  return `(${s.params.join(', ')}) -> (${s.results.join(', ')})`;
}

export function sameSignature(a: Signature, b: Signature): boolean {
  return formatSignature(a) === formatSignature(b);
}
