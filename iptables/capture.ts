// CaptureConfig → RuleSet: Istio's capture rules in Istio's exact order
// (IptablesConfigurator.Run in tools/istio-iptables/pkg/capture/run.go). Pure; the only failure
// is a bad CIDR list, reported before anything is applied. `QUIRK n` marks one of the Istio
// quirks numbered in the README's istio-iptables section, and whether it is kept or fixed.
import { ConfigError, splitList, type CaptureConfig } from './config.js';
import { formatPrefix, is4, isLoopback, NetipError, parsePrefix } from '../lib/netip.js';
import { IP_VERSION_SPECIFIC as V, RuleBuilder, type RuleSet } from './ruleset.js';

const NAT = 'nat';
const MANGLE = 'mangle';
const RAW = 'raw';
const PREROUTING = 'PREROUTING';
const OUTPUT = 'OUTPUT';
const ISTIO_INBOUND = 'ISTIO_INBOUND';
const ISTIO_REDIRECT = 'ISTIO_REDIRECT';
const ISTIO_IN_REDIRECT = 'ISTIO_IN_REDIRECT';
const ISTIO_OUTPUT = 'ISTIO_OUTPUT';
const ISTIO_OUTPUT_DNS = 'ISTIO_OUTPUT_DNS';
const ISTIO_DIVERT = 'ISTIO_DIVERT';
const ISTIO_TPROXY = 'ISTIO_TPROXY';
const ISTIO_DROP = 'ISTIO_DROP';

/** The agent's DNS proxy port. */
export const DNS_CAPTURE_PORT = '15053';
/** TPROXY mode marks Envoy's outbound-to-app packets with this so they are not re-captured. */
export const OUTBOUND_MARK = '1338';
export const INBOUND_PASSTHROUGH_V4 = '127.0.0.6/32';
export const INBOUND_PASSTHROUGH_V6 = '::6/128';
export const LOOPBACK_V6 = '::1/128';

interface NetworkRange {
  wildcard: boolean;
  cidrs: string[];
  hasLoopback: boolean;
}

/** Splits a CIDR list into per-family ranges; `*` is a wildcard for both (Istio's SeparateV4V6). */
export function separateV4V6(list: string): { v4: NetworkRange; v6: NetworkRange } {
  if (list === '*') return { v4: { wildcard: true, cidrs: [], hasLoopback: false }, v6: { wildcard: true, cidrs: [], hasLoopback: false } };
  const v4: NetworkRange = { wildcard: false, cidrs: [], hasLoopback: false };
  const v6: NetworkRange = { wildcard: false, cidrs: [], hasLoopback: false };
  for (const item of splitList(list)) {
    let p;
    try {
      p = parsePrefix(item);
    } catch (err) {
      if (err instanceof NetipError) throw new ConfigError(err.message);
      throw err;
    }
    const range = is4(p.addr) ? v4 : v6;
    range.cidrs.push(formatPrefix(p));
    if (isLoopback(p.addr)) range.hasLoopback = true;
  }
  return { v4, v6 };
}

export interface CapturePlan {
  rules: RuleSet;
  /** DNS capture actually in effect: redirect-dns with capture-all-dns or a nameserver found. */
  dnsCapture: boolean;
  warnings: string[];
}

export function buildRules(cfg: CaptureConfig): CapturePlan {
  const warnings: string[] = [];
  const exclude = separateV4V6(cfg.outboundIpRangesExclude);
  if (exclude.v4.wildcard) throw new ConfigError('invalid value for OUTBOUND_IP_RANGES_EXCLUDE');
  const include = separateV4V6(cfg.outboundIpRangesInclude);

  const v4Servers = cfg.dnsServersV4;
  const v6Servers = cfg.dnsServersV6;
  let dns = cfg.redirectDns;
  if (dns && !cfg.captureAllDns && v4Servers.length === 0 && v6Servers.length === 0) {
    warnings.push('REDIRECT_DNS is enabled, but no DNS servers were found in /etc/resolv.conf and capture-all-dns is off; DNS traffic is not captured');
    dns = false;
  }

  const b = new RuleBuilder(cfg.enableIPv6);
  const tproxy = cfg.interceptionMode === 'TPROXY';
  const loop4 = cfg.hostIPv4LoopbackCidr;
  const excludeIfs = splitList(cfg.excludeInterfaces);
  const virtIfs = splitList(cfg.kubeVirtInterfaces);
  const uids = splitList(cfg.proxyUid);
  const gids = splitList(cfg.proxyGid);
  const E = cfg.inboundTunnelPort;
  const M = cfg.inboundTProxyMark;

  // Interface short-circuits (Istio's shortCircuitExcludeInterfaces and
  // shortCircuitKubeInternalInterface), drop-invalid
  for (const ifc of excludeIfs) {
    b.append(PREROUTING, NAT, '-i', ifc, '-j', 'RETURN');
    b.append(OUTPUT, NAT, '-o', ifc, '-j', 'RETURN');
  }
  if (tproxy) {
    for (const ifc of excludeIfs) {
      b.append(PREROUTING, MANGLE, '-i', ifc, '-j', 'RETURN');
      b.append(OUTPUT, MANGLE, '-o', ifc, '-j', 'RETURN');
    }
  }
  // QUIRK 10 (kept): each insert at 1 lands above the previous one, so the final order is
  // reversed; rule order is what users' captured traffic depends on, so it stays Istio's.
  for (const ifc of virtIfs) b.insert(PREROUTING, NAT, 1, '-i', ifc, '-j', 'RETURN');
  if (cfg.dropInvalid) {
    b.append(PREROUTING, MANGLE, '-m', 'conntrack', '--ctstate', 'INVALID', '-j', ISTIO_DROP);
    b.append(ISTIO_DROP, MANGLE, '-j', 'DROP');
  }

  // Common nat chains. QUIRK 5 (kept): ISTIO_INBOUND always exists with the tunnel RETURN.
  b.append(ISTIO_INBOUND, NAT, '-p', 'tcp', '--dport', E, '-j', 'RETURN');
  b.append(ISTIO_REDIRECT, NAT, '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', cfg.proxyPort);
  b.append(ISTIO_IN_REDIRECT, NAT, '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', cfg.inboundCapturePort);

  // Inbound (Istio's handleInboundPortsInclude)
  if (cfg.inboundPortsInclude !== '') {
    const table = tproxy ? MANGLE : NAT;
    if (tproxy) {
      b.append(ISTIO_DIVERT, MANGLE, '-j', 'MARK', '--set-mark', M);
      b.append(ISTIO_DIVERT, MANGLE, '-j', 'ACCEPT');
      b.appendVersioned(loop4, LOOPBACK_V6, ISTIO_TPROXY, MANGLE, '!', '-d', V, '-p', 'tcp', '-j', 'TPROXY', '--tproxy-mark', `${M}/0xffffffff`, '--on-port', cfg.inboundCapturePort);
    }
    b.append(PREROUTING, table, '-p', 'tcp', '-j', ISTIO_INBOUND);
    if (cfg.inboundPortsInclude === '*') {
      for (const port of splitList(cfg.inboundPortsExclude)) b.append(ISTIO_INBOUND, table, '-p', 'tcp', '--dport', port, '-j', 'RETURN');
      if (tproxy) {
        b.append(ISTIO_INBOUND, MANGLE, '-p', 'tcp', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', ISTIO_DIVERT);
        b.append(ISTIO_INBOUND, MANGLE, '-p', 'tcp', '-j', ISTIO_TPROXY);
      } else {
        b.append(ISTIO_INBOUND, NAT, '-p', 'tcp', '-j', ISTIO_IN_REDIRECT);
      }
    } else {
      for (const port of splitList(cfg.inboundPortsInclude)) {
        if (tproxy) {
          b.append(ISTIO_INBOUND, MANGLE, '-p', 'tcp', '--dport', port, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', ISTIO_DIVERT);
          b.append(ISTIO_INBOUND, MANGLE, '-p', 'tcp', '--dport', port, '-j', ISTIO_TPROXY);
        } else {
          b.append(ISTIO_INBOUND, NAT, '-p', 'tcp', '--dport', port, '-j', ISTIO_IN_REDIRECT);
        }
      }
    }
  }

  // Outbound jump, port exclusions (TCP and UDP), inbound passthrough source
  b.append(OUTPUT, NAT, '-j', ISTIO_OUTPUT);
  for (const port of splitList(cfg.outboundPortsExclude)) {
    b.append(ISTIO_OUTPUT, NAT, '-p', 'tcp', '--dport', port, '-j', 'RETURN');
    b.append(ISTIO_OUTPUT, NAT, '-p', 'udp', '--dport', port, '-j', 'RETURN');
  }
  b.appendVersioned(INBOUND_PASSTHROUGH_V4, INBOUND_PASSTHROUGH_V6, ISTIO_OUTPUT, NAT, '-o', 'lo', '-s', V, '-j', 'RETURN');

  // Proxy UIDs then GIDs. QUIRK 9 (kept): "loopback included" is one flag for both families.
  const loopbackIncluded = include.v4.hasLoopback || include.v6.hasLoopback;
  const ownerRules = (match: '--uid-owner' | '--gid-owner', id: string, multiportDns: boolean) => {
    if (multiportDns) {
      b.appendVersioned(loop4, LOOPBACK_V6, ISTIO_OUTPUT, NAT, '-o', 'lo', '!', '-d', V, '-p', 'tcp', '-m', 'multiport', '!', '--dports', `53,${E}`, '-m', 'owner', match, id, '-j', ISTIO_IN_REDIRECT);
    } else {
      b.appendVersioned(loop4, LOOPBACK_V6, ISTIO_OUTPUT, NAT, '-o', 'lo', '!', '-d', V, '-p', 'tcp', '!', '--dport', E, '-m', 'owner', match, id, '-j', ISTIO_IN_REDIRECT);
    }
    if (!loopbackIncluded) {
      if (dns) b.append(ISTIO_OUTPUT, NAT, '-o', 'lo', '-p', 'tcp', '!', '--dport', '53', '-m', 'owner', '!', match, id, '-j', 'RETURN');
      else b.append(ISTIO_OUTPUT, NAT, '-o', 'lo', '-m', 'owner', '!', match, id, '-j', 'RETURN');
    }
    b.append(ISTIO_OUTPUT, NAT, '-m', 'owner', match, id, '-j', 'RETURN');
  };
  for (const uid of uids) ownerRules('--uid-owner', uid, dns);
  // QUIRK 6 (kept): the GID redirect never uses the DNS multiport form; it is in Istio's goldens
  // and changing it would change which loopback traffic of the proxy group is captured.
  for (const gid of gids) ownerRules('--gid-owner', gid, false);

  // Owner groups (Istio's handleCaptureByOwnerGroup)
  if (cfg.ownerGroupsInclude === '*') {
    for (const g of splitList(cfg.ownerGroupsExclude)) b.append(ISTIO_OUTPUT, NAT, '-m', 'owner', '--gid-owner', g, '-j', 'RETURN');
  } else {
    // QUIRK 8 (kept): an empty include list gives a bare RETURN (no outbound capture at all).
    const params: string[] = [];
    for (const g of splitList(cfg.ownerGroupsInclude)) params.push('-m', 'owner', '!', '--gid-owner', g);
    b.append(ISTIO_OUTPUT, NAT, ...params, '-j', 'RETURN');
  }

  // DNS (Istio's SetupDNSRedir and addDNSConntrackZones)
  if (dns) {
    const all = cfg.captureAllDns;
    b.append(OUTPUT, RAW, '-j', ISTIO_OUTPUT_DNS);
    if (all || v4Servers.length > 0) b.appendV4(ISTIO_OUTPUT, NAT, '-j', ISTIO_OUTPUT_DNS);
    if (all || v6Servers.length > 0) b.appendV6(ISTIO_OUTPUT, NAT, '-j', ISTIO_OUTPUT_DNS);
    // QUIRK 7 (kept): TCP uses --to-ports, UDP --to-port; iptables treats them alike.
    for (const proto of ['tcp', 'udp'] as const) {
      const toPort = proto === 'tcp' ? '--to-ports' : '--to-port';
      if (all) {
        b.append(ISTIO_OUTPUT_DNS, NAT, '-p', proto, '--dport', '53', '-j', 'REDIRECT', toPort, DNS_CAPTURE_PORT);
      } else {
        for (const s of v4Servers) b.appendV4(ISTIO_OUTPUT_DNS, NAT, '-p', proto, '--dport', '53', '-d', `${s}/32`, '-j', 'REDIRECT', toPort, DNS_CAPTURE_PORT);
        for (const s of v6Servers) b.appendV6(ISTIO_OUTPUT_DNS, NAT, '-p', proto, '--dport', '53', '-d', `${s}/128`, '-j', 'REDIRECT', toPort, DNS_CAPTURE_PORT);
      }
    }
    // Conntrack zones keep the app→agent and agent→upstream UDP flows apart.
    for (const [match, ids] of [
      ['--uid-owner', uids],
      ['--gid-owner', gids],
    ] as const) {
      for (const id of ids) {
        b.append(ISTIO_OUTPUT_DNS, RAW, '-p', 'udp', '--dport', '53', '-m', 'owner', match, id, '-j', 'CT', '--zone', '1');
        b.append(ISTIO_OUTPUT_DNS, RAW, '-p', 'udp', '--sport', DNS_CAPTURE_PORT, '-m', 'owner', match, id, '-j', 'CT', '--zone', '2');
      }
    }
    if (all) {
      b.append(PREROUTING, RAW, '-j', ISTIO_INBOUND);
      b.append(ISTIO_OUTPUT_DNS, RAW, '-p', 'udp', '--dport', '53', '-j', 'CT', '--zone', '2');
      b.append(ISTIO_INBOUND, RAW, '-p', 'udp', '--sport', '53', '-j', 'CT', '--zone', '1');
    } else {
      if (v4Servers.length > 0) {
        b.appendV4(PREROUTING, RAW, '-j', ISTIO_INBOUND);
        for (const s of v4Servers) {
          b.appendV4(ISTIO_OUTPUT_DNS, RAW, '-p', 'udp', '--dport', '53', '-d', `${s}/32`, '-j', 'CT', '--zone', '2');
          b.appendV4(ISTIO_INBOUND, RAW, '-p', 'udp', '--sport', '53', '-s', `${s}/32`, '-j', 'CT', '--zone', '1');
        }
      }
      if (v6Servers.length > 0) {
        b.appendV6(PREROUTING, RAW, '-j', ISTIO_INBOUND);
        for (const s of v6Servers) {
          b.appendV6(ISTIO_OUTPUT_DNS, RAW, '-p', 'udp', '--dport', '53', '-d', `${s}/128`, '-j', 'CT', '--zone', '2');
          b.appendV6(ISTIO_INBOUND, RAW, '-p', 'udp', '--sport', '53', '-s', `${s}/128`, '-j', 'CT', '--zone', '1');
        }
      }
    }
  }

  // Local and excluded destinations, included ports (handleOutboundPortsInclude), included CIDRs
  // (handleOutboundIncludeRules)
  b.appendVersioned(loop4, LOOPBACK_V6, ISTIO_OUTPUT, NAT, '-d', V, '-j', 'RETURN');
  for (const c of exclude.v4.cidrs) b.appendV4(ISTIO_OUTPUT, NAT, '-d', c, '-j', 'RETURN');
  for (const c of exclude.v6.cidrs) b.appendV6(ISTIO_OUTPUT, NAT, '-d', c, '-j', 'RETURN');
  for (const port of splitList(cfg.outboundPortsInclude)) b.append(ISTIO_OUTPUT, NAT, '-p', 'tcp', '--dport', port, '-j', ISTIO_REDIRECT);
  const includeRules = (range: NetworkRange, append: 'appendV4' | 'appendV6', insert: 'insertV4' | 'insertV6') => {
    if (range.wildcard) {
      b[append](ISTIO_OUTPUT, NAT, '-j', ISTIO_REDIRECT);
      for (const ifc of virtIfs) b[insert](PREROUTING, NAT, 1, '-i', ifc, '-j', ISTIO_REDIRECT);
      return;
    }
    for (const c of range.cidrs) {
      for (const ifc of virtIfs) b[insert](PREROUTING, NAT, 1, '-i', ifc, '-d', c, '-j', ISTIO_REDIRECT);
      b[append](ISTIO_OUTPUT, NAT, '-d', c, '-j', ISTIO_REDIRECT);
    }
  };
  includeRules(include.v4, 'appendV4', 'insertV4');
  includeRules(include.v6, 'appendV6', 'insertV6');

  // TPROXY extras (even without inbound ports)
  if (tproxy) {
    b.append(PREROUTING, MANGLE, '-p', 'tcp', '-m', 'mark', '--mark', M, '-j', 'CONNMARK', '--save-mark');
    b.append(OUTPUT, MANGLE, '-p', 'tcp', '-o', 'lo', '-m', 'mark', '--mark', M, '-j', 'RETURN');
    for (const uid of uids) b.appendVersioned(loop4, LOOPBACK_V6, OUTPUT, MANGLE, '!', '-d', V, '-p', 'tcp', '-o', 'lo', '-m', 'owner', '--uid-owner', uid, '-j', 'MARK', '--set-mark', OUTBOUND_MARK);
    for (const gid of gids) b.appendVersioned(loop4, LOOPBACK_V6, OUTPUT, MANGLE, '!', '-d', V, '-p', 'tcp', '-o', 'lo', '-m', 'owner', '--gid-owner', gid, '-j', 'MARK', '--set-mark', OUTBOUND_MARK);
    b.append(OUTPUT, MANGLE, '-p', 'tcp', '-m', 'connmark', '--mark', M, '-j', 'CONNMARK', '--restore-mark');
    b.insert(ISTIO_INBOUND, MANGLE, 1, '-p', 'tcp', '-m', 'mark', '--mark', M, '-j', 'RETURN');
    b.insertV4(ISTIO_INBOUND, MANGLE, 2, '-p', 'tcp', '-s', INBOUND_PASSTHROUGH_V4, '-i', 'lo', '-j', 'RETURN');
    b.insertV6(ISTIO_INBOUND, MANGLE, 2, '-p', 'tcp', '-s', INBOUND_PASSTHROUGH_V6, '-i', 'lo', '-j', 'RETURN');
    b.insert(ISTIO_INBOUND, MANGLE, 3, '-p', 'tcp', '-i', 'lo', '-m', 'mark', '!', '--mark', OUTBOUND_MARK, '-j', 'RETURN');
  }

  return { rules: b.build(), dnsCapture: dns, warnings };
}
