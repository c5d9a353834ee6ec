// Typed wrappers over the ABI imports (sdk/abi.ts). Strings cross the boundary as UTF-8;
// binary values (peer metadata, flatbuffers, protobuf) stay in ArrayBuffers.
import {
  BufferType,
  LogLevel,
  Status,
  proxy_call_foreign_function,
  proxy_define_metric,
  proxy_get_buffer_bytes,
  proxy_get_header_map_value,
  proxy_get_property,
  proxy_increment_metric,
  proxy_log,
  proxy_record_metric,
  proxy_remove_header_map_value,
  proxy_replace_header_map_value,
  proxy_set_effective_context,
  proxy_set_property,
  proxy_set_tick_period_milliseconds,
} from './abi';
import { clearReturnSlots, returnSlots, takeReturnedBytes } from './memory';

export function log(level: u32, message: string): void {
  const bytes = String.UTF8.encode(message);
  proxy_log(level, changetype<usize>(bytes), bytes.byteLength);
}

export function logDebug(message: string): void {
  log(LogLevel.Debug, message);
}

export function logWarn(message: string): void {
  log(LogLevel.Warn, message);
}

export function logCritical(message: string): void {
  log(LogLevel.Critical, message);
}

/**
 * A property path as the C++ SDK builds it: every segment followed by a NUL byte
 * (proxy-wasm-cpp-sdk proxy_wasm_api.h getProperty), e.g. `node\0metadata\0LABELS\0`.
 */
export function propertyPath(segments: string[]): ArrayBuffer {
  let size = 0;
  const encoded = new Array<ArrayBuffer>(segments.length);
  for (let i = 0; i < segments.length; i++) {
    const e = String.UTF8.encode(segments[i]);
    encoded[i] = e;
    size += e.byteLength + 1;
  }
  const out = new ArrayBuffer(size);
  let at = changetype<usize>(out);
  for (let i = 0; i < encoded.length; i++) {
    const e = encoded[i];
    memory.copy(at, changetype<usize>(e), e.byteLength);
    at += e.byteLength;
    store<u8>(at, 0);
    at += 1;
  }
  return out;
}

/** The raw bytes of a property, or null when the host has none (NOT_FOUND or any error). */
export function getProperty(segments: string[]): ArrayBuffer | null {
  const path = propertyPath(segments);
  clearReturnSlots();
  const status = proxy_get_property(changetype<usize>(path), path.byteLength, returnSlots, returnSlots + 4);
  if (status != Status.Ok) return null;
  return takeReturnedBytes();
}

export function getPropertyString(segments: string[]): string | null {
  const bytes = getProperty(segments);
  if (bytes === null) return null;
  return String.UTF8.decode(bytes);
}

/** An int64 property (Envoy serialises int64/uint64/duration as 8 little-endian bytes). */
export class Int64Property {
  constructor(
    public found: bool,
    public value: i64,
  ) {}
}

export function getPropertyInt64(segments: string[]): Int64Property {
  const bytes = getProperty(segments);
  // The C++ SDK's getValue<T> requires exactly sizeof(T) bytes.
  if (bytes === null || bytes.byteLength != 8) return new Int64Property(false, 0);
  return new Int64Property(true, load<i64>(changetype<usize>(bytes)));
}

/** A bool property: -1 absent (or not one byte), 0 false, 1 true. */
export function getPropertyBool(segments: string[]): i32 {
  const bytes = getProperty(segments);
  if (bytes === null || bytes.byteLength != 1) return -1;
  return load<u8>(changetype<usize>(bytes)) != 0 ? 1 : 0;
}

/** Sets filter state through proxy_set_property with a plain key, as the C++ SDK's setFilterState does. */
export function setProperty(key: string, value: ArrayBuffer): u32 {
  const k = String.UTF8.encode(key);
  return proxy_set_property(changetype<usize>(k), k.byteLength, changetype<usize>(value), value.byteLength);
}

/** A header value as bytes, or null when the header is absent. */
export function getHeaderBytes(mapType: u32, key: string): ArrayBuffer | null {
  const k = String.UTF8.encode(key);
  clearReturnSlots();
  const status = proxy_get_header_map_value(mapType, changetype<usize>(k), k.byteLength, returnSlots, returnSlots + 4);
  if (status != Status.Ok) return null;
  return takeReturnedBytes();
}

export function getHeader(mapType: u32, key: string): string | null {
  const bytes = getHeaderBytes(mapType, key);
  if (bytes === null) return null;
  return String.UTF8.decode(bytes);
}

export function replaceHeaderBytes(mapType: u32, key: string, value: ArrayBuffer): u32 {
  const k = String.UTF8.encode(key);
  return proxy_replace_header_map_value(mapType, changetype<usize>(k), k.byteLength, changetype<usize>(value), value.byteLength);
}

export function removeHeader(mapType: u32, key: string): u32 {
  const k = String.UTF8.encode(key);
  return proxy_remove_header_map_value(mapType, changetype<usize>(k), k.byteLength);
}

export function getBufferBytes(bufferType: u32, start: u32, maxSize: u32): ArrayBuffer | null {
  clearReturnSlots();
  const status = proxy_get_buffer_bytes(bufferType, start, maxSize, returnSlots, returnSlots + 4);
  if (status != Status.Ok) return null;
  return takeReturnedBytes();
}

export function getPluginConfiguration(size: u32): ArrayBuffer {
  if (size == 0) return new ArrayBuffer(0);
  const bytes = getBufferBytes(BufferType.PluginConfiguration, 0, size);
  return bytes === null ? new ArrayBuffer(0) : bytes;
}

/** Defines (or looks up) a metric; returns its id, or -1 when the host refuses. */
export function defineMetric(metricType: u32, name: string): i64 {
  const n = String.UTF8.encode(name);
  store<u32>(returnSlots, 0);
  const status = proxy_define_metric(metricType, changetype<usize>(n), n.byteLength, returnSlots);
  if (status != Status.Ok) return -1;
  return <i64>load<u32>(returnSlots);
}

export function recordMetric(metricId: u32, value: u64): u32 {
  return proxy_record_metric(metricId, value);
}

export function incrementMetric(metricId: u32, offset: i64): u32 {
  return proxy_increment_metric(metricId, offset);
}

export function setTickPeriodMilliseconds(millis: u32): u32 {
  return proxy_set_tick_period_milliseconds(millis);
}

export function setEffectiveContext(contextId: u32): u32 {
  return proxy_set_effective_context(contextId);
}

export class ForeignResult {
  constructor(
    public status: u32,
    public data: ArrayBuffer,
  ) {}
}

/** Calls a host foreign function (Envoy: declare_property, expr_create, expr_evaluate, expr_delete). */
export function callForeignFunction(name: string, args: ArrayBuffer, wantResult: bool): ForeignResult {
  const n = String.UTF8.encode(name);
  clearReturnSlots();
  const status = proxy_call_foreign_function(changetype<usize>(n), n.byteLength, changetype<usize>(args), args.byteLength, wantResult ? returnSlots : 0, wantResult ? returnSlots + 4 : 0);
  if (!wantResult) return new ForeignResult(status, new ArrayBuffer(0));
  // The host may have allocated a result even on failure; always release it.
  const data = takeReturnedBytes();
  return new ForeignResult(status, data);
}
