#!/usr/bin/env node
// `pilot-agent` executable. `pilot-agent istio-iptables …` (the istio-init container) is handed
// to iptables/ before the agent's command tree (commander) is loaded.
import { istioIptablesArgs } from './dispatch.js';

const args = process.argv.slice(2);
const ipt = istioIptablesArgs(args);
const code = ipt ? await (await import('../iptables/cli.js')).runIstioIptables(ipt) : await (await import('./cli.js')).runCli(args);
process.exit(code);
