#!/usr/bin/env node
// `istio-iptables` executable (the istio-init program). Built as CommonJS (tsconfig.cjs.json),
// hence no top-level await.
import { runIstioIptables } from './cli.js';

void runIstioIptables(process.argv.slice(2)).then((code) => process.exit(code));
