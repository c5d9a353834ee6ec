// Addresses and policy routing next to the rules (Istio's ConfigureRoutes in
// tools/common/tproxy/run_linux.go): the `::6` inbound-passthrough source on lo when IPv6 is on,
// and for TPROXY the "fwmark → table R" rule with a local default route. Unlike Istio, a re-run
// does not stack duplicate policy rules, and --cleanup-only removes the TPROXY rule and route
// instead of adding them (see README).
import type { CaptureConfig } from './config.js';
import { readFileSync } from 'node:fs';
import type { Dependencies } from './deps.js';
import { AgentError } from '../lib/errors.js';

export class RouteError extends AgentError {
  static override readonly code: string = 'IPTABLES_ROUTE';
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

/** Whether lo already carries ::6 (/proc/net/if_inet6 lists it as 32 hex digits, then lo). */
function hasPassthroughAddress(): boolean {
  try {
    return /^0{31}6 .* lo$/m.test(readFileSync('/proc/net/if_inet6', 'utf8'));
  } catch {
    return false;
  }
}

export type PassthroughAddress = Promise<'present' | 'added'>;

/**
 * Adds the ::6 inbound-passthrough source to lo. It does not depend on the rules, so the caller
 * starts it while they are applied, and drops it again (dropPassthroughAddress) if they fail.
 */
export function addPassthroughAddress(deps: Dependencies): PassthroughAddress {
  if (hasPassthroughAddress()) return Promise.resolve('present');
  // `replace` is `add` that tolerates an existing address (Istio ignores "file exists").
  return ip(deps, ['-6', 'addr', 'replace', '::6/128', 'dev', 'lo']).then(() => 'added');
}

/** Undoes addPassthroughAddress after a failed rule step, if this run added the address. */
export async function dropPassthroughAddress(deps: Dependencies, address: PassthroughAddress): Promise<void> {
  if ((await address.catch(() => 'present')) === 'added') await deps.exec('ip', ['-6', 'addr', 'del', '::6/128', 'dev', 'lo']);
}

export async function configureRoutes(cfg: CaptureConfig, deps: Dependencies, log: (msg: string) => void, address?: PassthroughAddress): Promise<void> {
  const routing = tproxyRouting(cfg);
  if (cfg.enableIPv6) {
    await (address ?? addPassthroughAddress(deps));
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
