// Istio's telemetry filters as proxy-wasm modules (wasm-filters/, built to dist/wasm-filters/):
// their size, the cost of bringing a VM up (compile, instantiate, _initialize, start and
// configure the plugin), and the time one request spends in metadata exchange + stats, measured
// in the test host (test/support/proxy-wasm-host) on Node's V8 — the engine Envoy embeds, but
// with a JavaScript host: host calls cost more here than Envoy's C++ host functions.
import { readFileSync } from 'node:fs';
import { ProxyWasmHost, Sidecar, metadataExchangeWasm, statsWasm } from '../test/support/proxy-wasm-host/index.js';
import { clientNodeMetadata, clientOptions, exchange, serverOptions } from '../test/wasm-filters/fixtures.js';
import type { BenchResult } from './result.js';
import { median, percentile } from './stats.js';

async function vmStartTimes(path: string, rootId: string, configuration: string, n: number): Promise<number[]> {
  const bytes = new Uint8Array(readFileSync(path));
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const host = new ProxyWasmHost({ node: { id: 'client', metadata: clientNodeMetadata } });
    const t0 = process.hrtime.bigint();
    const vm = await host.loadVm(bytes, rootId || 'mx');
    vm.startPlugin({ rootId, configuration, direction: 2 });
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return out;
}

function fmt(xs: number[], digits: number): string[] {
  const s = [...xs].sort((a, b) => a - b);
  return [median(xs).toFixed(digits), percentile(s, 90).toFixed(digits)];
}

export async function wasmFiltersBench(): Promise<BenchResult> {
  const mxSize = readFileSync(metadataExchangeWasm).length;
  const statsSize = readFileSync(statsWasm).length;
  const mxStart = await vmStartTimes(metadataExchangeWasm, '', '{"max_peer_cache_size": 20}', 30);
  const statsStart = await vmStartTimes(statsWasm, 'stats_outbound', '{}', 30);

  const client = await Sidecar.start(clientOptions());
  const server = await Sidecar.start(serverOptions());
  for (let i = 0; i < 500; i++) exchange(client, server); // warm-up (JIT, metric cache)
  const memoryBefore = [...client.host.vms, ...server.host.vms].map((v) => v.memorySize);
  const perRequest: number[] = [];
  for (let i = 0; i < 5000; i++) {
    const t0 = process.hrtime.bigint();
    exchange(client, server);
    perRequest.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  const memoryAfter = [...client.host.vms, ...server.host.vms].map((v) => v.memorySize);
  const kib = (xs: number[]) => xs.map((x) => `${x / 1024}`).join('/');

  // The same exchange with no filters: what the harness itself costs.
  const bareClient = await Sidecar.start(clientOptions({ mxConfig: undefined, statsConfig: undefined }));
  const bareServer = await Sidecar.start(serverOptions({ mxConfig: undefined, statsConfig: undefined }));
  for (let i = 0; i < 500; i++) exchange(bareClient, bareServer);
  const bare: number[] = [];
  for (let i = 0; i < 5000; i++) {
    const t0 = process.hrtime.bigint();
    exchange(bareClient, bareServer);
    bare.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  const perSidecar = perRequest.map((x, i) => (x - (bare[i] ?? 0)) / 2);

  return {
    title: 'Wasm telemetry filters (proxy-wasm, in the test host)',
    rows: [
      ['measure', 'p50', 'p90', 'unit'],
      ['metadata-exchange-filter.wasm size', `${(mxSize / 1024).toFixed(1)}`, '', 'KiB'],
      ['stats-filter.wasm size', `${(statsSize / 1024).toFixed(1)}`, '', 'KiB'],
      ['MX VM up: compile + instantiate + _initialize + configure', ...fmt(mxStart, 2), 'ms'],
      ['stats VM up: compile + instantiate + _initialize + configure', ...fmt(statsStart, 2), 'ms'],
      ['one request, client + server sidecars (MX + stats each, 4 VMs)', ...fmt(perRequest, 1), 'µs'],
      ['the same request with no filters (harness only)', ...fmt(bare, 1), 'µs'],
      ['MX + stats per sidecar per request (difference / 2)', ...fmt(perSidecar, 1), 'µs'],
    ],
    notes: [`Linear memory of the 4 VMs before / after 5000 requests: ${kib(memoryBefore)} → ${kib(memoryAfter)} KiB (the incremental GC keeps it flat).`],
  };
}
