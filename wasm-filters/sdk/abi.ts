// The proxy-wasm ABI 0.2.1 host functions these filters import, with the enums they take.
// Names and signatures follow proxy-wasm/spec abi-versions/v0.2.1/README.md; a host refuses
// to load a module with an import it does not know or whose signature differs
// (proxy-wasm-cpp-host src/v8/v8.cc V8::link), so nothing beyond this list is declared.

/** proxy_status_t */
export namespace Status {
  export const Ok: u32 = 0;
  export const NotFound: u32 = 1;
  export const BadArgument: u32 = 2;
  export const SerializationFailure: u32 = 3;
  export const ParseFailure: u32 = 4;
  export const InvalidMemoryAccess: u32 = 6;
  export const Empty: u32 = 7;
  export const CasMismatch: u32 = 8;
  export const InternalFailure: u32 = 10;
  export const Unimplemented: u32 = 12;
}

/** proxy_log_level_t */
export namespace LogLevel {
  export const Trace: u32 = 0;
  export const Debug: u32 = 1;
  export const Info: u32 = 2;
  export const Warn: u32 = 3;
  export const Error: u32 = 4;
  export const Critical: u32 = 5;
}

/** proxy_map_type_t (header maps) */
export namespace MapType {
  export const HttpRequestHeaders: u32 = 0;
  export const HttpRequestTrailers: u32 = 1;
  export const HttpResponseHeaders: u32 = 2;
  export const HttpResponseTrailers: u32 = 3;
}

/** proxy_buffer_type_t */
export namespace BufferType {
  export const HttpRequestBody: u32 = 0;
  export const HttpResponseBody: u32 = 1;
  export const DownstreamData: u32 = 2;
  export const UpstreamData: u32 = 3;
  export const VmConfiguration: u32 = 6;
  export const PluginConfiguration: u32 = 7;
  export const ForeignFunctionArguments: u32 = 8;
}

/** proxy_metric_type_t */
export namespace MetricType {
  export const Counter: u32 = 0;
  export const Gauge: u32 = 1;
  export const Histogram: u32 = 2;
}

/** proxy_action_t, returned by the stream callbacks. */
export namespace Action {
  export const Continue: u32 = 0;
  export const Pause: u32 = 1;
}

// @ts-ignore: decorator
@external("env", "proxy_log")
export declare function proxy_log(level: u32, messagePtr: usize, messageSize: usize): u32;

// @ts-ignore: decorator
@external("env", "proxy_get_property")
export declare function proxy_get_property(pathPtr: usize, pathSize: usize, returnValuePtr: usize, returnValueSize: usize): u32;

// @ts-ignore: decorator
@external("env", "proxy_set_property")
export declare function proxy_set_property(pathPtr: usize, pathSize: usize, valuePtr: usize, valueSize: usize): u32;

// @ts-ignore: decorator
@external("env", "proxy_get_header_map_value")
export declare function proxy_get_header_map_value(mapType: u32, keyPtr: usize, keySize: usize, returnValuePtr: usize, returnValueSize: usize): u32;

// @ts-ignore: decorator
@external("env", "proxy_replace_header_map_value")
export declare function proxy_replace_header_map_value(mapType: u32, keyPtr: usize, keySize: usize, valuePtr: usize, valueSize: usize): u32;

// @ts-ignore: decorator
@external("env", "proxy_remove_header_map_value")
export declare function proxy_remove_header_map_value(mapType: u32, keyPtr: usize, keySize: usize): u32;

// @ts-ignore: decorator
@external("env", "proxy_get_buffer_bytes")
export declare function proxy_get_buffer_bytes(bufferType: u32, start: u32, maxSize: u32, returnBufferData: usize, returnBufferSize: usize): u32;

// @ts-ignore: decorator
@external("env", "proxy_define_metric")
export declare function proxy_define_metric(metricType: u32, namePtr: usize, nameSize: usize, returnMetricId: usize): u32;

// @ts-ignore: decorator
@external("env", "proxy_increment_metric")
export declare function proxy_increment_metric(metricId: u32, offset: i64): u32;

// @ts-ignore: decorator
@external("env", "proxy_record_metric")
export declare function proxy_record_metric(metricId: u32, value: u64): u32;

// @ts-ignore: decorator
@external("env", "proxy_set_tick_period_milliseconds")
export declare function proxy_set_tick_period_milliseconds(millis: u32): u32;

// @ts-ignore: decorator
@external("env", "proxy_set_effective_context")
export declare function proxy_set_effective_context(contextId: u32): u32;

// @ts-ignore: decorator
@external("env", "proxy_call_foreign_function")
export declare function proxy_call_foreign_function(
  namePtr: usize,
  nameSize: usize,
  argumentsPtr: usize,
  argumentsSize: usize,
  returnResultsPtr: usize,
  returnResultsSize: usize,
): u32;
