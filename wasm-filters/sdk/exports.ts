// The module's ABI 0.2.1 exports. Each filter's entry file re-exports this module
// (`export * from '../sdk/exports'`), so both .wasm files expose the same surface; callbacks
// for contexts this module does not know are ignored rather than trapping, because a trap
// fails the whole VM (and with it an Envoy worker's filter chain).
import { Action } from './abi';
import { createContext, deleteContext, rootContext, streamContext } from './context';
import { allocateForHost } from './memory';
// Compiled in for `asc --use abort=wasm-filters/sdk/runtime/proxyAbort`.
import './runtime';

export function proxy_abi_version_0_2_1(): void {}

export function proxy_on_memory_allocate(size: usize): usize {
  return allocateForHost(size);
}

export function proxy_on_context_create(contextId: u32, parentContextId: u32): void {
  createContext(contextId, parentContextId);
}

export function proxy_on_vm_start(rootContextId: u32, vmConfigurationSize: u32): bool {
  const root = rootContext(rootContextId);
  return root === null ? true : root.onVmStart(vmConfigurationSize);
}

export function proxy_on_configure(rootContextId: u32, pluginConfigurationSize: u32): bool {
  const root = rootContext(rootContextId);
  return root === null ? true : root.onConfigure(pluginConfigurationSize);
}

export function proxy_on_tick(rootContextId: u32): void {
  const root = rootContext(rootContextId);
  if (root !== null) root.onTick();
}

export function proxy_on_request_headers(contextId: u32, headers: u32, endOfStream: bool): u32 {
  const stream = streamContext(contextId);
  return stream === null ? Action.Continue : stream.onRequestHeaders(headers, endOfStream);
}

export function proxy_on_response_headers(contextId: u32, headers: u32, endOfStream: bool): u32 {
  const stream = streamContext(contextId);
  return stream === null ? Action.Continue : stream.onResponseHeaders(headers, endOfStream);
}

export function proxy_on_new_connection(contextId: u32): u32 {
  const stream = streamContext(contextId);
  return stream === null ? Action.Continue : stream.onNewConnection();
}

export function proxy_on_downstream_data(contextId: u32, size: u32, endOfStream: bool): u32 {
  const stream = streamContext(contextId);
  return stream === null ? Action.Continue : stream.onDownstreamData(size, endOfStream);
}

export function proxy_on_upstream_data(contextId: u32, size: u32, endOfStream: bool): u32 {
  const stream = streamContext(contextId);
  return stream === null ? Action.Continue : stream.onUpstreamData(size, endOfStream);
}

export function proxy_on_log(contextId: u32): void {
  const stream = streamContext(contextId);
  if (stream !== null) stream.onLog();
}

export function proxy_on_done(contextId: u32): bool {
  const stream = streamContext(contextId);
  if (stream !== null) return stream.onDone();
  const root = rootContext(contextId);
  return root === null ? true : root.onDone();
}

export function proxy_on_delete(contextId: u32): void {
  deleteContext(contextId);
}
