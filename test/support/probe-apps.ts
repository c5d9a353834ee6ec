// Test applications for probes and metrics: an HTTP(S) app with the paths Istio's status-server
// tests use (header checks, redirects, status codes), a gRPC health server (grpc-js, the real
// thing), and a plain TCP listener. Each records the peer address of every request so tests can
// see a probe arrive from 127.0.0.6. Usable in process, or in a network namespace through
// probe-app-main.ts.
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createH2cServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pb from 'protobufjs/minimal.js';

export interface Seen {
  path: string;
  remote: string;
  remotePort?: number;
  protocol: string;
  host: string;
  headers: Record<string, string | string[] | undefined>;
  rawHeaders: string[];
}

export interface App {
  port: number;
  seen: Seen[];
  close(): Promise<void>;
}

export const HEADER_NAME = 'Some-Header';
export const HEADER_VALUE = 'some-value';
export const HOST_VALUE = 'test.com:9999';

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** A peer address without port, brackets, `ipv4:`/`ipv6:` (gRPC) or the IPv4-mapped prefix. */
function plainAddress(a: string): string {
  const m = /^(?:ipv[46]:)?(?:\[([^\]]+)\]|([\d.]+)):\d+$/.exec(a);
  return (m ? (m[1] ?? m[2]!) : a).replace(/^::ffff:(?=\d+\.)/, '');
}

/**
 * Istio's test handler (server_test.go `handler`), plus `/big/<n>` (n bytes), `/slow/<ms>`, and
 * `sick` apps that answer 503 to everything.
 */
function handle(seen: Seen[], req: Req, res: Res, sick = false): void {
  const url = new URL(req.url ?? '/', 'http://app');
  const host = req.headers.host ?? (req.headers as Record<string, string | undefined>)[':authority'] ?? '';
  seen.push({
    path: url.pathname + url.search,
    remote: plainAddress(req.socket.remoteAddress ?? ''),
    remotePort: req.socket.remotePort ?? 0,
    protocol: `HTTP/${req.httpVersion === '2.0' ? '2.0' : '1.1'}`,
    host,
    headers: { ...req.headers },
    rawHeaders: [...req.rawHeaders],
  });
  const seg = url.pathname.slice(1).split('/');
  const r = res as ServerResponse;
  if (sick) {
    r.writeHead(503).end('sick');
    return;
  }
  switch (seg[0]) {
    case 'header': {
      const ok = host === HOST_VALUE && req.headers[HEADER_NAME.toLowerCase()] === HEADER_VALUE;
      r.writeHead(ok ? 200 : 400).end();
      return;
    }
    case 'redirect':
      r.writeHead(301, { Location: '/' }).end();
      return;
    case 'redirect-loop':
      r.writeHead(301, { Location: '/redirect-loop' }).end();
      return;
    case 'remote-redirect':
      r.writeHead(301, { Location: 'http://example.com/foo' }).end();
      return;
    case '':
    case 'hello':
      r.writeHead(200).end('welcome, it works');
      return;
    case 'status':
      r.writeHead(Number(seg[1]), { Location: '/' }).end();
      return;
    case 'big':
      r.writeHead(200).end('x'.repeat(Number(seg[1])));
      return;
    case 'slow':
      setTimeout(() => r.writeHead(200).end('slow'), Number(seg[1]));
      return;
    default:
      r.writeHead(200).end();
  }
}

async function listen(server: Server | ReturnType<typeof createTlsServer> | ReturnType<typeof createNetServer>, port: number, host: string): Promise<number> {
  server.listen(port, host);
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

function closer(server: { close(cb?: () => void): unknown; closeAllConnections?: () => void }): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections?.();
    });
}

export async function startHttpApp(port = 0, host = '127.0.0.1', sick = false): Promise<App> {
  const seen: Seen[] = [];
  const server = createHttpServer((req, res) => handle(seen, req, res, sick));
  return { port: await listen(server, port, host), seen, close: closer(server) };
}

let certCache: { key: Buffer; cert: Buffer } | undefined;
/** A throwaway self-signed certificate (openssl, as in CI). */
export function testCert(): { key: Buffer; cert: Buffer } {
  if (certCache) return certCache;
  const dir = mkdtempSync(join(tmpdir(), 'probe-cert-'));
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '1', '-subj', '/CN=localhost'],
    { stdio: 'ignore' },
  );
  certCache = { key: readFileSync(join(dir, 'k.pem')), cert: readFileSync(join(dir, 'c.pem')) };
  return certCache;
}

/**
 * An HTTPS app offering `alpn` (undefined = no ALPN; `['foo']` = none the client knows). HTTP/1.1
 * and HTTP/2 are both served, so the protocol the probe picked is what `seen` records.
 */
export async function startHttpsApp(alpn: string[] | undefined, port = 0, host = '127.0.0.1', sick = false): Promise<App> {
  const seen: Seen[] = [];
  const { key, cert } = testCert();
  // TLS terminates here; the protocol ALPN picked decides which server reads the connection.
  const h1 = createHttpServer((req, res) => handle(seen, req, res, sick));
  const h2 = createH2cServer((req, res) => handle(seen, req, res, sick));
  const server = createTlsServer({ key, cert, ...(alpn ? { ALPNProtocols: alpn } : {}) }, (sock) => {
    if (sock.alpnProtocol === 'h2') h2.emit('connection', sock);
    else h1.emit('connection', sock);
  });
  const close = closer(server);
  return {
    port: await listen(server, port, host),
    seen,
    close: async () => {
      h1.closeAllConnections();
      await close();
    },
  };
}

/** A TCP listener that accepts and closes. */
export async function startTcpApp(port = 0, host = '127.0.0.1'): Promise<App> {
  const seen: Seen[] = [];
  const server = createNetServer((s) => {
    seen.push({ path: '', remote: plainAddress(s.remoteAddress ?? ''), protocol: 'tcp', host: '', headers: {}, rawHeaders: [] });
    s.destroy();
  });
  return { port: await listen(server, port, host), seen, close: closer(server) };
}

const STATUS = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;

/**
 * A grpc-js server with grpc.health.v1.Health/Check: `statuses` maps service names to status
 * names ('' = the overall health); unknown services answer NOT_FOUND, as grpc-go's health server.
 */
export async function startGrpcHealthApp(statuses: Record<string, keyof typeof STATUS>, port = 0, host = '127.0.0.1', opts: { delayMs?: number } = {}): Promise<App> {
  const grpc = await import('@grpc/grpc-js');
  const seen: Seen[] = [];
  const server = new grpc.Server();
  const service = {
    Check: {
      path: '/grpc.health.v1.Health/Check',
      requestStream: false,
      responseStream: false,
      requestSerialize: (v: { service: string }) => Buffer.from(pb.Writer.create().uint32(10).string(v.service).finish()),
      // An object, not the bare string: grpc-js takes a falsy request ('') for a missing one.
      requestDeserialize: (b: Buffer) => {
        const r = pb.Reader.create(b);
        let service = '';
        while (r.pos < r.len) {
          const tag = r.uint32();
          if (tag >>> 3 === 1) service = r.string();
          else r.skipType(tag & 7);
        }
        return { service };
      },
      responseSerialize: (status: number) => Buffer.from(pb.Writer.create().uint32(8).int32(status).finish()),
      responseDeserialize: (b: Buffer) => b[1] ?? 0,
    },
  };
  server.addService(service, {
    Check: (call: import('@grpc/grpc-js').ServerUnaryCall<{ service: string }, number>, cb: import('@grpc/grpc-js').sendUnaryData<number>) => {
      // grpc-js peers are `host:port`, IPv6 hosts unbracketed.
      const peer = call.getPeer();
      seen.push({
        path: `/grpc.health.v1.Health/Check?service=${call.request.service}`,
        remote: plainAddress(peer.slice(0, peer.lastIndexOf(':')).replace(/^ipv[46]:/, '')),
        protocol: 'grpc',
        host: '',
        headers: { 'user-agent': String(call.metadata.get('user-agent')[0] ?? '') },
        rawHeaders: [],
      });
      const reply = () => {
        const s = statuses[call.request.service];
        if (s === undefined) cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
        else cb(null, STATUS[s]);
      };
      if (opts.delayMs) setTimeout(reply, opts.delayMs);
      else reply();
    },
  });
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { port: bound, seen, close: () => new Promise((resolve) => server.tryShutdown(() => resolve())) };
}
