// XDS proxy relay: 1,000 responses of 100 KB from a control plane (its own process, as istiod)
// to an ADS client that ACKs each one as Envoy does, the client connected directly to the
// control plane or through a real `pilot-agent proxy` (its own process; DISABLE_ENVOY, so only
// the XDS proxy and SDS run) over the agent's XDS socket. Interleaved rounds, each with a new
// client connection (and so, through the agent, a new upstream connection). The client's HTTP/2
// windows are Envoy's defaults (256 MiB), so flow control is the agent's, not the client's.
//
// Two control planes: TLS (istiod's port 15012; the direct client speaks TLS to it, the proxied
// one plaintext to the agent's socket while the agent speaks TLS upstream — the deployed shape)
// and plaintext (the bare relay cost). Also the agent's RSS across the rounds: relayed messages
// must not leave memory behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { encodeRequest } from '../agent/xds/wire.js';
import type { BenchResult } from './result.js';
import { median, percentile, procStatusKb } from './stats.js';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const COUNT = 1000;
const SIZE = 100 * 1024;
const ROUNDS = 12;
const WARMUP = 2;
/** Envoy's default initial stream and connection windows. */
const ENVOY_WINDOW = 256 * 1024 * 1024;
const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';

/** Starts a child and resolves with it once `ready` matches its stdout. */
function startChild(args: string[], ready: RegExp, opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(process.execPath, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((res, rej) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m) res({ child, match: m });
    });
    child.on('exit', (code) => rej(new Error(`${args[0]} exited (${code}) before it was ready:\n${out}`)));
  });
}

/** CPU time (user + system) a process has used, ms (10 ms resolution). */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

/** A DiscoveryRequest / DeltaDiscoveryRequest with only type_url (and the nonce of an ACK). */
function request(delta: boolean, nonce = ''): Buffer {
  return encodeRequest({ typeUrl: CDS, responseNonce: nonce }, delta ? 'delta' : 'sotw');
}

interface Target {
  address: string;
  creds: grpc.ChannelCredentials;
  options: grpc.ChannelOptions;
}

/** ms from the subscription to the last of COUNT responses, on a new connection. */
async function relay(target: Target, delta: boolean): Promise<number> {
  const raw = (b: Buffer) => b;
  const client = new grpc.Client(target.address, target.creds, {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.max_receive_message_length': -1,
    'grpc-node.flow_control_window': ENVOY_WINDOW,
    ...target.options,
  });
  const ack = request(delta, 'n1');
  try {
    return await new Promise<number>((res, rej) => {
      const call = client.makeBidiStreamRequest(`/envoy.service.discovery.v3.AggregatedDiscoveryService/${delta ? 'DeltaAggregatedResources' : 'StreamAggregatedResources'}`, raw, raw);
      let n = 0;
      const t0 = process.hrtime.bigint();
      call.on('data', (b: Buffer) => {
        if (b.length < SIZE) return rej(new Error(`short response (${b.length} bytes)`));
        call.write(ack);
        if (++n === COUNT) {
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          call.cancel();
          res(ms);
        }
      });
      call.on('error', (e: grpc.ServiceError) => {
        if (n < COUNT) rej(e);
      });
      call.write(request(delta));
    });
  } finally {
    client.close();
  }
}

interface Setup {
  direct: Target;
  proxied: Target;
  agentPid: number;
  stop(): void;
}

/** A control plane (TLS or not) and an agent pointed at it. */
async function setup(tls: boolean): Promise<Setup> {
  const cwd = mkdtempSync(join(tmpdir(), 'bench-xds-'));
  const rootFile = join(cwd, 'var/run/secrets/istio/root-cert.pem');
  mkdirSync(join(cwd, 'var/run/secrets/istio'), { recursive: true });
  const cp = await startChild([resolve(root, 'dist/bench/xds-control-plane.js'), String(COUNT), String(SIZE), ...(tls ? [rootFile] : [])], /READY (\d+)/);
  const port = Number(cp.match[1]);
  const env = {
    PATH: process.env.PATH,
    POD_NAME: 'bench-1',
    POD_NAMESPACE: 'bench',
    INSTANCE_IP: '127.0.0.1',
    DISABLE_ENVOY: 'true',
    CA_PROVIDER: 'local',
    ECC_SIGNATURE_ALGORITHM: 'ECDSA',
    PROXY_CONFIG: JSON.stringify(tls ? { discoveryAddress: `localhost:${port}` } : { discoveryAddress: `127.0.0.1:${port}`, controlPlaneAuthPolicy: 'NONE' }),
  };
  const agent = await startChild([resolve(root, 'dist/bundle/pilot-agent.mjs'), 'proxy', 'sidecar'], /XDS proxy listening on "([^"]+)"/, { cwd, env });
  const direct: Target = tls
    ? {
        address: `localhost:${port}`,
        creds: grpc.credentials.createSsl(readFileSync(rootFile)),
        options: { 'grpc.ssl_target_name_override': 'istiod.istio-system.svc', 'grpc.default_authority': 'istiod.istio-system.svc' },
      }
    : { address: `127.0.0.1:${port}`, creds: grpc.credentials.createInsecure(), options: {} };
  return {
    direct,
    proxied: { address: `unix://${agent.match[1]}`, creds: grpc.credentials.createInsecure(), options: {} },
    agentPid: agent.child.pid!,
    stop: () => {
      agent.child.kill('SIGTERM');
      cp.child.kill('SIGTERM');
      rmSync(cwd, { recursive: true, force: true });
    },
  };
}

export async function xdsBench(): Promise<BenchResult> {
  const tls = await setup(true);
  const plain = await setup(false);
  const variants = [
    { name: 'TLS, SotW', s: tls, delta: false },
    { name: 'TLS, delta', s: tls, delta: true },
    { name: 'plaintext, SotW', s: plain, delta: false },
  ];
  try {
    for (let i = 0; i < WARMUP; i++) {
      for (const v of variants) {
        await relay(v.s.direct, v.delta);
        await relay(v.s.proxied, v.delta);
      }
    }
    const rssAfterWarmup = procStatusKb(tls.agentPid);
    const runs = new Map(variants.map((v) => [v.name, { direct: [] as number[], proxied: [] as number[] }]));
    const rss: number[] = [];
    // CPU of the TLS rounds: the agent's when proxying, this process's (the client's) when direct.
    const agentCpu: number[] = [];
    const clientCpu: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      // Interleaved so machine noise hits every variant alike.
      for (const v of variants) {
        const c0 = process.cpuUsage();
        runs.get(v.name)!.direct.push(await relay(v.s.direct, v.delta));
        const c = process.cpuUsage(c0);
        const a0 = cpuMs(v.s.agentPid);
        runs.get(v.name)!.proxied.push(await relay(v.s.proxied, v.delta));
        if (v.s === tls) {
          clientCpu.push((c.user + c.system) / 1000);
          agentCpu.push(cpuMs(v.s.agentPid) - a0);
        }
      }
      rss.push(procStatusKb(tls.agentPid));
    }
    const p = (xs: number[], q: number) =>
      percentile(
        [...xs].sort((a, b) => a - b),
        q,
      ).toFixed(1);
    const ratio = (name: string) => median(runs.get(name)!.proxied) / median(runs.get(name)!.direct);
    const rows = variants.map((v) => {
      const r = runs.get(v.name)!;
      return [v.name, p(r.direct, 50), p(r.proxied, 50), p(r.proxied, 90), ((COUNT * SIZE) / 2 ** 20 / (median(r.proxied) / 1000)).toFixed(0), ratio(v.name).toFixed(2)];
    });
    // Messages the TLS agent relayed in the measured rounds (two of the three variants).
    const messages = ROUNDS * 2 * COUNT;
    const midRss = rss[Math.floor(ROUNDS / 2)]!;
    const lastRss = rss.at(-1)!;
    return {
      title: `XDS proxy: ${COUNT} responses of ${SIZE / 1024} KB relayed, ACKed one by one (${ROUNDS} rounds each, interleaved)`,
      rows: [['control plane, API', 'direct p50 ms', 'proxied p50 ms', 'proxied p90 ms', 'proxied MiB/s', 'p50 proxied / direct'], ...rows],
      notes: [
        `Target ≤ 1.2× the direct time: ${variants.map((v) => `${v.name} ${ratio(v.name).toFixed(2)}×`).join(', ')}.`,
        `CPU per round over TLS (p50): the agent relaying ${median(agentCpu).toFixed(0)} ms; the client receiving the same directly (TLS included) ${median(clientCpu).toFixed(0)} ms.`,
        `Agent RSS (TLS agent): ${(rssAfterWarmup / 1024).toFixed(1)} MiB after warm-up, ${(midRss / 1024).toFixed(1)} MiB half-way, ${(lastRss / 1024).toFixed(1)} MiB after ${messages} relayed responses (${((messages * SIZE) / 2 ** 30).toFixed(2)} GiB); change over the second half: ${(((lastRss - midRss) * 1024) / (messages / 2)).toFixed(1)} bytes per message.`,
      ],
    };
  } finally {
    tls.stop();
    plain.stop();
  }
}
