// `istio-iptables` (also `pilot-agent istio-iptables`): the istio-init program. This module is
// the start path of an init container, so it loads only what a run uses: no commander, YAML,
// HTTP or gRPC; the validator is imported only with --run-validation.
import { hostMachine } from './machine.js';
import { runIptables } from './run.js';

export async function runIstioIptables(args: readonly string[]): Promise<number> {
  return runIptables(args, {
    env: process.env,
    machine: hostMachine,
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
  });
}
