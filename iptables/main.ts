#!/usr/bin/env node
// `istio-iptables` executable (the istio-init program). Shipped as one CommonJS bundle
// (dist/bundle/istio-iptables.cjs, built by esbuild in `npm run build`), hence no top-level await.
import { runIstioIptables } from './cli.js';

void runIstioIptables(process.argv.slice(2)).then((code) => process.exit(code));
