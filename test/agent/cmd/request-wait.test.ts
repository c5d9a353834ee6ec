// Ports of Istio's Test_command_do (pilot/pkg/request/command_test.go) and the `wait` contract,
// against a real local HTTP server; the CLI is spawned for the exit-code cases.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { doRequest } from '../../../agent/cmd/request.js';
import { waitForReady } from '../../../agent/cmd/wait.js';
import { runCliToEnd } from '../../support/cli.js';

interface Seen {
  method: string;
  url: string;
  body: string;
}

async function server(handler: (req: IncomingMessage, body: string) => [number, string]): Promise<{ srv: Server; port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const srv = createServer(
    (req, res) =>
      void (async () => {
        let body = '';
        for await (const c of req) body += c;
        seen.push({ method: req.method!, url: req.url!, body });
        const [code, text] = handler(req, body);
        res.writeHead(code).end(text);
      })(),
  );
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { srv, port: (srv.address() as AddressInfo).port, seen };
}

t.test('Test_command_do', async (t) => {
  const s = await server((req) => (req.url === '/missing' ? [404, 'nope'] : req.url === '/fail' ? [500, 'boom'] : [200, 'ok-body']));
  t.teardown(() => s.srv.close());
  // The port allow-list is checked first; the test server is then dialled in place of localhost:15000.
  const call = (method: string, path: string, body?: string) => doRequest({ method, path, body, debugPort: 15000, authority: `127.0.0.1:${s.port}` }).catch((e: Error) => e);

  t.equal(await call('POST', '/quitquitquit', 'a body'), 'ok-body', 'makes a request using passed method, url and body');
  t.same(s.seen.at(-1), { method: 'POST', url: '/quitquitquit', body: 'a body' });
  await call('GET', 'stats');
  t.equal(s.seen.at(-1)!.url, '/stats', 'adds / prefix to path if required');
  await call('GET', 'stats', '');
  t.equal(s.seen.at(-1)!.body, '', 'handles empty string body in args');
  t.equal(await call('GET', '/missing'), 'nope', "doesn't error on 404");
  const e = await call('GET', '/fail');
  t.match(String(e), /received unsuccessful status code 500: boom/, 'errors if Pilot responds with a non success status');
  s.srv.close();
  await once(s.srv, 'close');
  t.match(String(await call('GET', '/x')), /RequestError|ECONNREFUSED|fetch failed|connect/i, 'errors if Pilot is unreachable');
});

t.test('debug port must be in the allow-list', async (t) => {
  await t.rejects(doRequest({ method: 'GET', path: 'x', debugPort: 8080 }), /debug port 8080 is not in allowed list \[15000 15004 15020 15021\]/);
});

t.test('CLI: request prints only the body; errors exit 255', async (t) => {
  // Port 15004 has had no listener since Istio dropped its debug tap, so it is free here.
  const s = await new Promise<Server>((resolve) => {
    const srv = createServer((req, res) => res.writeHead(req.url === '/bad' ? 503 : 200).end(req.url === '/bad' ? 'down' : '{"k":1}'));
    srv.listen(15004, '127.0.0.1', () => resolve(srv));
  });
  t.teardown(() => s.close());
  const ok = await runCliToEnd(['request', '--debug-port=15004', 'GET', 'config_dump']);
  t.equal(ok.code, 0);
  t.equal(ok.stdout, '{"k":1}\n');
  const bad = await runCliToEnd(['request', '--debug-port', '15004', 'GET', '/bad']);
  t.equal(bad.code, 255);
  t.match(bad.stdout, /error\treceived unsuccessful status code 503: down/);
  const few = await runCliToEnd(['request', 'GET']);
  t.equal(few.code, 255);
  t.match(few.stdout, /requires at least 2 arg\(s\), only received 1/);
  const port = await runCliToEnd(['request', '--debug-port=9999', 'GET', 'x']);
  t.equal(port.code, 255);
  t.match(port.stdout, /debug port 9999 is not in allowed list/);
});

t.test('wait: ready after a few attempts; timeout names the last error', async (t) => {
  let n = 0;
  const s = await server(() => (++n < 3 ? [503, ''] : [200, '']));
  t.teardown(() => s.srv.close());
  let ready = false;
  await waitForReady({ url: `http://127.0.0.1:${s.port}/healthz/ready`, timeoutSeconds: 5, requestTimeoutMillis: 500, periodMillis: 50 }, () => (ready = true));
  t.ok(ready);
  t.equal(n, 3);

  const never = await server(() => [503, '']);
  t.teardown(() => never.srv.close());
  await t.rejects(
    waitForReady({ url: `http://127.0.0.1:${never.port}/`, timeoutSeconds: 0.3, requestTimeoutMillis: 100, periodMillis: 50 }),
    /timeout waiting for Envoy proxy to become ready\. Last error: HTTP status code 503/,
  );
  const res = await runCliToEnd(['wait', `--url=http://127.0.0.1:${never.port}/`, '--timeoutSeconds=1', '--periodMillis', '100']);
  t.equal(res.code, 255);
  t.match(res.stdout, /timeout waiting for Envoy proxy to become ready/);
  const okRun = await runCliToEnd(['wait', `--url=http://127.0.0.1:${s.port}/`, '--periodMillis=50']);
  t.equal(okRun.code, 0);
  t.match(okRun.stdout, /Envoy is ready!/);
});
