// Addresses and policy routing next to the rules (spec §5.6): the `::6` inbound-passthrough source
// on lo when IPv6 is on, and for TPROXY the "fwmark → table R" rule with a local default route.
// Unlike Istio, a re-run does not stack duplicate policy rules, and --cleanup-only removes the
// TPROXY rule and route instead of adding them (see README).
import type { CaptureConfig } from './config.js';
import type { Dependencies } from './deps.js';

export class RouteError extends Error {
  override readonly name = 'RouteError';
}

function parseIntStrict(what: string, s: string): number {
  if (!/^[+-]?\d+$/.test(s)) throw new RouteError(`failed to configure routes: failed to parse ${what}: strconv.Atoi: parsing ${JSON.stringify(s)}: invalid syntax`);
  return Number(s);
}

function tproxyRouting(cfg: CaptureConfig): { mark: number; table: number } | undefined {
  if (cfg.interceptionMode !== 'TPROXY' || cfg.inboundPortsInclude === '') return undefined;
  return {
    table: parseIntStrict('InboundTProxyRouteTable', cfg.inboundTProxyRouteTable),
    mark: parseIntStrict('InboundTProxyMark', cfg.inboundTProxyMark),
  };
}

async function ip(deps: Dependencies, args: string[]): Promise<void> {
  const r = await deps.exec('ip', args);
  if (r.code !== 0) throw new RouteError(`failed to configure routes: ip ${args.join(' ')}: exit status ${r.code}: ${r.stderr.trim()}`);
}

export async function configureRoutes(cfg: CaptureConfig, deps: Dependencies, log: (msg: string) => void): Promise<void> {
  const routing = tproxyRouting(cfg);
  if (cfg.enableIPv6) {
    // `replace` is `add` that tolerates an existing address (Istio ignores "file exists").
    await ip(deps, ['-6', 'addr', 'replace', '::6/128', 'dev', 'lo']);
    log('Added ::6 address');
  }
  if (!routing) return;
  for (const fam of cfg.enableIPv6 ? ['-4', '-6'] : ['-4']) {
    const sel = ['fwmark', String(routing.mark), 'lookup', String(routing.table)];
    const existing = await deps.exec('ip', [fam, 'rule', 'show', ...sel]);
    if (existing.code !== 0 || existing.stdout.trim() === '') await ip(deps, [fam, 'rule', 'add', ...sel]);
    await ip(deps, [fam, 'route', 'replace', 'local', 'default', 'dev', 'lo', 'table', String(routing.table)]);
  }
  log(`Configured TPROXY routing: fwmark ${routing.mark} → table ${routing.table}`);
}

/** --cleanup-only: remove the TPROXY policy rule(s) (all copies earlier runs stacked) and route. */
export async function removeRoutes(cfg: CaptureConfig, deps: Dependencies, log: (msg: string) => void): Promise<void> {
  const routing = tproxyRouting(cfg);
  if (!routing) return;
  for (const fam of ['-4', '-6']) {
    const sel = ['fwmark', String(routing.mark), 'lookup', String(routing.table)];
    for (let i = 0; i < 64; i++) {
      const r = await deps.exec('ip', [fam, 'rule', 'del', ...sel]);
      if (r.code !== 0) break;
    }
    await deps.exec('ip', [fam, 'route', 'del', 'local', 'default', 'dev', 'lo', 'table', String(routing.table)]);
  }
  log(`Removed TPROXY routing: fwmark ${routing.mark} → table ${routing.table}`);
}
