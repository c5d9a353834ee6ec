// The metrics-source reader (agent/status/source.ts): HTTP/1.1 body framing by Content-Length,
// chunked coding (split at every possible point) and end of connection, against raw TCP servers
// that answer exactly the bytes a test gives them; failures midway; the one reused read buffer.
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import t from 'tap';
import { decodeBody, getSource, SourceError } from '../../../agent/status/source.js';

/** A server that answers every connection with `reply` (bytes written as given, then closed unless `keepOpen`). */
async function raw(reply: (s: Socket) => void): Promise<{ port: number; close(): void; requests: string[] }> {
  const requests: string[] = [];
  const srv = createServer((s) => {
    s.once('data', (d) => {
      requests.push(d.toString());
      reply(s);
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return { port: (srv.address() as { port: number }).port, close: () => srv.close(), requests };
}

const collect = async (port: number, path = '/m') => {
  const r = await getSource(port, path, { Accept: 'text/plain' }, new AbortController().signal);
  const parts: Buffer[] = [];
  // Copy: the chunk is a view into the reused buffer.
  const ok = await r.pipe((c, done) => {
    parts.push(Buffer.from(c));
    setImmediate(done);
  });
  return { ok, body: Buffer.concat(parts).toString(), headers: r.headers };
};

t.test('Content-Length, chunked and close-delimited bodies arrive whole', async (t) => {
  const body = 'x'.repeat(200_000) + '\n# TYPE a gauge\na 1\n';
  const cl = await raw((s) => s.end(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`));
  const chunked = await raw((s) => {
    s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (let i = 0; i < body.length; i += 7000) {
      const part = body.slice(i, i + 7000);
      s.write(`${part.length.toString(16)};ext=1\r\n${part}\r\n`);
    }
    s.end('0\r\nX-Trailer: y\r\n\r\n');
  });
  const close = await raw((s) => s.end(`HTTP/1.0 200 OK\r\n\r\n${body}`));
  t.teardown(() => [cl, chunked, close].forEach((x) => x.close()));
  for (const [name, srv] of [
    ['content-length', cl],
    ['chunked', chunked],
    ['close-delimited', close],
  ] as const) {
    const r = await collect(srv.port);
    t.ok(r.ok, name);
    t.equal(r.body, body, `${name}: the body, byte for byte`);
  }
  t.match(cl.requests[0], /^GET \/m HTTP\/1\.1\r\nHost: localhost:\d+\r\nAccept: text\/plain\r\nConnection: close\r\n\r\n$/, 'the request');
});

t.test('chunked decoding survives any split of the stream', async (t) => {
  const stream = Buffer.from('5\r\nhello\r\n1;x\r\n,\r\n6\r\n world\r\n0\r\n\r\n');
  for (let cut = 1; cut < stream.length; cut++) {
    const f = { kind: 'chunked' as const, state: 'size' as const, remaining: 0, line: '' };
    const a = decodeBody(f, stream.subarray(0, cut));
    const b = decodeBody(f, stream.subarray(cut));
    t.equal(Buffer.concat([...a.slices, ...b.slices]).toString(), 'hello, world', `cut at ${cut}`);
    t.ok(b.complete && !a.complete, `cut at ${cut}: complete at the end only`);
  }
  t.throws(() => decodeBody({ kind: 'chunked', state: 'size', remaining: 0, line: '' } as never, Buffer.from('zz\r\n')), SourceError);
});

t.test('failures: non-200, cut short, refused, aborted', async (t) => {
  const e500 = await raw((s) => s.end('HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n'));
  const short = await raw((s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this'));
  const hang = await raw(() => {});
  t.teardown(() => [e500, short, hang].forEach((x) => x.close()));
  await t.rejects(getSource(e500.port, '/', {}, new AbortController().signal), /status code: 500/);
  const r = await collect(short.port);
  t.equal(r.ok, false, 'a body cut short is a failure');
  t.equal(r.body, 'only this', 'what arrived was passed on');
  const ctl = new AbortController();
  const p = getSource(hang.port, '/', {}, ctl.signal);
  setTimeout(() => ctl.abort('deadline'), 50);
  await t.rejects(p, /deadline/);
  const closed = await raw(() => {});
  closed.close();
  await new Promise((r) => setTimeout(r, 20));
  await t.rejects(getSource(closed.port, '/', {}, new AbortController().signal), /ECONNREFUSED/);
});

t.test('readAll: copies, with a cap', async (t) => {
  const srv = await raw((s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789'));
  t.teardown(() => srv.close());
  t.equal((await (await getSource(srv.port, '/', {}, new AbortController().signal)).readAll(10)).toString(), '0123456789');
  await t.rejects((await getSource(srv.port, '/', {}, new AbortController().signal)).readAll(9), /body exceeds 9 bytes/);
});
