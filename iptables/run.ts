// One istio-iptables run (spec §1.6): parse, resolve, build, apply or record, routes, validation.
// Everything outside (env, machine, which Dependencies) is passed in, so the CLI and the
// conformance tests run this same function.
import type { EnvSource } from '../lib/env.js';
import { configureLogging, LogConfigError, scope } from '../lib/log.js';
import { ApplyError, Applier } from './apply.js';
import { buildRules } from './capture.js';
import { ConfigError, resolveCaptureConfig, type CaptureConfig, type Machine } from './config.js';
import { DryRunRecorder, RealDependencies, type Dependencies } from './deps.js';
import { describeFlags, parseCommandLine, usage, UsageError } from './flags.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_VALIDATION_FAILED = 126;
/** cobra's parse errors: pilot-agent exits with -1. */
export const EXIT_USAGE = 255;

export interface RunHost {
  env: EnvSource;
  machine: Machine;
  stdout(s: string): void;
  stderr(s: string): void;
  /** Defaults to RealDependencies, or a DryRunRecorder on DRY_RUN_FILE_PATH with --dry-run. */
  dependencies?(dryRun: boolean): Dependencies;
}

function describeConfig(cfg: CaptureConfig): string {
  const rows = Object.entries(cfg).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`);
  return `Istio iptables variables:\n${rows.join('\n')}`;
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
  for (const line of describeFlags(flags)) log.debug(line);

  try {
    const cfg = resolveCaptureConfig(flags, host.env, host.machine);
    log.info(describeConfig(cfg));
    let forced = flags.forceIptablesBinary as '' | 'legacy' | 'nft';
    if (flags.nativeNftables) {
      log.warn('--native-nftables is not implemented by this istio-iptables; writing the same capture rules with iptables-nft instead');
      forced = 'nft';
    }
    if (!flags.skipRuleApply) {
      const plan = buildRules(cfg);
      for (const w of plan.warnings) log.warn(w);
      const deps = host.dependencies?.(flags.dryRun) ?? (flags.dryRun ? new DryRunRecorder(host.env.DRY_RUN_FILE_PATH || undefined) : new RealDependencies());
      if (flags.dryRun) log.info('running iptables in dry-run mode, no rule changes will be made');
      const applier = new Applier(deps, log, {
        cleanupOnly: flags.cleanupOnly,
        reconcile: flags.reconcile,
        forceApply: flags.forceApply,
        forceIptablesBinary: forced,
        ...(flags.cniMode && flags.networkNamespace ? { lockFile: flags.networkNamespace } : {}),
      });
      let failure: unknown;
      try {
        await applier.run(cfg, plan);
      } catch (err) {
        failure = err;
      }
      // The final dump and the routes are independent; the dump is logged last.
      const dump = applier.finalDump(cfg);
      try {
        if (failure) throw failure;
        const say = (m: string) => log.info(m);
        if (flags.dryRun) {
          log.info('skipping configuring routes due to dry run mode');
        } else if (cfg.enableIPv6 || cfg.interceptionMode === 'TPROXY') {
          // Nothing to route for an IPv4 REDIRECT pod, the common case: not even loaded then.
          const { configureRoutes, removeRoutes } = await import('./routes.js');
          if (flags.cleanupOnly) await removeRoutes(cfg, deps, say);
          else await configureRoutes(cfg, deps, say);
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
    // Expected failures carry a message for a person; anything else also gets its stack.
    if (err instanceof ConfigError || err instanceof ApplyError || (err instanceof Error && err.name === 'RouteError')) {
      log.error(err.message);
      return EXIT_FAILURE;
    }
    const e = err as Error;
    log.error(e?.stack ?? String(err));
    return EXIT_FAILURE;
  }
}
