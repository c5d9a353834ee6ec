// Public surface of iptables/: the CLI entry, the pure builder and renderers, and the pieces the
// tests and benchmarks drive (the run with an injected machine, the dependencies layer).
export { runIstioIptables, parseResolvConf, uidFromPasswd, hostMachine } from './cli.js';
export { runIptables, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, EXIT_VALIDATION_FAILED, type RunHost } from './run.js';
export { buildRules, separateV4V6, type CapturePlan } from './capture.js';
export { resolveCaptureConfig, detectHostIp, splitDnsServers, splitList, ConfigError, type CaptureConfig, type Machine } from './config.js';
export { parseCommandLine, parseGoUint16, UsageError, type IptablesFlags } from './flags.js';
export { iptablesEnv } from './env.js';
export { RuleBuilder, renderRestore, renderCommands, renderChecks, renderUndo, payloadTables, type Rule, type RuleSet, type Family } from './ruleset.js';
export { parseSave, structuralDelta, expectedState, istioFootprint, saveSections } from './state.js';
export { DryRunRecorder, RealDependencies, detectBackend, hasRules, parseVersion, type Dependencies, type ExecResult, type Backend } from './deps.js';
export { parseAddr, parsePrefix, formatAddr, formatPrefix } from '../lib/netip.js';
export { validate, VALIDATION_FAILED } from './validation.js';
