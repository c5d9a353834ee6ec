// Real traffic for the capture tests, through a small Python helper (python3 is on every test
// machine): `serve` listens on TCP/UDP ports (IPv4 and IPv6) and answers each connection with who
// answered, the original destination read with getsockopt(SO_ORIGINAL_DST) — what Envoy reads —
// and the local address (the preserved destination under TPROXY); `connect` is the client.
import { PYTHON, type PodNetwork } from './netns.js';

const SCRIPT = String.raw`
import socket, struct, sys, selectors
SO_ORIGINAL_DST = 80
def fmt(a, v6):
    return ('[%s]:%d' if v6 else '%s:%d') % (a[0], a[1])
def orig(c, v6):
    try:
        if v6:
            raw = c.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
            return fmt((socket.inet_ntop(socket.AF_INET6, raw[8:24]), struct.unpack('!H', raw[2:4])[0]), True)
        raw = c.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
        return fmt((socket.inet_ntop(socket.AF_INET, raw[4:8]), struct.unpack('!H', raw[2:4])[0]), False)
    except OSError:
        return '-'
def serve(name, specs):
    sel = selectors.DefaultSelector()
    for spec in specs:
        proto, port, *flags = spec.split(':')
        for fam in (socket.AF_INET, socket.AF_INET6):
            v6 = fam == socket.AF_INET6
            s = socket.socket(fam, socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if v6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if 't' in flags:
                s.setsockopt(socket.IPPROTO_IPV6 if v6 else socket.SOL_IP, 75 if v6 else 19, 1)
            s.bind(('::' if v6 else '0.0.0.0', int(port)))
            if proto == 'tcp':
                s.listen(64)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, (proto, int(port), v6))
    print('ready', flush=True)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            proto, port, v6 = key.data
            if proto == 'tcp':
                c, peer = s.accept()
                line = '%s %d orig=%s local=%s peer=%s' % (name, port, orig(c, v6), fmt(c.getsockname(), v6), fmt(peer, v6))
                try:
                    c.setblocking(True)
                    c.sendall((line + '\n').encode())
                except OSError:
                    pass
                c.close()
            else:
                data, peer = s.recvfrom(2048)
                line = '%s %d udp peer=%s' % (name, port, fmt(peer, v6))
                s.sendto((line + '\n').encode(), peer)
            print(line, flush=True)
def connect(host, port, proto, src):
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        if src:
            s.bind((src, 0))
        if proto == 'tcp':
            s.connect((host, int(port)))
            data = s.recv(512)
        else:
            s.sendto(b'q', (host, int(port)))
            data, _ = s.recvfrom(512)
        print(data.decode().strip())
    except OSError as e:
        print('ERR %s' % e)
        sys.exit(1)
if sys.argv[1] == 'serve':
    serve(sys.argv[2], sys.argv[3:])
else:
    connect(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else '')
`;

/** Listeners: specs like `tcp:15001`, `udp:15053`, `tcp:15006:t` (IP_TRANSPARENT for TPROXY). */
export async function serve(net: PodNetwork, ns: 'pod' | 'peer', name: string, specs: string[]): Promise<void> {
  await net.start(ns, PYTHON, ['-I', '-S', '-c', SCRIPT, 'serve', name, ...specs]);
}

export interface ProbeOptions {
  uid?: number;
  gid?: number;
  proto?: 'tcp' | 'udp';
  /** source address to bind */
  src?: string;
}

/** Connects from a namespace as uid/gid and returns the answering listener's line (or `ERR …`). */
export async function probe(net: PodNetwork, ns: 'pod' | 'peer', host: string, port: number, opts: ProbeOptions = {}): Promise<string> {
  const py = [PYTHON, '-I', '-S', '-c', SCRIPT, 'connect', host, String(port), opts.proto ?? 'tcp', ...(opts.src ? [opts.src] : [])];
  const args = opts.uid !== undefined || opts.gid !== undefined ? [`--reuid=${opts.uid ?? 0}`, `--regid=${opts.gid ?? 0}`, '--clear-groups', ...py] : py;
  const r = await net.exec(ns, args === py ? PYTHON : 'setpriv', args === py ? py.slice(1) : args);
  return (r.stdout.trim() || r.stderr.trim()).split('\n')[0]!;
}
