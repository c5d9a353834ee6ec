// Runs probe-apps.ts servers as one process (for network namespaces): each argument is
// `http:<port>`, `https:<port>`, `sick:<port>` / `sicks:<port>` (HTTP / HTTPS answering 503),
// `tcp:<port>` or `grpc:<port>` (grpc: '' SERVING, `down` NOT_SERVING), optionally `@<host>`
// (default: all addresses). Prints `ready` once all listen,
// then one `SEEN <json>` line per request each app receives.
import { startGrpcHealthApp, startHttpApp, startHttpsApp, startTcpApp, type App } from './probe-apps.js';

const apps: { name: string; app: App }[] = [];
for (const arg of process.argv.slice(2)) {
  const [spec, host = '::'] = arg.split('@') as [string, string?];
  const [kind, portText] = spec.split(':') as [string, string];
  const port = Number(portText);
  let app: App;
  if (kind === 'http') app = await startHttpApp(port, host);
  else if (kind === 'https') app = await startHttpsApp(['h2', 'http/1.1'], port, host);
  else if (kind === 'sick') app = await startHttpApp(port, host, true);
  else if (kind === 'sicks') app = await startHttpsApp(['h2', 'http/1.1'], port, host, true);
  else if (kind === 'tcp') app = await startTcpApp(port, host);
  else if (kind === 'grpc') app = await startGrpcHealthApp({ '': 'SERVING', down: 'NOT_SERVING' }, port, host);
  else throw new Error(`unknown app kind ${kind}`);
  apps.push({ name: spec, app });
}
process.stdout.write('ready\n');
const printed = new Map<App, number>();
setInterval(() => {
  for (const { name, app } of apps) {
    const from = printed.get(app) ?? 0;
    for (const s of app.seen.slice(from)) process.stdout.write(`SEEN ${JSON.stringify({ app: name, ...s })}\n`);
    printed.set(app, app.seen.length);
  }
}, 20);
