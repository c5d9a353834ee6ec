// `istio-iptables` (also `pilot-agent istio-iptables`): the istio-init program's I/O shell — the
// process environment and the real machine behind CaptureConfig's derived settings (interface
// addresses, resolv.conf, passwd). This is the start path of an init container, so it loads
// only what a run uses: no commander, YAML, HTTP or gRPC; the validator and the route setup are
// imported only when needed.
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { splitDnsServers, type Machine } from './config.js';
import { runIptables } from './run.js';

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

export async function runIstioIptables(args: readonly string[]): Promise<number> {
  return runIptables(args, {
    env: process.env,
    machine: hostMachine,
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
  });
}
