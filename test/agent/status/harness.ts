// An in-process status server for tests: Istio-like defaults (no Envoy probe unless an admin
// port is given), a free status port, a real ShutdownController, and the agent log in a file.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configureLogging } from '../../../lib/log.js';
import { ShutdownController } from '../../../agent/agent.js';
import { parseAppProbers, StatusServer, type StatusServerDeps, type StatusServerOptions } from '../../../agent/status/index.js';
import { freePort } from '../../support/ports.js';

const logFile = join(mkdtempSync(join(tmpdir(), 'status-log-')), 'agent.log');
configureLogging({ targets: [logFile], outputLevels: 'default:debug,probes:debug' });

export interface Harness {
  server: StatusServer;
  port: number;
  lifecycle: ShutdownController;
  /** the agent log so far */
  log(): string;
  stop(): Promise<void>;
}

export type TestOptions = Partial<Omit<StatusServerOptions, 'appProbers'>> & { appProbers?: string };

export async function statusServer(o: TestOptions = {}, deps: StatusServerDeps = {}, cwd = process.cwd()): Promise<Harness> {
  const statusPort = o.statusPort ?? (await freePort());
  const options: StatusServerOptions = {
    statusPort,
    adminPort: 1,
    adminHost: '127.0.0.1',
    probeSourceAddress: '127.0.0.6',
    probeDestination: '127.0.0.1',
    scrape: undefined,
    envoyPrometheusPort: 1,
    noEnvoy: o.adminPort === undefined,
    mergeEnvoyStats: true,
    grpcBootstrap: '',
    profiling: true,
    metricsLocalhostOnly: false,
    http2Probing: true,
    probeKeepAlive: false,
    cwd,
    ...o,
    appProbers: parseAppProbers(o.appProbers ?? ''),
  };
  const lifecycle = new ShutdownController();
  const server = new StatusServer(options, lifecycle, deps);
  await server.start(lifecycle.signal);
  return { server, port: server.port!, lifecycle, log: () => readFileSync(logFile, 'utf8'), stop: () => server.stop() };
}
