// Compiles the Istio telemetry filters in wasm-filters/ (AssemblyScript) to proxy-wasm modules,
// run by `npm run build`:
//   dist/wasm-filters/metadata-exchange-filter.wasm   (istio.metadata_exchange)
//   dist/wasm-filters/stats-filter.wasm               (istio.stats, root ids stats_outbound / stats_inbound)
// the names the proxyv2 image used under /etc/istio/extensions/ through Istio 1.17.
//
// Flags: the incremental GC keeps a long-lived filter's
// memory flat; `--use abort=` routes AssemblyScript's abort to proxy_log + trap instead of an
// `env.abort` import no proxy-wasm host provides; `--exportStart _initialize` turns the start
// section into the `_initialize` export hosts call once after instantiation (a start section
// would run before the host has any context); no WASI import is produced.
import { mkdirSync } from 'node:fs';
import asc from 'assemblyscript/asc';

export const filters = [
  { entry: 'wasm-filters/metadata-exchange/main.ts', out: 'dist/wasm-filters/metadata-exchange-filter.wasm' },
  { entry: 'wasm-filters/stats/main.ts', out: 'dist/wasm-filters/stats-filter.wasm' },
];

mkdirSync('dist/wasm-filters', { recursive: true });
for (const f of filters) {
  const { error, stderr } = await asc.main([
    f.entry,
    '--outFile',
    f.out,
    '--runtime',
    'incremental',
    '--optimizeLevel',
    '3',
    '--shrinkLevel',
    '1',
    '--converge',
    '--noAssert',
    '--use',
    'abort=wasm-filters/sdk/runtime/proxyAbort',
    '--exportStart',
    '_initialize',
  ]);
  if (error) {
    process.stderr.write(stderr.toString());
    throw new Error(`asc ${f.entry}: ${error.message}`);
  }
}
