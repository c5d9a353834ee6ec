// The repository's shape, checked on its sources: arrows between top-level folders point one way
// (docs/architecture.md draws them), and no module imports itself back through a cycle. Every
// relative import counts, static or lazy (`await import(…)`, `typeof import(…)`), type-only ones
// too: a cycle of types today is a cycle of values after the next refactor.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import t from 'tap';
import { projectRoot } from './support/paths.js';

/** Which top-level folders each folder may import from (besides itself). */
const ALLOWED: Record<string, readonly string[]> = {
  lib: [],
  config: ['lib'],
  iptables: ['lib'],
  bootstrap: ['config', 'lib'],
  envoy: ['config', 'lib'],
  agent: ['bootstrap', 'envoy', 'config', 'iptables', 'lib'],
  test: ['agent', 'bootstrap', 'envoy', 'config', 'iptables', 'lib'],
  bench: ['test', 'agent', 'bootstrap', 'envoy', 'config', 'iptables', 'lib'],
};

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"](\.{1,2}\/[^'"]+)['"]/g;

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(projectRoot, dir), { withFileTypes: true })) {
    const rel = join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(rel));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

/** file → the repository files it imports (relative specifiers, `.js` mapped back to `.ts`). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const folder of Object.keys(ALLOWED)) {
    for (const file of sources(folder)) {
      const text = readFileSync(join(projectRoot, file), 'utf8');
      const deps = [...text.matchAll(IMPORT)].map((m) => normalize(join(dirname(file), m[1]!)).replace(/\.js$/, '.ts'));
      graph.set(file, deps);
    }
  }
  return graph;
}

const topOf = (file: string) => file.split('/')[0]!;

/** Strongly connected components with more than one file (or a file importing itself). */
function cycles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

const graph = importGraph();

t.test('the walk sees the repository', async (t) => {
  t.ok(graph.size > 100, `${graph.size} source files`);
  t.ok((graph.get('agent/subsystems.ts') ?? []).includes('agent/envoy/subsystem.ts'), 'a known import is found');
  t.ok((graph.get('agent/subsystems.ts') ?? []).includes('agent/security/subsystem.ts'), 'a lazy import(…) is found');
});

t.test('arrows between top-level folders point one way', async (t) => {
  const wrong: string[] = [];
  for (const [file, deps] of graph) {
    const from = topOf(file);
    for (const dep of deps) {
      const to = topOf(dep);
      if (to !== from && !ALLOWED[from]!.includes(to)) wrong.push(`${file} → ${dep}`);
    }
  }
  t.same(wrong, [], 'imports against the arrows');
});

t.test('no import cycle between files', async (t) => {
  t.same(cycles(graph), []);
});

t.test('every relative import names a file that exists', async (t) => {
  const all = new Set(graph.keys());
  const missing: string[] = [];
  for (const [file, deps] of graph) for (const dep of deps) if (dep.endsWith('.ts') && !all.has(dep) && Object.hasOwn(ALLOWED, topOf(dep))) missing.push(`${file} → ${relative('.', dep)}`);
  t.same(missing, []);
});

t.test('the cycle finder finds a cycle', async (t) => {
  const g = new Map([
    ['a.ts', ['b.ts']],
    ['b.ts', ['c.ts']],
    ['c.ts', ['a.ts']],
    ['d.ts', ['a.ts']],
  ]);
  t.same(cycles(g), [['a.ts', 'b.ts', 'c.ts']]);
});
