// `/debug/pprof/*` (with --profiling, the default) and `/debug/ndsz`, loopback only (Istio's
// pilot/cmd/pilot-agent/status/server.go). Go's pprof has no Node equivalent; the same paths
// serve what Node can give: the command line, a V8 CPU profile (`profile?seconds=N`, Chrome
// DevTools `.cpuprofile` JSON) and a V8 heap snapshot (`heap`). Go-only profiles answer 501.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { respond, respondError } from './respond.js';

const INDEX = `/debug/pprof/

Profiles available from this agent (Node.js):
  cmdline   the command line (NUL-separated, as Go's pprof)
  profile   V8 CPU profile, ?seconds=N (default 30), Chrome DevTools .cpuprofile JSON
  heap      V8 heap snapshot (.heapsnapshot JSON)
Go-only profiles (goroutine, block, mutex, threadcreate, allocs, symbol, trace) are not available.
`;

async function cpuProfile(seconds: number): Promise<string> {
  const { Session } = await import('node:inspector');
  const session = new Session();
  session.connect();
  const post = <T>(method: string, params?: object) => new Promise<T>((resolve, reject) => session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res as T))));
  try {
    await post('Profiler.enable');
    await post('Profiler.start');
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const { profile } = await post<{ profile: unknown }>('Profiler.stop');
    return JSON.stringify(profile);
  } finally {
    session.disconnect();
  }
}

export async function handlePprof(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> {
  const name = path.slice('/debug/pprof/'.length);
  switch (name) {
    case '':
      return respond(req, res, 200, INDEX, { 'Content-Type': 'text/plain; charset=utf-8' });
    case 'cmdline':
      return respond(req, res, 200, process.argv.join('\x00'), { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
    case 'profile': {
      const raw = query.get('seconds');
      const seconds = raw === null ? 30 : Number(raw);
      if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 600) return respondError(req, res, 400, `invalid seconds: ${raw}`);
      const body = await cpuProfile(seconds);
      return respond(req, res, 200, body, { 'Content-Type': 'application/json', 'Content-Disposition': 'attachment; filename="agent.cpuprofile"' });
    }
    case 'heap': {
      const { getHeapSnapshot } = await import('node:v8');
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Disposition': 'attachment; filename="agent.heapsnapshot"' });
      getHeapSnapshot().pipe(res);
      return;
    }
    default:
      return respondError(req, res, 501, `profile ${name} is not available in the Node.js agent`);
  }
}
