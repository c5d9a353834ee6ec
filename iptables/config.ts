// CaptureConfig: everything the rule builder needs, resolved from flags, environment and the
// machine (interface addresses, resolv.conf, the passwd entry of ENVOY_USER) as Istio's
// FillConfigFromEnvironment and Validate (tools/common/config/config.go) do.
// resolveCaptureConfig() is pure: the machine is passed in, so tests inject what Istio's own
// tests inject (EnableIPv6, DNS servers).
import type { EnvSource } from '../lib/env.js';
import { iptablesEnv } from './env.js';
import type { IptablesFlags } from './flags.js';
import { formatAddr, is4, isLinkLocalMulticast, isLinkLocalUnicast, isLoopback, parseAddr, parsePrefix, unmap, type Addr } from '../lib/netip.js';
import { AgentError } from '../lib/errors.js';

export type InterceptionMode = 'REDIRECT' | 'TPROXY';

export interface CaptureConfig {
  proxyPort: string;
  inboundCapturePort: string;
  inboundTunnelPort: string;
  /** Comma lists, pasted into rules as given (iptables resolves names). */
  proxyUid: string;
  proxyGid: string;
  interceptionMode: InterceptionMode;
  inboundPortsInclude: string;
  inboundPortsExclude: string;
  excludeInterfaces: string;
  outboundIpRangesInclude: string;
  outboundIpRangesExclude: string;
  outboundPortsInclude: string;
  outboundPortsExclude: string;
  kubeVirtInterfaces: string;
  inboundTProxyMark: string;
  inboundTProxyRouteTable: string;
  ownerGroupsInclude: string;
  ownerGroupsExclude: string;
  hostIPv4LoopbackCidr: string;
  redirectDns: boolean;
  captureAllDns: boolean;
  dropInvalid: boolean;
  /** Derived from the pod's addresses (detectHostIp). */
  enableIPv6: boolean;
  /** The address that decided the family; the validator dials in its family. */
  hostIp: string;
  /** resolv.conf servers (canonical text), only with --redirect-dns and without --capture-all-dns. */
  dnsServersV4: readonly string[];
  dnsServersV6: readonly string[];
}

/** What istio-iptables reads from the machine; tests replace it. */
export interface Machine {
  /** Local interface addresses in the kernel's order (IPv4 addresses first, by interface index). */
  interfaceAddresses(): string[];
  /**
   * The resolv.conf servers split by family, as Istio stores them (canonical text; unparsable
   * entries dropped). Throws when the file cannot be read.
   */
  dnsServers(): { v4: string[]; v6: string[] };
  /** UID of a user name (passwd), or undefined. */
  lookupUid(name: string): string | undefined;
}

/** A configuration error: logged, exit status 1. */
export class ConfigError extends AgentError {
  static override readonly code: string = 'IPTABLES_CONFIG';
}

/** Splits a list the way Istio does: cut at commas, drop empty items, trim nothing. */
export function splitList(s: string): string[] {
  return s.split(',').filter((x) => x !== '');
}

const MAX_OWNER_GROUPS = 64;

function envString(env: EnvSource, name: 'ISTIO_OUTBOUND_OWNER_GROUPS' | 'ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE' | 'ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR' | 'ENVOY_USER'): string {
  // Set-but-empty counts as the empty value, not the default, as in Istio's pkg/env.
  return env[name] ?? iptablesEnv[name].default;
}

/** Istio's getLocalIP: which address decides the family, and whether IPv6 rules are wanted. */
export function detectHostIp(addresses: readonly string[], dualStack: boolean): { hostIp: string; enableIPv6: boolean } {
  let first: Addr | undefined;
  let v6: Addr | undefined;
  for (const text of addresses) {
    let a: Addr;
    try {
      a = unmap(parseAddr(text));
    } catch {
      continue;
    }
    if (isLoopback(a) || isLinkLocalUnicast(a) || isLinkLocalMulticast(a)) continue;
    first ??= a;
    if (!dualStack) break;
    if (!is4(a)) {
      v6 = a;
      break;
    }
  }
  if (!first) throw new ConfigError('no valid local IP address found');
  return { hostIp: formatAddr(first), enableIPv6: dualStack ? v6 !== undefined : !is4(first) };
}

/** resolv.conf servers split by family (as Istio does), canonical text, unparsable ones dropped. */
export function splitDnsServers(servers: readonly string[]): { v4: string[]; v6: string[] } {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const s of servers) {
    let a: Addr;
    try {
      a = parseAddr(s);
    } catch {
      continue;
    }
    (is4(a) ? v4 : v6).push(formatAddr(a));
  }
  return { v4, v6 };
}

function validateLoopbackCidr(cidr: string): void {
  let p;
  try {
    p = parsePrefix(cidr);
  } catch (err) {
    throw new ConfigError(`failed to parse CIDR ${JSON.stringify(cidr)}`, { cause: err });
  }
  if (!is4(p.addr) || !isLoopback(p.addr)) throw new ConfigError(`expected valid IPv4 loopback address in CIDR ${cidr}`);
  if (p.bits < 8 || p.bits > 32) throw new ConfigError(`expected CIDR ${cidr} to have mask in range [8, 32]; found ${p.bits}`);
}

/**
 * Flags + env + machine → CaptureConfig (Istio's FillConfigFromEnvironment and Validate). Throws
 * ConfigError (exit 1) for what Istio rejects, and for an interception mode other than
 * REDIRECT/TPROXY (see README: QUIRK 3).
 */
export function resolveCaptureConfig(flags: IptablesFlags, env: EnvSource, machine: Machine): CaptureConfig {
  const ownerGroupsInclude = envString(env, 'ISTIO_OUTBOUND_OWNER_GROUPS');
  const ownerGroupsExclude = envString(env, 'ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE');
  const hostIPv4LoopbackCidr = envString(env, 'ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR');

  // QUIRK 3 (fixed): Istio treats every value but the exact "TPROXY" as REDIRECT, so a typo such
  // as "tproxy" silently selects the other mode. The injector only ever passes REDIRECT or TPROXY.
  const mode = flags.interceptionMode;
  if (mode !== '' && mode !== 'REDIRECT' && mode !== 'TPROXY') {
    throw new ConfigError(`invalid inbound interception mode ${JSON.stringify(mode)} (-m / ISTIO_INBOUND_INTERCEPTION_MODE): want REDIRECT or TPROXY`);
  }

  let proxyUid = flags.proxyUid;
  if (proxyUid === '') proxyUid = machine.lookupUid(envString(env, 'ENVOY_USER')) ?? '1337';
  const proxyGid = flags.proxyGid === '' ? proxyUid : flags.proxyGid;

  const { hostIp, enableIPv6 } = detectHostIp(machine.interfaceAddresses(), flags.dualStack);

  let dns = { v4: [] as string[], v6: [] as string[] };
  if (flags.redirectDns && !flags.captureAllDns) {
    try {
      dns = machine.dnsServers();
    } catch (err) {
      throw new ConfigError(`failed to load /etc/resolv.conf`, { cause: err });
    }
  }

  if (ownerGroupsInclude !== '*') {
    const groups = splitList(ownerGroupsInclude);
    if (groups.length > MAX_OWNER_GROUPS) {
      throw new ConfigError(`number of owner groups whose outgoing traffic should be redirected to Envoy cannot exceed ${MAX_OWNER_GROUPS}, got ${groups.length}: [${groups.join(' ')}]`);
    }
  }
  if (flags.forceIptablesBinary !== '' && flags.forceIptablesBinary !== 'legacy' && flags.forceIptablesBinary !== 'nft') {
    throw new ConfigError(`invalid FORCE_IPTABLES_BINARY value ${JSON.stringify(flags.forceIptablesBinary)}: want legacy or nft`);
  }
  validateLoopbackCidr(hostIPv4LoopbackCidr);

  return {
    proxyPort: flags.envoyPort,
    inboundCapturePort: flags.inboundCapturePort,
    inboundTunnelPort: flags.inboundTunnelPort,
    proxyUid,
    proxyGid,
    interceptionMode: mode === 'TPROXY' ? 'TPROXY' : 'REDIRECT',
    inboundPortsInclude: flags.inboundPorts,
    inboundPortsExclude: flags.inboundPortsExclude,
    excludeInterfaces: flags.excludeInterfaces,
    outboundIpRangesInclude: flags.serviceCidr,
    outboundIpRangesExclude: flags.serviceExcludeCidr,
    outboundPortsInclude: flags.outboundPorts,
    outboundPortsExclude: flags.outboundPortsExclude,
    kubeVirtInterfaces: flags.kubeVirtInterfaces,
    inboundTProxyMark: flags.tproxyMark,
    inboundTProxyRouteTable: flags.tproxyRouteTable,
    ownerGroupsInclude,
    ownerGroupsExclude,
    hostIPv4LoopbackCidr,
    redirectDns: flags.redirectDns,
    captureAllDns: flags.captureAllDns,
    dropInvalid: flags.dropInvalid,
    enableIPv6,
    hostIp,
    dnsServersV4: dns.v4,
    dnsServersV6: dns.v6,
  };
}
