#!/usr/bin/env node
// `pilot-agent` executable.
import { runCli } from './cli.js';

const code = await runCli(process.argv.slice(2));
process.exit(code);
