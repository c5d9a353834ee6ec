// Go's net.SplitHostPort / net.JoinHostPort (net/ipsock.go), which Istio uses for every
// `host:port` it reads or writes: IPv6 literals are bracketed, and a port is required.

/** `host:port`, `[v6]:port` → its parts (host without brackets); undefined where Go returns an error. */
export function splitHostPort(hostport: string): { host: string; port: string } | undefined {
  let host: string;
  let rest: string;
  if (hostport.startsWith('[')) {
    const end = hostport.indexOf(']');
    if (end < 0) return undefined; // missing ']' in address
    if (end + 1 === hostport.length || hostport[end + 1] !== ':') return undefined; // missing port / junk after ']'
    host = hostport.slice(1, end);
    rest = hostport.slice(end + 2);
    if (host.includes('[')) return undefined;
  } else {
    const i = hostport.lastIndexOf(':');
    if (i < 0) return undefined; // missing port in address
    host = hostport.slice(0, i);
    rest = hostport.slice(i + 1);
    if (host.includes(':')) return undefined; // too many colons in address
    if (host.includes('[') || host.includes(']')) return undefined;
  }
  if (rest.includes(']')) return undefined;
  return { host, port: rest };
}

/** `host:port` as Go's net.JoinHostPort writes it (IPv6 literals bracketed). */
export function joinHostPort(host: string, port: number | string): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
