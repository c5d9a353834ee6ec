// `/app-health/<container>/<kind>` and `/app-lifecycle/...` (Istio's handleAppProbe in
// pilot/cmd/pilot-agent/status/server.go): the injector rewrote the pod's probes to the status
// port, and the agent sends each to the application from 127.0.0.6 (::6), which the capture
// rules let through to the app instead of into Envoy. Only the configured probes exist (no open
// proxy): the destination is always the pod's own address and the port the one the injector
// wrote.
import { Agent, type IncomingMessage, type ServerResponse } from 'node:http';
import { joinHostPort, splitHostPort } from '../../lib/hostport.js';
import { scope } from '../../lib/log.js';
import type { AppProber, AppProbers } from './app-probers.js';
import { respond } from './respond.js';
import { errorMessage } from '../../lib/errors.js';

const log = scope('default');
const probesLog = scope('probes');

/** Istio's cap on the application body returned to the kubelet. */
export const MAX_PROBE_BODY_BYTES = 10 * 1024;

export interface AppProbeSettings {
  /** INSTANCE_IP, or `localhost` with REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION */
  destination: string;
  /** 127.0.0.6, or ::6 for IPv6 pods */
  localAddress: string;
  statusPort: number;
  /** ISTIO_ENABLE_HTTP2_PROBING */
  http2: boolean;
  /** ENABLE_PROBE_KEEPALIVE_CONNECTIONS */
  keepAlive: boolean;
}

type Probers = typeof import('../health/index.js');

/** The incoming request's headers, every value kept (a header sent twice is forwarded twice). */
function incomingHeaders(req: IncomingMessage): Map<string, string[]> {
  const h = new Map<string, string[]>();
  const raw = req.rawHeaders;
  const canonical = new Map<string, string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    const name = canonical.get(lower) ?? raw[i]!;
    canonical.set(lower, name);
    h.set(name, [...(h.get(name) ?? []), raw[i + 1]!]);
  }
  return h;
}

export class AppProbeHandler {
  #probers: Promise<Probers> | undefined;
  readonly #agents = new Map<string, Agent>();

  constructor(
    readonly probers: AppProbers,
    private readonly s: AppProbeSettings,
  ) {}

  /** The probe primitives load with the first probe, not with the agent. */
  #load(): Promise<Probers> {
    return (this.#probers ??= import('../health/index.js'));
  }

  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const prober = this.probers.get(path);
    if (!prober) {
      log.error(`Prober does not exists url ${path}`);
      return respond(req, res, 400, `app prober config does not exists for ${path}`);
    }
    const p = await this.#load();
    switch (prober.kind) {
      case 'httpGet':
        return this.#http(p, req, res, path, prober);
      case 'tcpSocket':
        try {
          await p.tcpProbe(this.s.destination, prober.port, { timeoutMs: prober.timeoutSeconds * 1000, localAddress: this.s.localAddress });
          return respond(req, res, 200);
        } catch (err) {
          probesLog.error(`Request to probe app failed: ${errorMessage(err)}, original URL path = ${path}`);
          return respond(req, res, 500);
        }
      case 'grpc':
        return this.#grpc(p, req, res, prober);
    }
  }

  async #http(p: Probers, req: IncomingMessage, res: ServerResponse, path: string, prober: Extract<AppProber, { kind: 'httpGet' }>): Promise<void> {
    const headers = incomingHeaders(req);
    // The kubelet's Host is kept (it carries the probe's `host`/Host header); its port is the
    // status port it dialled, which is replaced by the application's.
    let hostHeader = req.headers.host;
    headers.forEach((_v, k) => k.toLowerCase() === 'host' && headers.delete(k));
    if (hostHeader !== undefined) {
      const hp = splitHostPort(hostHeader);
      if (hp && /^\d+$/.test(hp.port) && Number(hp.port) === this.s.statusPort) hostHeader = joinHostPort(hp.host, prober.port);
    }
    let agent: Agent | undefined;
    if (this.s.keepAlive && prober.scheme === 'HTTP') {
      agent = this.#agents.get(path);
      if (!agent) {
        agent = new Agent({ keepAlive: true, maxSockets: 1, localAddress: this.s.localAddress });
        this.#agents.set(path, agent);
      }
    }
    try {
      const r = await p.httpGetProbe(
        { scheme: prober.scheme === 'HTTPS' ? 'https' : 'http', host: this.s.destination, port: prober.port, path: prober.path },
        {
          headers,
          ...(hostHeader ? { hostHeader } : {}),
          timeoutMs: prober.timeoutSeconds * 1000,
          localAddress: this.s.localAddress,
          http2: this.s.http2,
          ...(agent ? { agent } : {}),
          maxBodyBytes: MAX_PROBE_BODY_BYTES,
          redirects: 'kubelet',
        },
      );
      // A redirect answer has no body worth passing on, and without Location a 3xx is illegal.
      if (p.isRedirect(r.status)) return respond(req, res, 200);
      return respond(req, res, r.status, r.body, r.body.length > 0 ? { 'Content-Type': 'text/plain; charset=utf-8' } : {});
    } catch (err) {
      probesLog.error(`Request to probe app failed: ${errorMessage(err)}, original URL path = ${path}\napp URL path = ${prober.path}`);
      return respond(req, res, 500);
    }
  }

  async #grpc(p: Probers, req: IncomingMessage, res: ServerResponse, prober: Extract<AppProber, { kind: 'grpc' }>): Promise<void> {
    // Deviation from Istio (handleAppProbeGRPC): a missing timeoutSeconds is Kubernetes' default
    // of 1 s instead of a deadline that has already passed (which makes every such probe fail).
    const timeoutMs = (prober.timeoutSeconds > 0 ? prober.timeoutSeconds : 1) * 1000;
    try {
      const status = await p.grpcHealthProbe(this.s.destination, prober.port, {
        service: prober.service,
        timeoutMs,
        localAddress: this.s.localAddress,
        ...(req.headers['user-agent'] ? { userAgent: req.headers['user-agent'] } : {}),
      });
      if (status === 'SERVING') return respond(req, res, 200);
      probesLog.error(`grpc probe failed: service ${JSON.stringify(prober.service)} is ${status}`);
    } catch (err) {
      const msg = errorMessage(err);
      if (msg.includes('code = Unimplemented')) probesLog.error(`server does not implement the grpc health protocol (grpc.health.v1.Health): ${msg}`);
      else if (msg.includes('code = DeadlineExceeded')) probesLog.error(`grpc request not finished within timeout: ${msg}`);
      else probesLog.error(`grpc probe failed: ${msg}`);
    }
    return respond(req, res, 500);
  }

  close(): void {
    for (const a of this.#agents.values()) a.destroy();
    this.#agents.clear();
  }
}
