#!/usr/bin/env node
// `pilot-agent` executable. `pilot-agent istio-iptables …` (the istio-init container) is handed
// to istio-iptables before the agent's command tree (commander) is loaded, and to its one-file
// CommonJS bundle (packaging/bundle.mjs), which starts much faster than the agent's modules.
import { createRequire } from 'node:module';
import { istioIptablesArgs } from './dispatch.js';

const args = process.argv.slice(2);
const ipt = istioIptablesArgs(args);
let code: number;
if (ipt) {
  const { runIstioIptables } = createRequire(import.meta.url)('../bundle/istio-iptables-lib.cjs') as typeof import('../../iptables/cli.js');
  code = await runIstioIptables(ipt);
} else {
  code = await (await import('./cli.js')).runCli(args);
}
process.exit(code);
