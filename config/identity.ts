// Proxy identity (pilot-agent's initProxy): IP list, IP mode, proxy ID, DNS domain and the Envoy
// node ID `<type>~<ip>~<pod>.<ns>~<domain>`. Pure: interface addresses are passed in.
import { formatAddr, ipFamily, isLinkLocalMulticast, isLinkLocalUnicast, isLoopback, isUnspecified, parseAddr, unmap, type Addr } from '../lib/netip.js';
import { AgentError } from '../lib/errors.js';

export const PROXY_TYPES = ['sidecar', 'router', 'waypoint', 'ztunnel', 'agentgateway'] as const;
export type ProxyType = (typeof PROXY_TYPES)[number];

export type IpMode = 'v4' | 'v6' | 'dual';

export interface ProxyIdentity {
  readonly type: ProxyType;
  /** INSTANCE_IP first (if valid), then interface addresses. */
  readonly ipAddresses: readonly string[];
  readonly ipMode: IpMode;
  /** `<POD_NAME>.<POD_NAMESPACE>` */
  readonly id: string;
  readonly dnsDomain: string;
  /** Envoy node.id */
  readonly serviceNode: string;
  /** 127.0.0.1, or ::1 for IPv6-only proxies */
  readonly localhost: string;
}

/** One address of one interface, as os.networkInterfaces() reports it. */
export interface InterfaceAddress {
  name: string;
  address: string;
  internal: boolean;
}

export class InvalidProxyTypeError extends AgentError {
  static override readonly code: string = 'CONFIG_PROXY_TYPE';
}

export function parseProxyType(arg: string | undefined): ProxyType {
  if (arg === undefined) return 'sidecar';
  if (!(PROXY_TYPES as readonly string[]).includes(arg)) throw new InvalidProxyTypeError(`Invalid proxy Type: ${arg}`);
  return arg as ProxyType;
}

// canonicalIp's address, still parsed: zone dropped, IPv4-mapped IPv6 unwrapped.
function unmappedAddr(addr: string): Addr | undefined {
  try {
    return unmap(parseAddr(addr.replace(/%.*$/, '')));
  } catch {
    return undefined;
  }
}

/** Go netip's canonical text form, with IPv4-mapped IPv6 unwrapped. Undefined if not an IP. */
export function canonicalIp(addr: string): string | undefined {
  const a = unmappedAddr(addr);
  return a && formatAddr(a);
}

/** The "private IPs" Istio scans: non-loopback, non-link-local, specified addresses. */
export function usableInterfaceIps(addrs: readonly InterfaceAddress[], excludeInterfaces: readonly string[] = []): string[] {
  const out: string[] = [];
  for (const a of addrs) {
    if (excludeInterfaces.includes(a.name)) continue;
    const ip = unmappedAddr(a.address);
    if (!ip || isLoopback(ip) || isLinkLocalUnicast(ip) || isLinkLocalMulticast(ip) || isUnspecified(ip)) continue;
    out.push(formatAddr(ip));
  }
  return out;
}

export function ipModeOf(ips: readonly string[]): IpMode {
  const v4 = ips.filter((ip) => ipFamily(ip) === 4).length;
  const v6 = ips.filter((ip) => ipFamily(ip) === 6).length;
  if (v6 === 0) return 'v4';
  if (v4 === 0) return 'v6';
  return 'dual';
}

export interface IdentityInputs {
  proxyType: ProxyType;
  instanceIp: string;
  podName: string;
  podNamespace: string;
  domainFlag: string;
  interfaces: readonly InterfaceAddress[];
  /** annotation traffic.sidecar.istio.io/excludeInterfaces, split */
  excludeInterfaces: readonly string[];
}

export function defaultDnsDomain(podNamespace: string, domainFlag: string): string {
  return domainFlag !== '' ? domainFlag : `${podNamespace}.svc.cluster.local`;
}

export function resolveIdentity(i: IdentityInputs): ProxyIdentity {
  const ips: string[] = [];
  const podIp = canonicalIp(i.instanceIp);
  if (podIp) ips.push(podIp);
  let scanned = usableInterfaceIps(i.interfaces);
  // Istio falls back to both loopbacks when the scan finds nothing, even with INSTANCE_IP set.
  if (scanned.length === 0) scanned = ['127.0.0.1', '::1'];
  const excluded = new Set(usableInterfaceIps(i.interfaces.filter((a) => i.excludeInterfaces.includes(a.name))));
  if (podIp) excluded.add(podIp);
  ips.push(...scanned.filter((ip) => !excluded.has(ip)));
  const ipMode = ipModeOf(ips);
  const id = `${i.podName}.${i.podNamespace}`;
  const dnsDomain = defaultDnsDomain(i.podNamespace, i.domainFlag);
  return {
    type: i.proxyType,
    ipAddresses: ips,
    ipMode,
    id,
    dnsDomain,
    serviceNode: [i.proxyType, ips[0] ?? '', id, dnsDomain].join('~'),
    localhost: ipMode === 'v6' ? '::1' : '127.0.0.1',
  };
}
