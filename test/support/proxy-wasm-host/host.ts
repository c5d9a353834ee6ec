// A proxy-wasm host for the tests, on Node's WebAssembly API, following proxy-wasm-cpp-host's
// rules wherever a filter could tell the difference:
//
// - Linking (src/v8/v8.cc V8::link): every import must be a function this host provides, with
//   exactly its ABI 0.2.1 signature; imported globals and unknown functions are link errors.
//   The module must export an ABI version marker and an allocator (`malloc` wins over
//   `proxy_on_memory_allocate`, src/wasm.cc getFunctions); `_initialize` (else `_start`) runs
//   once, during which only logging is allowed (startVm's restricted callbacks).
// - Contexts (src/context.cc): a root context per plugin (on_context_create(root, 0), then
//   on_vm_start for the VM's first root, then on_configure); one stream context per HTTP stream
//   or TCP connection (on_context_create(id, root)); streams end with on_done, on_log,
//   on_delete. A trap fails the VM: it is never called again (CHECK_FAIL) and the test sees a
//   WasmTrapError.
// - Memory (src/exports.cc): results are copied into blocks the module allocates; a zero-length
//   result is pointer 0 / size 0 with nothing allocated; out-of-bounds pointers give
//   INVALID_MEMORY_ACCESS.
// - Envoy's side (source/extensions/common/wasm/context.cc): lower-cased header maps, NOT_FOUND
//   for absent headers and properties, filter state under `wasm.<key>` with the prototypes
//   `declare_property` declares, metrics with ids whose low two bits are the type, shared data
//   with compare-and-swap, and CEL through expr_create / expr_evaluate / expr_delete.
import { AgentError, errorMessage } from '../../../lib/errors.js';
import {
  BufferType,
  LogLevel,
  MAX_BUFFER_TYPE,
  MAX_MAP_TYPE,
  MapType,
  MetricType,
  type MetricTypeValue,
  Status,
  formatSignature,
  hostFunctionSignatures,
  sameSignature,
  wasiFunctionSignatures,
  moduleExportSignatures,
} from './abi.js';
import { CelError, type CelValue, type Expr, evaluateCel, parseCel, serializeCelValue } from './cel.js';
import { decodeFlatNode, type FlatNode } from './flatbuffers.js';
import { encodePairs } from './pairs.js';
import { type PropertyMap, type PropertyValue, isPropertyMap, navigate, serializeProperty, splitPropertyPath } from './properties.js';
import { MetricStore, type Stat } from './stats.js';
import { readModuleInterface, type ModuleInterface } from './wasm-binary.js';

export class WasmLinkError extends AgentError {
  static override readonly code: string = 'WASM_LINK';
}

export class WasmTrapError extends AgentError {
  static override readonly code: string = 'WASM_TRAP';
}

export class WasmHostError extends AgentError {
  static override readonly code: string = 'WASM_HOST';
}

export interface LogEntry {
  vmId: string;
  level: number;
  message: string;
}

/** Filter state entry (Envoy CelState) with the prototype it was created with. */
export interface FilterStateEntry {
  value: Uint8Array;
  type: number;
  schema: Uint8Array;
  readonly: boolean;
  span: number;
}

/** WasmType of DeclarePropertyArguments. */
export const WasmType = { Bytes: 0, String: 1, FlatBuffers: 2, Protobuf: 3 } as const;

export interface NodeConfig {
  id: string;
  cluster?: string;
  /** Node metadata as JSON: strings and string maps, as Istio's bootstrap carries it. */
  metadata: PropertyMap;
}

export interface HostOptions {
  node: NodeConfig;
  stats?: MetricStore;
  /** Serve cluster_name, route_name, listener_direction, … top-level as well as under `xds.` (Envoy of the Istio 1.17 era). */
  legacyTopLevelAttributes?: boolean;
  /** Shared between hosts to model one Envoy's VMs. */
  sharedData?: SharedData;
  now?: () => bigint;
}

/** cpp-host src/shared_data.cc: per VM id, key → (value, cas); a CAS of 0 means "unconditional". */
export class SharedData {
  private readonly data = new Map<string, { value: Uint8Array; cas: number }>();
  private nextCas = 1;

  get(vmId: string, key: string): { value: Uint8Array; cas: number } | undefined {
    return this.data.get(`${vmId}\0${key}`);
  }

  set(vmId: string, key: string, value: Uint8Array, cas: number): number {
    const k = `${vmId}\0${key}`;
    const cur = this.data.get(k);
    if (cur !== undefined && cas !== 0 && cas !== cur.cas) return Status.CasMismatch;
    this.data.set(k, { value: Uint8Array.from(value), cas: this.nextCas++ });
    return Status.Ok;
  }
}

/** An Envoy header map: lower-case keys, repeated keys allowed, values as bytes. */
export class HeaderMap {
  readonly entries: [string, Uint8Array][] = [];

  constructor(init: Iterable<[string, string | Uint8Array]> = []) {
    for (const [k, v] of init) this.add(k, v);
  }

  get(key: string): Uint8Array | undefined {
    const k = key.toLowerCase();
    return this.entries.find(([n]) => n === k)?.[1];
  }

  getString(key: string): string | undefined {
    const v = this.get(key);
    return v === undefined ? undefined : Buffer.from(v).toString('utf8');
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  add(key: string, value: string | Uint8Array): void {
    this.entries.push([key.toLowerCase(), typeof value === 'string' ? Buffer.from(value, 'utf8') : Uint8Array.from(value)]);
  }

  /** Envoy setCopy: the first entry takes the value, the others go; absent keys are added. */
  replace(key: string, value: string | Uint8Array): void {
    const k = key.toLowerCase();
    const i = this.entries.findIndex(([n]) => n === k);
    if (i < 0) return this.add(k, value);
    this.entries[i] = [k, typeof value === 'string' ? Buffer.from(value, 'utf8') : Uint8Array.from(value)];
    for (let j = this.entries.length - 1; j > i; j--) if (this.entries[j]![0] === k) this.entries.splice(j, 1);
  }

  remove(key: string): void {
    const k = key.toLowerCase();
    for (let j = this.entries.length - 1; j >= 0; j--) if (this.entries[j]![0] === k) this.entries.splice(j, 1);
  }

  get size(): number {
    return this.entries.length;
  }
}

/** Traffic direction of the listener a filter runs in (envoy.config.core.v3.TrafficDirection). */
export const Direction = { Unspecified: 0, Inbound: 1, Outbound: 2 } as const;

/**
 * One HTTP stream or TCP connection as Envoy knows it, shared by every filter of the chain:
 * headers, attributes (request.*, response.*, connection.*, xds data) and filter state.
 */
export class StreamInfo {
  readonly requestHeaders: HeaderMap;
  readonly responseHeaders = new HeaderMap();
  readonly filterState = new Map<string, FilterStateEntry>();
  /** Envoy attributes for this stream; `request.host` defaults to the :authority header. */
  readonly attributes: PropertyMap;
  /** Filter state of other Envoy filters, read through `filter_state.<name>`. */
  readonly envoyFilterState: Record<string, Uint8Array | string> = {};

  constructor(
    readonly direction: number,
    attributes: PropertyMap = {},
    requestHeaders: Iterable<[string, string | Uint8Array]> = [],
  ) {
    this.attributes = attributes;
    this.requestHeaders = new HeaderMap(requestHeaders);
  }
}

interface Prototype {
  readonly: boolean;
  type: number;
  schema: Uint8Array;
  span: number;
}

interface ForeignContext {
  vm: WasmVm;
  context: ContextBase;
}

type ForeignFunction = (ctx: ForeignContext, args: Uint8Array) => { status: number; result?: Uint8Array };

export interface PluginConfig {
  name?: string;
  rootId?: string;
  configuration?: string | Uint8Array;
  vmConfiguration?: string | Uint8Array;
  direction?: number;
}

abstract class ContextBase {
  constructor(
    readonly id: number,
    readonly vm: WasmVm,
  ) {}
  abstract get root(): RootContext;
  abstract get stream(): StreamInfo | undefined;
}

export class RootContext extends ContextBase {
  tickPeriodMs = 0;
  configured: boolean | undefined;
  private pluginConfiguration: Uint8Array | undefined;

  constructor(
    id: number,
    vm: WasmVm,
    readonly plugin: Required<Omit<PluginConfig, 'vmConfiguration'>>,
  ) {
    super(id, vm);
  }

  get root(): RootContext {
    return this;
  }

  get stream(): StreamInfo | undefined {
    return undefined;
  }

  /** PLUGIN_CONFIGURATION is readable during on_configure only. */
  get configurationBuffer(): Uint8Array | undefined {
    return this.pluginConfiguration;
  }

  configure(): boolean {
    const cfg = this.plugin.configuration;
    this.pluginConfiguration = typeof cfg === 'string' ? Buffer.from(cfg, 'utf8') : cfg;
    try {
      this.configured = this.vm.call(this, 'proxy_on_configure', this.id, this.pluginConfiguration.length) !== 0;
    } finally {
      this.pluginConfiguration = undefined;
    }
    return this.configured;
  }

  /** Fires the root's timer once (Envoy's dispatcher would every tickPeriodMs). */
  tick(): void {
    this.vm.call(this, 'proxy_on_tick', this.id);
  }

  done(): boolean {
    const r = this.vm.call(this, 'proxy_on_done', this.id) !== 0;
    this.vm.call(this, 'proxy_on_delete', this.id);
    this.vm.deleteContext(this.id);
    return r;
  }

  /** A stream context of this plugin for an Envoy stream. */
  createStream(stream: StreamInfo): StreamContext {
    return this.vm.createStream(this, stream);
  }
}

export class StreamContext extends ContextBase {
  constructor(
    id: number,
    vm: WasmVm,
    readonly rootContext: RootContext,
    readonly streamInfo: StreamInfo,
  ) {
    super(id, vm);
  }

  get root(): RootContext {
    return this.rootContext;
  }

  get stream(): StreamInfo {
    return this.streamInfo;
  }

  onRequestHeaders(endOfStream = false): number {
    return this.vm.call(this, 'proxy_on_request_headers', this.id, this.streamInfo.requestHeaders.size, endOfStream ? 1 : 0);
  }

  onResponseHeaders(endOfStream = false): number {
    return this.vm.call(this, 'proxy_on_response_headers', this.id, this.streamInfo.responseHeaders.size, endOfStream ? 1 : 0);
  }

  onNewConnection(): number {
    return this.vm.call(this, 'proxy_on_new_connection', this.id);
  }

  onDownstreamData(size: number, endOfStream = false): number {
    return this.vm.call(this, 'proxy_on_downstream_data', this.id, size, endOfStream ? 1 : 0);
  }

  onUpstreamData(size: number, endOfStream = false): number {
    return this.vm.call(this, 'proxy_on_upstream_data', this.id, size, endOfStream ? 1 : 0);
  }

  /** End of stream as Envoy runs it: on_done, on_log (access-log time), on_delete. */
  end(): void {
    this.vm.call(this, 'proxy_on_done', this.id);
    this.vm.call(this, 'proxy_on_log', this.id);
    this.vm.call(this, 'proxy_on_delete', this.id);
    this.vm.deleteContext(this.id);
  }
}

type Exports = Record<string, unknown> & { memory: WebAssembly.Memory };

/** One Wasm VM (a module instance with its own contexts). */
export class WasmVm {
  readonly logs: LogEntry[] = [];
  failed: string | undefined;
  private instance!: WebAssembly.Instance;
  private exports!: Exports;
  private malloc!: (size: number) => number;
  private restricted = true;
  private readonly contexts = new Map<number, ContextBase>();
  private nextContextId = 1;
  private current: ContextBase | undefined;
  private effectiveId = 0;
  private vmStarted = false;
  private readonly prototypes = new Map<string, Prototype>();
  private readonly metricIds = new Map<number, Stat>();
  private readonly nextMetricId = [0, 1, 2];
  private readonly expressions = new Map<number, Expr>();
  private nextExpressionToken = 0;

  private constructor(
    readonly host: ProxyWasmHost,
    readonly vmId: string,
    readonly moduleInterface: ModuleInterface,
  ) {}

  /** Compiles, links (strictly), instantiates and initialises a module. */
  static async load(host: ProxyWasmHost, bytes: Uint8Array, vmId: string): Promise<WasmVm> {
    const iface = readModuleInterface(bytes);
    const vm = new WasmVm(host, vmId, iface);
    const abi = iface.exports.find((e) => e.name.startsWith('proxy_abi_version_'));
    if (abi === undefined) throw new WasmLinkError('Wasm module is missing the ABI version export (proxy_abi_version_*)');
    if (abi.name !== 'proxy_abi_version_0_2_1') throw new WasmLinkError(`unsupported ABI version ${abi.name.slice('proxy_abi_version_'.length)}; this host implements 0_2_1`);
    for (const e of iface.exports) {
      const want = moduleExportSignatures[e.name];
      if (want !== undefined && e.signature !== undefined && !sameSignature(want, e.signature)) {
        throw new WasmLinkError(`export ${e.name} has signature ${formatSignature(e.signature)}, ABI 0.2.1 wants ${formatSignature(want)}`);
      }
    }
    const imports = vm.linkImports();
    const module = await WebAssembly.compile(bytes);
    vm.instance = await WebAssembly.instantiate(module, imports);
    vm.exports = vm.instance.exports as Exports;
    if (!(vm.exports.memory instanceof WebAssembly.Memory)) throw new WasmLinkError('Wasm module does not export its memory');
    const malloc = vm.exports.malloc ?? vm.exports.proxy_on_memory_allocate;
    if (typeof malloc !== 'function') throw new WasmLinkError('Wasm module is missing malloc function.');
    vm.malloc = malloc as (size: number) => number;
    const init = vm.exports._initialize ?? vm.exports._start;
    try {
      if (typeof init === 'function') (init as () => void)();
    } catch (err) {
      vm.failed = errorMessage(err);
      throw new WasmTrapError(`Wasm VM failed during initialization`, { cause: err });
    }
    vm.restricted = false;
    return vm;
  }

  private linkImports(): WebAssembly.Imports {
    const env: Record<string, (...args: never[]) => unknown> = {};
    const wasi: Record<string, (...args: never[]) => unknown> = {};
    const provided = this.hostFunctions();
    for (const imp of this.moduleInterface.imports) {
      const name = `${imp.module}.${imp.name}`;
      if (imp.kind !== 'function') throw new WasmLinkError(`Failed to load Wasm module due to a missing import: ${name}`);
      const table = imp.module === 'env' ? hostFunctionSignatures : imp.module === 'wasi_snapshot_preview1' || imp.module === 'wasi_unstable' ? wasiFunctionSignatures : undefined;
      const want = table?.[imp.name];
      const fn = imp.module === 'env' ? provided[imp.name] : imp.name === 'proc_exit' ? provided.proc_exit : undefined;
      if (want === undefined || fn === undefined) throw new WasmLinkError(`Failed to load Wasm module due to a missing import: ${name}`);
      if (!sameSignature(want, imp.signature!)) {
        throw new WasmLinkError(`Failed to load Wasm module due to an import type mismatch: ${name}, want: ${formatSignature(imp.signature!)}, but host exports: ${formatSignature(want)}`);
      }
      (imp.module === 'env' ? env : wasi)[imp.name] = this.guard(imp.name, fn);
    }
    return { env, wasi_snapshot_preview1: wasi, wasi_unstable: wasi };
  }

  /** Host functions other than proxy_log may not run during _initialize (cpp-host restricted callbacks). */
  private guard(name: string, fn: (...args: never[]) => unknown): (...args: never[]) => unknown {
    return (...args: never[]) => {
      if (this.restricted && name !== 'proxy_log') {
        throw new WasmHostError(`restricted_callback: ${name} called during _initialize`);
      }
      return fn(...args);
    };
  }

  // --------------------------------------------------------------------------------------------
  // Calling into the module.

  /** Calls an export on behalf of a context; a missing callback returns 0 (Continue / false). */
  call(context: ContextBase, name: string, ...args: number[]): number {
    if (this.failed !== undefined) throw new WasmTrapError(`Wasm VM ${this.vmId} has failed earlier: ${this.failed}`);
    const fn = this.exports[name];
    if (typeof fn !== 'function') return 0;
    const saved = this.current;
    const savedEffective = this.effectiveId;
    this.current = context;
    this.effectiveId = 0;
    try {
      const r = (fn as (...a: number[]) => unknown)(...args);
      return typeof r === 'number' ? r : 0;
    } catch (err) {
      this.failed = `${name}: ${errorMessage(err)}`;
      throw new WasmTrapError(`Wasm VM ${this.vmId} trapped in ${name}`, { cause: err });
    } finally {
      this.current = saved;
      this.effectiveId = savedEffective;
    }
  }

  /** Starts a plugin: its root context, on_vm_start (first root only) and on_configure. */
  startPlugin(plugin: PluginConfig): RootContext {
    const root = new RootContext(this.nextContextId++, this, {
      name: plugin.name ?? plugin.rootId ?? '',
      rootId: plugin.rootId ?? '',
      configuration: plugin.configuration ?? '',
      direction: plugin.direction ?? Direction.Unspecified,
    });
    this.contexts.set(root.id, root);
    this.call(root, 'proxy_on_context_create', root.id, 0);
    if (!this.vmStarted) {
      this.vmStarted = true;
      const vmConfig = plugin.vmConfiguration ?? '';
      this.call(root, 'proxy_on_vm_start', root.id, typeof vmConfig === 'string' ? Buffer.byteLength(vmConfig) : vmConfig.length);
    }
    root.configure();
    return root;
  }

  createStream(root: RootContext, stream: StreamInfo): StreamContext {
    const ctx = new StreamContext(this.nextContextId++, this, root, stream);
    this.contexts.set(ctx.id, ctx);
    this.call(ctx, 'proxy_on_context_create', ctx.id, root.id);
    return ctx;
  }

  deleteContext(id: number): void {
    this.contexts.delete(id);
  }

  /** The context host calls act on: the effective one when the module set it (on_tick), else the caller's. */
  private get context(): ContextBase {
    if (this.effectiveId !== 0) {
      const c = this.contexts.get(this.effectiveId);
      if (c !== undefined) return c;
    }
    if (this.current === undefined) throw new WasmHostError('host call outside of any context');
    return this.current;
  }

  // --------------------------------------------------------------------------------------------
  // Guest memory.

  private memView: { buffer: ArrayBuffer; bytes: Uint8Array; view: DataView } | undefined;

  /** Views of guest memory, re-created when memory grows (growth replaces the buffer). */
  private get views(): { bytes: Uint8Array; view: DataView } {
    const buffer = this.exports.memory.buffer;
    if (this.memView?.buffer !== buffer) this.memView = { buffer, bytes: new Uint8Array(buffer), view: new DataView(buffer) };
    return this.memView;
  }

  private get mem(): Uint8Array {
    return this.views.bytes;
  }

  /** A copy of guest memory, or undefined when the range is out of bounds. */
  read(ptr: number, size: number): Uint8Array | undefined {
    const m = this.mem;
    if (ptr < 0 || size < 0 || ptr + size > m.length) return undefined;
    return m.slice(ptr, ptr + size);
  }

  private readString(ptr: number, size: number): string | undefined {
    const b = this.read(ptr, size);
    return b === undefined ? undefined : Buffer.from(b).toString('utf8');
  }

  private writeU32(ptr: number, v: number): boolean {
    const { bytes, view } = this.views;
    if (ptr <= 0 || ptr + 4 > bytes.length) return false;
    view.setUint32(ptr, v >>> 0, true);
    return true;
  }

  private writeU64(ptr: number, v: bigint): boolean {
    const { bytes, view } = this.views;
    if (ptr <= 0 || ptr + 8 > bytes.length) return false;
    view.setBigUint64(ptr, BigInt.asUintN(64, v), true);
    return true;
  }

  /** Allocates guest memory through the module's allocator and copies `bytes` in; 0 on failure. */
  allocate(bytes: Uint8Array): number {
    const ptr = this.malloc(bytes.length) >>> 0;
    const m = this.mem; // the allocator may have grown memory
    if (ptr === 0 || ptr + bytes.length > m.length) return 0;
    m.set(bytes, ptr);
    return ptr;
  }

  /** WasmBase::copyToPointerSize. */
  private copyOut(bytes: Uint8Array, ptrPtr: number, sizePtr: number): number {
    let ptr = 0;
    if (bytes.length > 0) {
      ptr = this.allocate(bytes);
      if (ptr === 0) return Status.InvalidMemoryAccess;
    }
    if (!this.writeU32(ptrPtr, ptr) || !this.writeU32(sizePtr, bytes.length)) return Status.InvalidMemoryAccess;
    return Status.Ok;
  }

  // --------------------------------------------------------------------------------------------
  // Properties.

  /** The attribute tree visible to the current context (Envoy's CEL activation). */
  private attributeRoot(name: string, ctx: ContextBase, withHeaders = true): PropertyValue | CelValue | undefined {
    const root = ctx.root;
    const stream = ctx.stream;
    const attrs = stream?.attributes ?? {};
    const xds = (): PropertyMap => ({
      node: this.host.nodeAttribute(),
      listener_direction: BigInt(root.plugin.direction),
      cluster_name: attrs.cluster_name,
      cluster_metadata: attrs.cluster_metadata,
      route_name: attrs.route_name,
      route_metadata: attrs.route_metadata,
      upstream_host_metadata: attrs.upstream_host_metadata,
      listener_metadata: attrs.listener_metadata,
    });
    switch (name) {
      case 'plugin_name':
        return root.plugin.name;
      case 'plugin_root_id':
        return root.plugin.rootId;
      case 'plugin_vm_id':
        return this.vmId;
      case 'node':
        return this.host.nodeAttribute();
      case 'xds':
        return xds();
      case 'request': {
        if (stream === undefined) return undefined;
        const req = isPropertyMap(attrs.request) ? { ...attrs.request } : {};
        const authority = stream.requestHeaders.getString(':authority');
        if (req.host === undefined && authority !== undefined) req.host = authority;
        if (withHeaders) req.headers = Object.fromEntries(stream.requestHeaders.entries.map(([k, v]) => [k, Buffer.from(v).toString('utf8')]));
        return req;
      }
      case 'response':
      case 'connection':
      case 'upstream':
      case 'source':
      case 'destination':
        return stream === undefined ? undefined : attrs[name];
      case 'filter_state':
        return stream === undefined ? undefined : Object.fromEntries(Object.entries(stream.envoyFilterState).map(([k, v]) => [k, typeof v === 'string' ? Buffer.from(v) : v]));
      case 'listener_direction':
        return this.host.legacyTopLevelAttributes ? BigInt(root.plugin.direction) : undefined;
      case 'cluster_name':
      case 'cluster_metadata':
      case 'route_name':
      case 'route_metadata':
      case 'listener_metadata':
      case 'upstream_host_metadata':
        return this.host.legacyTopLevelAttributes ? attrs[name] : undefined;
    }
    // Anything else is Wasm filter state, `wasm.<name>`.
    const entry = stream?.filterState.get(`wasm.${name}`);
    if (entry === undefined) return undefined;
    return entry.value;
  }

  /** A declared FlatBuffers filter state entry as a navigable value (Envoy's CEL FlatBuffers wrapper). */
  private filterStateView(name: string, ctx: ContextBase): CelValue | undefined {
    const entry = ctx.stream?.filterState.get(`wasm.${name}`);
    if (entry === undefined || entry.type !== WasmType.FlatBuffers || entry.schema.length === 0) return undefined;
    return flatNodeView(decodeFlatNode(entry.value));
  }

  private getProperty(path: string[], ctx: ContextBase): Uint8Array | undefined {
    const [first, ...rest] = path;
    const root = this.attributeRoot(first!, ctx, rest.length === 0 || rest[0] === 'headers');
    if (root === undefined) return undefined;
    if (rest.length === 0) return root instanceof Uint8Array ? root : serializeProperty(root as PropertyValue);
    if (root instanceof Uint8Array) {
      const view = this.filterStateView(first!, ctx);
      if (view === undefined) return undefined;
      const v = navigate(view as PropertyValue, rest);
      return v === undefined ? undefined : serializeProperty(v);
    }
    const v = navigate(root as PropertyValue, rest);
    return v === undefined ? undefined : serializeProperty(v);
  }

  private setProperty(key: string, value: Uint8Array, ctx: ContextBase): number {
    const stream = ctx.stream;
    if (stream === undefined) return Status.NotFound;
    const fullKey = `wasm.${key}`;
    const existing = stream.filterState.get(fullKey);
    if (existing !== undefined) {
      if (existing.readonly) return Status.NotFound;
      existing.value = Uint8Array.from(value);
      return Status.Ok;
    }
    const p = this.prototypes.get(key) ?? { readonly: false, type: WasmType.Bytes, schema: new Uint8Array(0), span: 0 };
    stream.filterState.set(fullKey, { value: Uint8Array.from(value), ...p });
    return Status.Ok;
  }

  /** CEL attribute lookup for expressions evaluated in the current context. */
  private celActivation(ctx: ContextBase): (name: string) => CelValue | undefined {
    return (name) => {
      const view = this.filterStateView(name, ctx);
      if (view !== undefined) return view;
      const v = this.attributeRoot(name, ctx);
      return v === undefined ? undefined : toCel(v as PropertyValue);
    };
  }

  // --------------------------------------------------------------------------------------------
  // Foreign functions Envoy registers for Wasm (source/extensions/common/wasm/foreign.cc).

  private readonly foreignFunctions: Record<string, ForeignFunction> = {
    declare_property: (fc, args) => {
      const decl = parseDeclarePropertyArguments(args);
      if (decl === undefined || decl.name.length === 0) return { status: Status.BadArgument };
      fc.vm.prototypes.set(decl.name, { readonly: decl.readonly, type: decl.type, schema: decl.schema, span: decl.span });
      return { status: Status.Ok };
    },
    expr_create: (fc, args) => {
      try {
        const expr = parseCel(Buffer.from(args).toString('utf8'));
        const token = fc.vm.nextExpressionToken++;
        fc.vm.expressions.set(token, expr);
        const out = Buffer.alloc(4);
        out.writeUInt32LE(token);
        return { status: Status.Ok, result: out };
      } catch (err) {
        if (err instanceof CelError) return { status: Status.BadArgument };
        throw err;
      }
    },
    expr_evaluate: (fc, args) => {
      if (args.length !== 4) return { status: Status.BadArgument };
      const expr = fc.vm.expressions.get(Buffer.from(args).readUInt32LE(0));
      if (expr === undefined) return { status: Status.NotFound };
      try {
        const out = serializeCelValue(evaluateCel(expr, fc.vm.celActivation(fc.context)));
        return out === null ? { status: Status.SerializationFailure } : { status: Status.Ok, result: out };
      } catch (err) {
        if (err instanceof CelError) return { status: Status.InternalFailure };
        throw err;
      }
    },
    expr_delete: (fc, args) => {
      if (args.length !== 4) return { status: Status.BadArgument };
      fc.vm.expressions.delete(Buffer.from(args).readUInt32LE(0));
      return { status: Status.Ok };
    },
  };

  /** Size of the module's linear memory in bytes. */
  get memorySize(): number {
    return this.exports.memory.buffer.byteLength;
  }

  /** Number of live CEL expressions (tests check the filters release them). */
  get expressionCount(): number {
    return this.expressions.size;
  }

  /** Declared filter state prototypes (declare_property). */
  declaredProperty(name: string): Prototype | undefined {
    return this.prototypes.get(name);
  }

  // --------------------------------------------------------------------------------------------
  // The `env` functions.

  private hostFunctions(): Record<string, (...args: never[]) => unknown> {
    const S = Status;
    const fns = {
      proxy_log: (level: number, ptr: number, size: number): number => {
        const msg = this.readString(ptr, size);
        if (msg === undefined) return S.InvalidMemoryAccess;
        this.logs.push({ vmId: this.vmId, level, message: msg });
        return S.Ok;
      },
      proxy_get_log_level: (ptr: number): number => (this.writeU32(ptr, LogLevel.Trace) ? S.Ok : S.InvalidMemoryAccess),
      proxy_get_property: (pathPtr: number, pathSize: number, valuePtrPtr: number, valueSizePtr: number): number => {
        const raw = this.read(pathPtr, pathSize);
        if (raw === undefined) return S.InvalidMemoryAccess;
        const path = splitPropertyPath(raw);
        if (path === null) return S.NotFound;
        const v = this.getProperty(path, this.context);
        if (v === undefined) return S.NotFound;
        return this.copyOut(v, valuePtrPtr, valueSizePtr);
      },
      proxy_set_property: (keyPtr: number, keySize: number, valuePtr: number, valueSize: number): number => {
        const key = this.readString(keyPtr, keySize);
        const value = this.read(valuePtr, valueSize);
        if (key === undefined || value === undefined) return S.InvalidMemoryAccess;
        return this.setProperty(key.replace(/\0$/, ''), value, this.context);
      },
      proxy_get_header_map_value: (type: number, keyPtr: number, keySize: number, valuePtrPtr: number, valueSizePtr: number): number => {
        if (type > MAX_MAP_TYPE) return S.BadArgument;
        const key = this.readString(keyPtr, keySize);
        if (key === undefined) return S.InvalidMemoryAccess;
        const map = this.headerMap(type);
        if (map === undefined) return S.NotFound;
        const v = map.get(key);
        if (v === undefined) return S.NotFound;
        return this.copyOut(v, valuePtrPtr, valueSizePtr);
      },
      proxy_get_header_map_pairs: (type: number, ptrPtr: number, sizePtr: number): number => {
        if (type > MAX_MAP_TYPE) return S.BadArgument;
        const map = this.headerMap(type);
        if (map === undefined) return S.NotFound;
        return this.copyOut(map.size === 0 ? new Uint8Array(0) : encodePairs(map.entries), ptrPtr, sizePtr);
      },
      proxy_get_header_map_size: (type: number, sizePtr: number): number => {
        if (type > MAX_MAP_TYPE) return S.BadArgument;
        const map = this.headerMap(type);
        if (map === undefined) return S.NotFound;
        const size = map.entries.reduce((n, [k, v]) => n + k.length + v.length, 0);
        return this.writeU32(sizePtr, size) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_add_header_map_value: (type: number, keyPtr: number, keySize: number, valuePtr: number, valueSize: number): number =>
        this.mutateHeader(type, keyPtr, keySize, valuePtr, valueSize, (m, k, v) => m.add(k, v)),
      proxy_replace_header_map_value: (type: number, keyPtr: number, keySize: number, valuePtr: number, valueSize: number): number =>
        this.mutateHeader(type, keyPtr, keySize, valuePtr, valueSize, (m, k, v) => m.replace(k, v)),
      proxy_remove_header_map_value: (type: number, keyPtr: number, keySize: number): number => this.mutateHeader(type, keyPtr, keySize, 0, 0, (m, k) => m.remove(k)),
      proxy_get_buffer_bytes: (type: number, start: number, length: number, ptrPtr: number, sizePtr: number): number => {
        if (type > MAX_BUFFER_TYPE) return S.BadArgument;
        const buffer = this.buffer(type);
        if (buffer === undefined) return S.NotFound;
        if (start > start + length) return S.BadArgument;
        const slice = start > buffer.length ? new Uint8Array(0) : buffer.subarray(start, Math.min(buffer.length, start + length));
        return this.copyOut(slice, ptrPtr, sizePtr);
      },
      proxy_get_buffer_status: (type: number, lengthPtr: number, flagsPtr: number): number => {
        if (type > MAX_BUFFER_TYPE) return S.BadArgument;
        const buffer = this.buffer(type);
        if (buffer === undefined) return S.NotFound;
        return this.writeU32(lengthPtr, buffer.length) && this.writeU32(flagsPtr, 0) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_define_metric: (type: number, namePtr: number, nameSize: number, idPtr: number): number => {
        const name = this.readString(namePtr, nameSize);
        if (name === undefined) return S.InvalidMemoryAccess;
        if (type > MetricType.Histogram) return S.BadArgument;
        const id = this.nextMetricId[type]!;
        this.nextMetricId[type] = id + 4;
        this.metricIds.set(id, this.host.stats.stat(type as MetricTypeValue, name));
        return this.writeU32(idPtr, id) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_increment_metric: (id: number, offset: bigint): number => {
        const stat = this.metricIds.get(id >>> 0);
        if (stat === undefined) return S.NotFound;
        if (stat.type === MetricType.Counter) {
          if (offset <= 0n) return S.BadArgument;
          stat.value += offset;
          return S.Ok;
        }
        if (stat.type === MetricType.Gauge) {
          stat.value += offset;
          return S.Ok;
        }
        return S.BadArgument;
      },
      proxy_record_metric: (id: number, value: bigint): number => {
        const stat = this.metricIds.get(id >>> 0);
        if (stat === undefined) return S.NotFound;
        const v = BigInt.asUintN(64, value);
        if (stat.type === MetricType.Counter) stat.value += v;
        else if (stat.type === MetricType.Gauge) stat.value = v;
        else stat.observe(v);
        return S.Ok;
      },
      proxy_get_metric: (id: number, resultPtr: number): number => {
        const stat = this.metricIds.get(id >>> 0);
        if (stat === undefined) return S.NotFound;
        if (stat.type === MetricType.Histogram) return S.BadArgument;
        return this.writeU64(resultPtr, stat.value) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_set_tick_period_milliseconds: (ms: number): number => {
        this.context.root.tickPeriodMs = ms >>> 0;
        return S.Ok;
      },
      proxy_get_current_time_nanoseconds: (ptr: number): number => (this.writeU64(ptr, this.host.now()) ? S.Ok : S.InvalidMemoryAccess),
      proxy_set_effective_context: (id: number): number => {
        if (!this.contexts.has(id >>> 0)) return S.BadArgument;
        this.effectiveId = id >>> 0;
        return S.Ok;
      },
      proxy_done: (): number => S.NotFound,
      proxy_call_foreign_function: (namePtr: number, nameSize: number, argsPtr: number, argsSize: number, resultsPtr: number, resultsSizePtr: number): number => {
        const name = this.readString(namePtr, nameSize);
        const args = this.read(argsPtr, argsSize);
        if (name === undefined || args === undefined) return S.InvalidMemoryAccess;
        const f = this.foreignFunctions[name];
        if (f === undefined) return S.NotFound;
        const { status, result } = f({ vm: this, context: this.context }, args);
        if (resultsPtr !== 0) {
          // The host allocates the result in guest memory even when the call failed.
          const bytes = result ?? new Uint8Array(0);
          const ptr = bytes.length > 0 ? this.allocate(bytes) : 0;
          if (!this.writeU32(resultsPtr, ptr)) return S.InvalidMemoryAccess;
        }
        if (resultsSizePtr !== 0 && !this.writeU32(resultsSizePtr, result?.length ?? 0)) return S.InvalidMemoryAccess;
        return status;
      },
      proxy_get_shared_data: (keyPtr: number, keySize: number, valuePtrPtr: number, valueSizePtr: number, casPtr: number): number => {
        const key = this.readString(keyPtr, keySize);
        if (key === undefined) return S.InvalidMemoryAccess;
        const entry = this.host.sharedData.get(this.vmId, key);
        if (entry === undefined) return S.NotFound;
        const st = this.copyOut(entry.value, valuePtrPtr, valueSizePtr);
        if (st !== S.Ok) return st;
        return this.writeU32(casPtr, entry.cas) ? S.Ok : S.InvalidMemoryAccess;
      },
      proxy_set_shared_data: (keyPtr: number, keySize: number, valuePtr: number, valueSize: number, cas: number): number => {
        const key = this.readString(keyPtr, keySize);
        const value = this.read(valuePtr, valueSize);
        if (key === undefined || value === undefined) return S.InvalidMemoryAccess;
        return this.host.sharedData.set(this.vmId, key, value, cas >>> 0);
      },
      proc_exit: (code: number): never => {
        throw new WasmHostError(`proc_exit(${code})`);
      },
    };
    return fns;
  }

  private headerMap(type: number): HeaderMap | undefined {
    const s = this.context.stream;
    if (s === undefined) return undefined;
    if (type === MapType.RequestHeaders) return s.requestHeaders;
    if (type === MapType.ResponseHeaders) return s.responseHeaders;
    return undefined;
  }

  private mutateHeader(type: number, keyPtr: number, keySize: number, valuePtr: number, valueSize: number, f: (m: HeaderMap, k: string, v: Uint8Array) => void): number {
    if (type > MAX_MAP_TYPE) return Status.BadArgument;
    const key = this.readString(keyPtr, keySize);
    const value = this.read(valuePtr, valueSize);
    if (key === undefined || value === undefined) return Status.InvalidMemoryAccess;
    const map = this.headerMap(type);
    if (map === undefined) return Status.NotFound;
    f(map, key, value);
    return Status.Ok;
  }

  private buffer(type: number): Uint8Array | undefined {
    if (type === BufferType.PluginConfiguration) return this.context.root.configurationBuffer;
    return undefined;
  }
}

/** One Envoy as far as Wasm filters see it: its node, stats store and VMs. */
export class ProxyWasmHost {
  readonly node: NodeConfig;
  readonly stats: MetricStore;
  readonly legacyTopLevelAttributes: boolean;
  readonly sharedData: SharedData;
  readonly now: () => bigint;
  readonly vms: WasmVm[] = [];

  constructor(options: HostOptions) {
    this.node = options.node;
    this.stats = options.stats ?? new MetricStore();
    this.legacyTopLevelAttributes = options.legacyTopLevelAttributes ?? true;
    this.sharedData = options.sharedData ?? new SharedData();
    this.now = options.now ?? (() => process.hrtime.bigint());
  }

  async loadVm(bytes: Uint8Array, vmId: string): Promise<WasmVm> {
    const vm = await WasmVm.load(this, bytes, vmId);
    this.vms.push(vm);
    return vm;
  }

  nodeAttribute(): PropertyMap {
    return { id: this.node.id, cluster: this.node.cluster ?? '', metadata: this.node.metadata };
  }

  logs(minLevel = LogLevel.Trace): LogEntry[] {
    return this.vms.flatMap((vm) => vm.logs).filter((l) => l.level >= minLevel);
  }
}

function toCel(v: PropertyValue): CelValue {
  if (v === undefined) return null;
  if (typeof v === 'number') return Number.isInteger(v) ? BigInt(v) : String(v);
  if (typeof v === 'string' || typeof v === 'bigint' || typeof v === 'boolean' || v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map(toCel);
  return Object.fromEntries(
    Object.entries(v)
      .filter(([, e]) => e !== undefined)
      .map(([k, e]) => [k, toCel(e)]),
  );
}

/** FlatNode as Envoy's CEL sees it: KeyVal vectors become maps from key to the KeyVal table. */
function flatNodeView(n: FlatNode): CelValue {
  const kv = (m: Record<string, string> | undefined): CelValue => (m === undefined ? null : Object.fromEntries(Object.entries(m).map(([k, v]) => [k, { key: k, value: v }])));
  return {
    name: n.name ?? '',
    namespace: n.namespace ?? '',
    labels: kv(n.labels),
    owner: n.owner ?? '',
    workload_name: n.workload_name ?? '',
    platform_metadata: kv(n.platform_metadata),
    istio_version: n.istio_version ?? '',
    mesh_id: n.mesh_id ?? '',
    app_containers: n.app_containers ?? [],
    cluster_id: n.cluster_id ?? '',
    instance_ips: n.instance_ips ?? [],
  };
}

/** envoy.source.extensions.common.wasm.DeclarePropertyArguments {name=1, readonly=2, type=3, schema=4, span=5}. */
export function parseDeclarePropertyArguments(b: Uint8Array): { name: string; readonly: boolean; type: number; schema: Uint8Array; span: number } | undefined {
  const out = { name: '', readonly: false, type: 0, schema: new Uint8Array(0), span: 0 };
  let pos = 0;
  const varint = (): number => {
    let v = 0;
    let shift = 0;
    for (;;) {
      if (pos >= b.length) throw new Error('truncated');
      const x = b[pos++]!;
      v += (x & 0x7f) * 2 ** shift;
      if (!(x & 0x80)) return v;
      shift += 7;
    }
  };
  try {
    while (pos < b.length) {
      const tag = varint();
      const field = Math.floor(tag / 8);
      const wt = tag & 7;
      if (wt === 0) {
        const v = varint();
        if (field === 2) out.readonly = v !== 0;
        else if (field === 3) out.type = v;
        else if (field === 5) out.span = v;
      } else if (wt === 2) {
        const n = varint();
        if (pos + n > b.length) return undefined;
        const body = b.slice(pos, pos + n);
        pos += n;
        if (field === 1) out.name = Buffer.from(body).toString('utf8');
        else if (field === 4) out.schema = body;
      } else if (wt === 1) pos += 8;
      else if (wt === 5) pos += 4;
      else return undefined;
    }
  } catch {
    return undefined;
  }
  return pos === b.length ? out : undefined;
}
