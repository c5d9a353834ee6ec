// Workload certificates: cold time-to-first-`default` over SDS against the gRPC/TLS test CA on
// loopback (in its own process, as istiod would be), RSA and ECDSA, side by side with the floor
// (bare key generation + CSR + the CA's signing, in-process, no gRPC); and the agent's memory
// with 100 concurrent SDS streams.
//
// "Cold" = every run builds a new SDS subsystem from the environment: empty cache, a new CA
// client with its own TLS handshake, a new SDS server and socket, a new SDS client connection.
// Modules are loaded by then; the first run in a fresh process (module and JIT warm-up) is
// reported on its own line.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { resolveAgentConfig } from '../config/index.js';
import { generateKeyAndCsr, SdsSubsystem } from '../agent/security/index.js';
import { configureLogging } from '../lib/log.js';
import { SdsTestClient } from '../test/support/sds-client.js';
import { CertificateAuthority } from '../agent/security/local-ca/index.js';
import type { BenchResult } from './result.js';
import { median, percentile, procStatusKb } from './stats.js';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const RUNS = 50;

type Algo = 'RSA' | 'ECDSA';
const keyEnv: Record<Algo, Record<string, string>> = { RSA: {}, ECDSA: { ECC_SIGNATURE_ALGORITHM: 'ECDSA' } };

interface CaProcess {
  address: string;
  rootPem: string;
  stop(): void;
}

/** Starts test/support/test-ca-main.js and waits for its port. */
async function startCaProcess(dir: string): Promise<CaProcess> {
  const rootPath = join(dir, 'ca-root.pem');
  const child = spawn(process.execPath, [resolve(root, 'dist/test/support/test-ca-main.js'), rootPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((res, rej) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /READY (\d+)/.exec(out);
      if (m) res(Number(m[1]));
    });
    child.on('exit', () => rej(new Error('test CA exited')));
  });
  return { address: `localhost:${port}`, rootPem: readFileSync(rootPath, 'utf8'), stop: () => child.kill('SIGTERM') };
}

async function timeToFirstDefault(ca: CaProcess, algo: Algo): Promise<number> {
  const cwd = mkdtempSync(join(tmpdir(), 'bench-sds-'));
  mkdirSync(join(cwd, 'var/run/secrets/istio'), { recursive: true });
  writeFileSync(join(cwd, 'var/run/secrets/istio/root-cert.pem'), ca.rootPem);
  const env = { POD_NAMESPACE: 'bench', SERVICE_ACCOUNT: 'bench', CA_ADDR: ca.address, ...keyEnv[algo] };
  const config = resolveAgentConfig({ env, files: {}, interfaces: [], parseYaml: (s) => JSON.parse(s) }).config;
  const t0 = process.hrtime.bigint();
  const sds = new SdsSubsystem(config, { cwd });
  await sds.start();
  sds.afterStart(); // as the agent does once Envoy is spawned
  const c = await SdsTestClient.connect(join(cwd, 'var/run/secrets/workload-spiffe-uds/socket'));
  c.send({ type_url: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret', resource_names: ['default'], node: { id: 'sidecar~127.0.0.1~bench.bench~bench.svc.cluster.local' } });
  await c.next();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  c.close();
  await sds.stop();
  rmSync(cwd, { recursive: true, force: true });
  return ms;
}

/** The floor: what any agent must spend — key, CSR, and the CA signing it (same libraries, in-process). */
async function floor(ca: CertificateAuthority, algo: Algo): Promise<number> {
  const t0 = process.hrtime.bigint();
  const kc = await generateKeyAndCsr({ eccSignatureAlgorithm: algo === 'ECDSA' ? 'ECDSA' : '', eccCurve: 'P256', rsaKeySize: 2048, pkcs8: false }, 'spiffe://cluster.local/ns/bench/sa/bench');
  await ca.sign(kc.csrPem, { ttlSeconds: 86400, verifyCsr: false });
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** RSS of a real `pilot-agent proxy` (local CA) before and after 100 SDS streams subscribe. */
async function streamsRss(): Promise<{ before: number; after: number }> {
  const cwd = mkdtempSync(join(tmpdir(), 'bench-rss-'));
  // No istiod: plaintext XDS, so the XDS proxy needs no istiod root.
  const env = {
    PATH: process.env.PATH,
    POD_NAMESPACE: 'bench',
    SERVICE_ACCOUNT: 'bench',
    CA_PROVIDER: 'local',
    DISABLE_ENVOY: 'true',
    ECC_SIGNATURE_ALGORITHM: 'ECDSA',
    PROXY_CONFIG: '{"controlPlaneAuthPolicy":"NONE"}',
  };
  const child = spawn(process.execPath, [resolve(root, 'dist/bundle/pilot-agent.mjs'), 'proxy', 'sidecar'], { cwd, env, stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    await new Promise<void>((res, rej) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('workload certificate and root are ready') && out.includes('SDS server for workload certificates started')) res();
      });
      child.on('exit', () => rej(new Error(`agent exited early:\n${out}`)));
    });
    const socket = join(cwd, 'var/run/secrets/workload-spiffe-uds/socket');
    // Warm the server path with one stream, then measure.
    const warm = await SdsTestClient.connect(socket);
    await warm.subscribe(['default']);
    warm.close();
    await new Promise((r) => setTimeout(r, 500));
    const before = procStatusKb(child.pid!);
    const clients = await Promise.all(Array.from({ length: 100 }, () => SdsTestClient.connect(socket)));
    await Promise.all(clients.map((c, i) => c.subscribe([i % 2 ? 'default' : 'ROOTCA'])));
    await new Promise((r) => setTimeout(r, 500));
    const after = procStatusKb(child.pid!);
    for (const c of clients) c.close();
    return { before, after };
  } finally {
    child.kill('SIGTERM');
    rmSync(cwd, { recursive: true, force: true });
  }
}

export async function sdsBench(): Promise<BenchResult> {
  configureLogging({ outputLevels: 'none' });
  const dir = mkdtempSync(join(tmpdir(), 'bench-'));
  const ca = await startCaProcess(dir);
  // The floor signs in-process with a CA of the same kind (ECDSA P-256 root, same library).
  const floorCa = await CertificateAuthority.createRoot({ organization: 'cluster.local' });
  try {
    const firstT0 = process.hrtime.bigint();
    await timeToFirstDefault(ca, 'ECDSA');
    const firstRun = Number(process.hrtime.bigint() - firstT0) / 1e6;
    const runs: Record<string, number[]> = { 'RSA sds': [], 'RSA floor': [], 'ECDSA sds': [], 'ECDSA floor': [] };
    for (let i = 0; i < RUNS; i++) {
      // Interleaved so machine noise hits every variant alike.
      for (const algo of ['RSA', 'ECDSA'] as const) {
        runs[`${algo} sds`]!.push(await timeToFirstDefault(ca, algo));
        runs[`${algo} floor`]!.push(await floor(floorCa, algo));
      }
    }
    const rss = await streamsRss();
    const p = (xs: number[], q: number) =>
      percentile(
        [...xs].sort((a, b) => a - b),
        q,
      ).toFixed(1);
    const row = (algo: Algo) => {
      const sds = runs[`${algo} sds`]!;
      const fl = runs[`${algo} floor`]!;
      return [algo === 'RSA' ? 'RSA 2048' : 'ECDSA P-256', p(sds, 50), p(sds, 99), p(fl, 50), p(fl, 99), (median(sds) / median(fl)).toFixed(2)];
    };
    return {
      title: `Workload certificates: cold time to first \`default\` over SDS (${RUNS} runs each, interleaved)`,
      rows: [['key', 'SDS p50 ms', 'SDS p99 ms', 'floor p50 ms', 'floor p99 ms', 'p50 / floor'], row('RSA'), row('ECDSA')],
      notes: [
        `First run in this process (ECDSA, includes loading gRPC, protos and @peculiar/x509): ${firstRun.toFixed(1)} ms.`,
        `Targets: ECDSA p50 ≤ 25 ms → ${median(runs['ECDSA sds']!).toFixed(1)} ms; RSA p50 within 1.2× its floor → ${(median(runs['RSA sds']!) / median(runs['RSA floor']!)).toFixed(2)}×.`,
        `Agent RSS (pilot-agent proxy, local CA): ${(rss.before / 1024).toFixed(1)} MiB before, ${(rss.after / 1024).toFixed(1)} MiB with 100 concurrent SDS streams (+${((rss.after - rss.before) / 1024).toFixed(1)} MiB, ${((rss.after - rss.before) / 100).toFixed(0)} KiB per stream).`,
      ],
    };
  } finally {
    ca.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
