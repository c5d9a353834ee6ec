// One istio-iptables run (Istio's GetCommand and ProgramIptables in
// tools/istio-iptables/pkg/cmd/root.go): parse, resolve, build, apply or record, routes,
// validation. Everything outside (env, machine) is passed in, so the CLI and the conformance
// tests run this same function.
//
// Start-up order matters for an init container: the first reads of the tables (backend
// detection, which is also the state snapshot) are spawned as soon as the configuration is known,
// and the rules are built while they run.
import type { EnvSource } from '../lib/env.js';
import { configureLogging, LogConfigError, scope } from '../lib/log.js';
import type { CaptureConfig, Machine } from './config.js';
import { detectBackend, DryRunRecorder, RealDependencies, type Backend } from './deps.js';
import { describeFlags, parseCommandLine, usage, UsageError } from './flags.js';
import { AgentError } from '../lib/errors.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_VALIDATION_FAILED = 126;
/** cobra's parse errors: pilot-agent exits with -1. */
export const EXIT_USAGE = 255;

/** Failures with a message for a person (logged as one line, exit 1). */
export interface RunHost {
  env: EnvSource;
  machine: Machine;
  stdout(s: string): void;
  stderr(s: string): void;
}

function describeConfig(cfg: CaptureConfig): string {
  const rows = Object.entries(cfg).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`);
  return `Istio iptables variables:\n${rows.join('\n')}`;
}

/** A started promise that must not count as unhandled if the run ends before awaiting it. */
function started<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

export async function runIptables(args: readonly string[], host: RunHost): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandLine(args, host.env);
    if (!parsed.help) configureLogging(parsed.log);
  } catch (err) {
    if (err instanceof UsageError || err instanceof LogConfigError) {
      host.stderr(`Error: ${err.message}\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
  if (parsed.help) {
    host.stdout(usage());
    return EXIT_OK;
  }
  const log = scope('default');
  const { flags } = parsed;
  for (const w of parsed.envWarnings) log.warn(w);
  if (log.debugEnabled()) for (const line of describeFlags(flags)) log.debug(line);

  let forced = flags.forceIptablesBinary as '' | 'legacy' | 'nft';
  if (flags.nativeNftables) forced = 'nft';
  const deps = flags.dryRun ? new DryRunRecorder(host.env.DRY_RUN_FILE_PATH || undefined) : new RealDependencies();

  try {
    const { resolveCaptureConfig } = await import('./config.js');
    const cfg = resolveCaptureConfig(flags, host.env, host.machine);
    // Both families' tables are read now, while the rest of the run is prepared. ip6tables is
    // read only when its state matters: IPv6 rules, or cleanup of earlier ones. (The dry-run stub
    // answers for free, and Istio's record shows its IPv6 read: QUIRK 14.)
    const v4 = flags.skipRuleApply ? undefined : started(detectBackend(deps, 'v4', forced));
    const wantV6 = cfg.enableIPv6 || flags.cleanupOnly || flags.dryRun;
    const v6: Promise<Backend | undefined> = v4 && wantV6 ? started(detectBackend(deps, 'v6', forced)) : Promise.resolve(undefined);
    log.info(describeConfig(cfg));
    if (flags.nativeNftables) log.warn('--native-nftables is not implemented by this istio-iptables; writing the same capture rules with iptables-nft instead');
    if (v4) {
      const [{ buildRules }, { Applier }] = await Promise.all([import('./capture.js'), import('./apply.js')]);
      const plan = buildRules(cfg);
      for (const w of plan.warnings) log.warn(w);
      if (flags.dryRun) log.info('running iptables in dry-run mode, no rule changes will be made');
      const applier = new Applier(deps, log, {
        cleanupOnly: flags.cleanupOnly,
        reconcile: flags.reconcile,
        forceApply: flags.forceApply,
        ...(flags.cniMode && flags.networkNamespace ? { lockFile: flags.networkNamespace } : {}),
      });
      // The ::6 address (IPv6 pods) is independent of the rules: added meanwhile, dropped on failure.
      const routes = !flags.dryRun && (cfg.enableIPv6 || cfg.interceptionMode === 'TPROXY') ? await import('./routes.js') : undefined;
      const address = routes && cfg.enableIPv6 && !flags.cleanupOnly ? started(routes.addPassthroughAddress(deps)) : undefined;
      let failure: Error | undefined;
      try {
        await applier.run(cfg, plan, v4, v6);
      } catch (err) {
        failure = err instanceof Error ? err : new Error(String(err));
        if (routes && address) await routes.dropPassthroughAddress(deps, address);
      }
      // The final dump and the routes are independent; the dump is logged last.
      const dump = applier.finalDump(cfg);
      try {
        if (failure) throw failure;
        const say = (m: string) => log.info(m);
        if (flags.dryRun) {
          log.info('skipping configuring routes due to dry run mode');
        } else if (routes) {
          // (Nothing to route for an IPv4 REDIRECT pod, the common case: not even loaded then.)
          if (flags.cleanupOnly) await routes.removeRoutes(cfg, deps, say);
          else await routes.configureRoutes(cfg, deps, say, address);
        }
      } finally {
        await dump;
      }
    }
    if (flags.runValidation) {
      const { validate } = await import('./validation.js');
      const ok = await validate(
        { ipv6: cfg.hostIp.includes(':'), proxyPort: cfg.proxyPort, inboundCapturePort: cfg.inboundCapturePort, probePort: flags.probePort, timeoutMs: flags.probeTimeout },
        log,
      );
      if (!ok) return EXIT_VALIDATION_FAILED;
    }
    return EXIT_OK;
  } catch (err) {
    // Failures this program words for its user (bad configuration, a failed restore or route,
    // no usable iptables) are one line; anything else is a bug and keeps its stack.
    if (err instanceof AgentError) {
      log.error(err.message);
      return EXIT_FAILURE;
    }
    const e = err as Error;
    log.error(e?.stack ?? String(err));
    return EXIT_FAILURE;
  }
}
