#!/usr/bin/env node
// `istio-iptables` executable (the istio-init program).
import { runIstioIptables } from './cli.js';

const code = await runIstioIptables(process.argv.slice(2));
process.exit(code);
