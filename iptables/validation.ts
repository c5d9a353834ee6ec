// --run-validation (the istio-validation init container; Istio's
// tools/istio-iptables/pkg/validation/validator.go): listen where Envoy will (127.0.0.1 on -p
// and -z), dial 127.0.0.6:<probe port> as the proxy user, and pass when the connection is
// redirected to a listener with its original destination intact.
//
// Istio reads the original destination with getsockopt(SO_ORIGINAL_DST), which Node cannot call.
// The validator is both the client and the server, so it reads it from the other end instead: a
// connection accepted on a listener whose peer port is the port of one of our own probes to
// 127.0.0.6:<probe port> can only have arrived through the redirect, and that probe's target is
// the destination SO_ORIGINAL_DST would report. The server writes the original port back as
// decimal ASCII, as Istio's does.
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Scope } from '../lib/log.js';
import { errorMessage } from '../lib/errors.js';

export interface ValidationOptions {
  /** The family of CaptureConfig.hostIp: IPv6 selects [::1] listeners and the [::6] target. */
  ipv6: boolean;
  proxyPort: string;
  inboundCapturePort: string;
  probePort: number;
  timeoutMs: number;
  /** Probe interval (Istio: 1 s). */
  intervalMs?: number;
}

export const VALIDATION_FAILED = [
  'iptables validation failed; workload is not ready for Istio.',
  'When using Istio CNI, this can occur if a pod is scheduled before the node is ready.',
  '',
  "If installed with 'cni.repair.deletePods=true', this pod should automatically be deleted and retry.",
  'Otherwise, this pod will need to be manually removed so that it is scheduled on a node with istio-cni running, allowing iptables rules to be established.',
].join('\n');

function listen(host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/** Resolves true when a probe was redirected with its original destination intact. */
export async function validate(opts: ValidationOptions, log: Scope): Promise<boolean> {
  const local = opts.ipv6 ? '::1' : '127.0.0.1';
  const target = opts.ipv6 ? '::6' : '127.0.0.6';
  const show = (h: string, p: number | string) => (h.includes(':') ? `[${h}]:${p}` : `${h}:${p}`);
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  /** our probes in flight: local port → original destination port */
  const probes = new Map<number, number>();
  /** accepted connections not yet matched to a probe: peer port → socket */
  const unmatched = new Map<number, Socket>();
  let passed = false;
  let finish!: (ok: boolean) => void;
  const done = new Promise<boolean>((resolve) => (finish = resolve));

  const answer = (sock: Socket, originalPort: number) => {
    unmatched.delete(sock.remotePort!);
    sock.end(String(originalPort));
    if (originalPort === opts.probePort && !passed) {
      passed = true;
      log.info(`Validation passed, iptables rules established (${show(target, originalPort)} redirected to ${show(local, sock.localPort!)})`);
      finish(true);
    }
  };

  for (const portText of [opts.proxyPort, opts.inboundCapturePort]) {
    const port = Number(portText);
    try {
      if (!/^\d+$/.test(portText) || port > 65535) throw new Error(`invalid port ${JSON.stringify(portText)}`);
      const server = await listen(local, port);
      server.on('connection', (sock: Socket) => {
        sockets.add(sock);
        sock.on('error', () => {});
        sock.on('close', () => sockets.delete(sock));
        const original = probes.get(sock.remotePort!);
        if (original !== undefined) answer(sock, original);
        else unmatched.set(sock.remotePort!, sock);
      });
      servers.push(server);
      log.info(`Listening on ${show(local, port)}`);
    } catch (err) {
      log.error(`Error on listening: ${errorMessage(err)}`);
    }
  }
  if (servers.length === 0) {
    log.error(`no listener available: ${show(local, opts.proxyPort)},${show(local, opts.inboundCapturePort)}`);
    return false;
  }

  const probe = () => {
    const c = connect({ host: target, port: opts.probePort, localAddress: local });
    sockets.add(c);
    c.on('connect', () => {
      const lp = c.localPort!;
      probes.set(lp, opts.probePort);
      const accepted = unmatched.get(lp);
      if (accepted) answer(accepted, opts.probePort);
      c.end();
    });
    c.on('error', (err) => log.info(`Error connecting to ${show(target, opts.probePort)}: ${err.message}`));
    c.on('close', () => sockets.delete(c));
  };
  probe();
  const ticker = setInterval(probe, opts.intervalMs ?? 1000);
  const timer = setTimeout(() => finish(false), opts.timeoutMs);
  const ok = await done;
  clearInterval(ticker);
  clearTimeout(timer);
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  if (!ok) log.error(`validation timeout\n${VALIDATION_FAILED}`);
  return ok;
}
