// Istio's telemetry filter chain in a stand-in Envoy: metadata exchange then stats, configured as
// istiod (1.17) or istio/proxy's e2e tests configure them, on one listener direction. A request
// is driven the way Envoy's HTTP connection manager drives filters: request headers through the
// chain in order, response headers in reverse order, then every filter's on_done, on_log and
// on_delete.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { projectRoot } from '../paths.js';
import { Direction, ProxyWasmHost, type RootContext, type StreamContext, StreamInfo, type HostOptions } from './host.js';
import type { PropertyMap } from './properties.js';

export const metadataExchangeWasm = resolve(projectRoot, 'dist/wasm-filters/metadata-exchange-filter.wasm');
export const statsWasm = resolve(projectRoot, 'dist/wasm-filters/stats-filter.wasm');

const cache = new Map<string, Uint8Array>();

export async function filterBytes(path: string): Promise<Uint8Array> {
  let b = cache.get(path);
  if (b === undefined) {
    b = new Uint8Array(await readFile(path));
    cache.set(path, b);
  }
  return b;
}

export interface SidecarOptions extends Omit<HostOptions, 'node'> {
  nodeId: string;
  metadata: PropertyMap;
  direction: typeof Direction.Inbound | typeof Direction.Outbound;
  /** Metadata exchange configuration JSON; undefined leaves the filter out. */
  mxConfig?: string | undefined;
  /** Stats configuration JSON; undefined leaves the filter out. */
  statsConfig?: string | undefined;
}

export class Sidecar {
  private constructor(
    readonly host: ProxyWasmHost,
    readonly direction: number,
    readonly filters: RootContext[],
  ) {}

  static async start(opts: SidecarOptions): Promise<Sidecar> {
    const host = new ProxyWasmHost({ ...opts, node: { id: opts.nodeId, metadata: opts.metadata } });
    const filters: RootContext[] = [];
    if (opts.mxConfig !== undefined) {
      const vm = await host.loadVm(await filterBytes(metadataExchangeWasm), 'mx');
      filters.push(vm.startPlugin({ name: 'istio.metadata_exchange', configuration: opts.mxConfig, direction: opts.direction }));
    }
    if (opts.statsConfig !== undefined) {
      const rootId = opts.direction === Direction.Outbound ? 'stats_outbound' : 'stats_inbound';
      const vm = await host.loadVm(await filterBytes(statsWasm), rootId);
      filters.push(vm.startPlugin({ name: 'istio.stats', rootId, configuration: opts.statsConfig, direction: opts.direction }));
    }
    return new Sidecar(host, opts.direction, filters);
  }

  get stats(): RootContext | undefined {
    return this.filters.find((f) => f.plugin.rootId.startsWith('stats_'));
  }

  /** A new HTTP stream through this sidecar's filters. */
  stream(attributes: PropertyMap, requestHeaders: [string, string | Uint8Array][]): ChainStream {
    const info = new StreamInfo(this.direction, attributes, requestHeaders);
    return new ChainStream(
      info,
      this.filters.map((f) => f.createStream(info)),
    );
  }

  /** A new TCP connection through this sidecar's filters. */
  connection(attributes: PropertyMap): ChainStream {
    const info = new StreamInfo(this.direction, attributes);
    return new ChainStream(
      info,
      this.filters.map((f) => f.createStream(info)),
    );
  }

  tick(): void {
    for (const f of this.filters) f.tick();
  }
}

export class ChainStream {
  constructor(
    readonly info: StreamInfo,
    readonly contexts: StreamContext[],
  ) {}

  requestHeaders(endOfStream = false): void {
    for (const c of this.contexts) c.onRequestHeaders(endOfStream);
  }

  responseHeaders(responseHeaders: [string, string | Uint8Array][], endOfStream = false): void {
    for (const [k, v] of responseHeaders) this.info.responseHeaders.add(k, v);
    for (const c of [...this.contexts].reverse()) c.onResponseHeaders(endOfStream);
  }

  newConnection(): void {
    for (const c of this.contexts) c.onNewConnection();
  }

  downstreamData(size: number): void {
    for (const c of this.contexts) c.onDownstreamData(size);
  }

  upstreamData(size: number): void {
    for (const c of [...this.contexts].reverse()) c.onUpstreamData(size);
  }

  end(): void {
    for (const c of this.contexts) c.end();
  }
}
