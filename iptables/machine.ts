// The real machine behind CaptureConfig's derived settings: interface addresses, resolv.conf and
// the passwd database. Kept apart so the pure resolver can be fed Istio's test values.
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { splitDnsServers, type Machine } from './config.js';

/** Nameservers of a resolv.conf text, as Go's DNS client config reads them. */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    if (raw.startsWith('#') || raw.startsWith(';')) continue;
    const f = raw.trim().split(/\s+/);
    if (f[0] === 'nameserver' && f.length > 1) out.push(f[1]!);
  }
  return out;
}

/** The UID of `name` in a passwd text. */
export function uidFromPasswd(text: string, name: string): string | undefined {
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && f[0] === name && /^\d+$/.test(f[2]!)) return f[2];
  }
  return undefined;
}

export const hostMachine: Machine = {
  interfaceAddresses() {
    // Go lists the kernel's address dump: every IPv4 address (by interface), then every IPv6 one.
    const all = Object.values(networkInterfaces()).flatMap((list) => list ?? []);
    return [...all.filter((a) => a.family === 'IPv4'), ...all.filter((a) => a.family !== 'IPv4')].map((a) => a.address);
  },
  dnsServers() {
    return splitDnsServers(parseResolvConf(readFileSync('/etc/resolv.conf', 'utf8')));
  },
  lookupUid(name) {
    try {
      return uidFromPasswd(readFileSync('/etc/passwd', 'utf8'), name);
    } catch {
      return undefined;
    }
  },
};
