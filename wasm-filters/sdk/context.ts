// Contexts as proxy-wasm defines them: one root context per plugin configuration (selected by
// the plugin's root id) and one stream context per HTTP stream or TCP connection, created by
// the host with the root as parent. Filters subclass these and register a factory per root id,
// as the C++ SDK's RegisterContextFactory does.
import { Action } from './abi';
import { getPropertyString, logWarn } from './host';

export class RootContext {
  constructor(
    public readonly id: u32,
    public readonly rootId: string,
  ) {}

  onVmStart(_vmConfigurationSize: u32): bool {
    return true;
  }

  /** Returning false makes Envoy reject the plugin; the Istio filters never do. */
  onConfigure(_pluginConfigurationSize: u32): bool {
    return true;
  }

  onTick(): void {}

  onDone(): bool {
    return true;
  }

  onDelete(): void {}

  /** The stream context for a new HTTP stream or TCP connection under this root. */
  createStream(id: u32): StreamContext {
    return new StreamContext(id, this);
  }
}

export class StreamContext {
  constructor(
    public readonly id: u32,
    public readonly root: RootContext,
  ) {}

  onRequestHeaders(_headers: u32, _endOfStream: bool): u32 {
    return Action.Continue;
  }

  onResponseHeaders(_headers: u32, _endOfStream: bool): u32 {
    return Action.Continue;
  }

  onNewConnection(): u32 {
    return Action.Continue;
  }

  onDownstreamData(_size: u32, _endOfStream: bool): u32 {
    return Action.Continue;
  }

  onUpstreamData(_size: u32, _endOfStream: bool): u32 {
    return Action.Continue;
  }

  onLog(): void {}

  onDone(): bool {
    return true;
  }

  onDelete(): void {}
}

type RootFactory = (id: u32, rootId: string) => RootContext;

const rootFactories = new Map<string, RootFactory>();
const roots = new Map<u32, RootContext>();
const streams = new Map<u32, StreamContext>();

/** Registers the root context factory for a root id ("" for a plugin configured without one). */
export function registerRootContext(rootId: string, factory: RootFactory): void {
  rootFactories.set(rootId, factory);
}

export function createContext(id: u32, parentId: u32): void {
  if (parentId == 0) {
    // The root id is the plugin's `root_id`; the host serves it as property `plugin_root_id`.
    const rootIdProperty = getPropertyString(['plugin_root_id']);
    const rootId = rootIdProperty === null ? '' : rootIdProperty;
    let root: RootContext;
    if (rootFactories.has(rootId)) {
      root = rootFactories.get(rootId)(id, rootId);
    } else {
      logWarn('no root context registered for root_id "' + rootId + '"; using an inert one');
      root = new RootContext(id, rootId);
    }
    roots.set(id, root);
    return;
  }
  if (!roots.has(parentId)) {
    logWarn('stream context ' + id.toString() + ' has unknown root context ' + parentId.toString());
    return;
  }
  streams.set(id, roots.get(parentId).createStream(id));
}

export function rootContext(id: u32): RootContext | null {
  return roots.has(id) ? roots.get(id) : null;
}

export function streamContext(id: u32): StreamContext | null {
  return streams.has(id) ? streams.get(id) : null;
}

/** Whether a stream context is still alive (the stats filter's tick skips deleted ones). */
export function hasStreamContext(id: u32): bool {
  return streams.has(id);
}

export function deleteContext(id: u32): void {
  if (streams.has(id)) {
    streams.get(id).onDelete();
    streams.delete(id);
    return;
  }
  if (roots.has(id)) {
    roots.get(id).onDelete();
    roots.delete(id);
  }
}
