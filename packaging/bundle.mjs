// The shipped executables as esbuild bundles (run by `npm run build` after tsc).
//
// - `dist/bundle/istio-iptables.cjs` (+ `istio-iptables-lib.cjs`, which `pilot-agent
//   istio-iptables` hands over to): one CommonJS file with no dependencies, because istio-init's
//   whole run is a few execs and Node's ES module loader alone would cost more than they do.
// - `dist/bundle/pilot-agent.mjs`: the agent as ES modules split at its dynamic imports, so the
//   start path up to Envoy's exec is a handful of files instead of ~70 modules (≈ 25 ms less on
//   the way to Envoy, see bench/README.md), while gRPC, protos and the CA code still load only
//   after Envoy has been spawned. npm dependencies stay in node_modules (external), except
//   commander, which is on the start path. Both bundles sit in dist/bundle/, one level below
//   dist/ like dist/agent/, so paths the code resolves from its own location (protos/,
//   dist/buildinfo.json) are the same bundled or not.
import { chmodSync, readFileSync } from 'node:fs';
import { build } from 'esbuild';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const bundledDeps = new Set(['commander']);
const external = Object.keys(pkg.dependencies)
  .filter((d) => !bundledDeps.has(d))
  .flatMap((d) => [d, `${d}/*`]);
// keepNames: error classes report their class name (lib/errors.ts), bundled or not.
const common = { bundle: true, platform: 'node', target: 'node20', outdir: 'dist/bundle', logLevel: 'warning', keepNames: true };

await Promise.all([
  build({ ...common, entryPoints: { 'istio-iptables': 'iptables/main.ts', 'istio-iptables-lib': 'iptables/cli.ts' }, format: 'cjs', outExtension: { '.js': '.cjs' } }),
  build({
    ...common,
    entryPoints: { 'pilot-agent': 'agent/cmd/main.ts' },
    format: 'esm',
    splitting: true,
    chunkNames: 'agent-[name]-[hash]',
    outExtension: { '.js': '.mjs' },
    external,
    // commander is CommonJS: its require() calls need a require in ES module scope.
    banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
  }),
]);
chmodSync('dist/bundle/istio-iptables.cjs', 0o755);
chmodSync('dist/bundle/pilot-agent.mjs', 0o755);
