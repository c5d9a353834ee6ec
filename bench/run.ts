// `npm run bench`: runs every benchmark and prints its table. Ratios are measured side by side
// in one run (never compared against numbers from another machine or run).
import { bootstrapBench } from './bootstrap.js';
import { envoyBench } from './supervision.js';
import { sdsBench } from './sds.js';
import { iptablesBench } from './iptables.js';
import { startupBench } from './startup.js';
import { statusBench } from './status.js';
import { xdsBench } from './xds.js';
import { wasmFiltersBench } from './wasm-filters.js';
import type { BenchResult } from './result.js';

const benches: (() => Promise<BenchResult>)[] = [startupBench, bootstrapBench, envoyBench, sdsBench, xdsBench, statusBench, iptablesBench, wasmFiltersBench];

for (const b of benches) {
  const r = await b();
  process.stdout.write(`\n## ${r.title}\n\n`);
  const [head, ...body] = r.rows;
  process.stdout.write(`| ${head!.join(' | ')} |\n|${head!.map(() => '---').join('|')}|\n`);
  for (const row of body) process.stdout.write(`| ${row.join(' | ')} |\n`);
  for (const n of r.notes ?? []) process.stdout.write(`\n${n}\n`);
}
