// Network namespaces for privileged tests: a "pod" and a "peer" namespace joined by a veth pair
// (eth0 on both sides), IPv4 and IPv6 (ULA) addresses, plus an extra peer subnet reached through
// the peer. Names carry the pid and a counter so concurrent test runs never collide; everything
// (processes, namespaces, /etc/netns files) is removed by cleanup(), which also runs at exit.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The system python3 (a version-manager shim on PATH would add its own start-up to every probe). */
export const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
/** Absolute, so a command run with a test PATH (e.g. without iptables) still enters the netns. */
const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p)) ?? 'ip';

/** Why privileged tests cannot run here (tap's `skip` option), or false when they can (root). */
export function privilegedSkipReason(): string | false {
  if (process.getuid?.() === 0) return false;
  const reason = 'needs root (network namespaces, iptables, uid switching)';
  if (process.env.CI === 'true') throw new Error(`CI=true but privileged tests cannot run: ${reason}`);
  return reason;
}

export const POD4 = '10.66.0.2';
export const PEER4 = '10.66.0.1';
export const EXTRA4 = '10.67.0.1';
export const POD6 = 'fd00:66::2';
export const PEER6 = 'fd00:66::1';
export const EXTRA6 = 'fd00:67::1';

let counter = 0;
const live = new Set<PodNetwork>();
process.on('exit', () => {
  for (const n of live) n.cleanupSync();
});

export interface ExecOutput {
  code: number;
  stdout: string;
  stderr: string;
}

export class PodNetwork {
  readonly pod: string;
  readonly peer: string;
  private readonly children = new Set<ChildProcess>();

  private constructor(tag: string) {
    const id = `${process.pid}-${++counter}`;
    this.pod = `ipt-${tag}-${id}-pod`;
    this.peer = `ipt-${tag}-${id}-peer`;
  }

  /** Creates both namespaces; `ipv4`/`ipv6` select the pod's address families. */
  static async create(tag: string, opts: { ipv4?: boolean; ipv6?: boolean; resolvConf?: string } = {}): Promise<PodNetwork> {
    const n = new PodNetwork(tag);
    live.add(n);
    const v4 = opts.ipv4 ?? true;
    const v6 = opts.ipv6 ?? false;
    const sh = [
      `ip netns add ${n.pod}`,
      `ip netns add ${n.peer}`,
      `ip -n ${n.pod} link set lo up`,
      `ip -n ${n.peer} link set lo up`,
      `ip -n ${n.pod} link add eth0 type veth peer name eth0 netns ${n.peer}`,
      `ip -n ${n.pod} link set eth0 up`,
      `ip -n ${n.peer} link set eth0 up`,
    ];
    if (v4) {
      sh.push(
        `ip -n ${n.pod} addr add ${POD4}/24 dev eth0`,
        `ip -n ${n.peer} addr add ${PEER4}/24 dev eth0`,
        `ip -n ${n.peer} addr add ${EXTRA4}/24 dev eth0`,
        `ip -n ${n.pod} route add 10.67.0.0/24 via ${PEER4}`,
      );
    }
    if (v6) {
      sh.push(
        `ip -n ${n.pod} addr add ${POD6}/64 dev eth0 nodad`,
        `ip -n ${n.peer} addr add ${PEER6}/64 dev eth0 nodad`,
        `ip -n ${n.peer} addr add ${EXTRA6}/64 dev eth0 nodad`,
        `ip -n ${n.pod} -6 route add fd00:67::/64 via ${PEER6}`,
      );
    }
    try {
      await run('sh', ['-ec', sh.join('\n')]);
      if (opts.resolvConf !== undefined) {
        // `ip netns exec` bind-mounts /etc/netns/<name>/resolv.conf over /etc/resolv.conf.
        mkdirSync(`/etc/netns/${n.pod}`, { recursive: true });
        writeFileSync(`/etc/netns/${n.pod}/resolv.conf`, opts.resolvConf);
      }
    } catch (err) {
      await n.cleanup();
      throw err;
    }
    return n;
  }

  /** Runs a command in a namespace; never throws for a non-zero exit. */
  async exec(ns: 'pod' | 'peer', cmd: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<ExecOutput> {
    return new Promise((resolve, reject) => {
      const child = spawn(IP, ['netns', 'exec', ns === 'pod' ? this.pod : this.peer, cmd, ...args], {
        env: opts.env ?? { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
      if (opts.input !== undefined) child.stdin!.end(opts.input);
    });
  }

  /** Starts a long-running process in a namespace and waits until it prints `ready`. */
  async start(ns: 'pod' | 'peer', cmd: string, args: readonly string[]): Promise<ChildProcess> {
    const child = spawn(IP, ['netns', 'exec', ns === 'pod' ? this.pod : this.peer, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    let out = '';
    let err = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('ready\n')) resolve();
      });
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.on('exit', (code) => reject(new Error(`${cmd} exited (${code}) before ready: ${err}`)));
    });
    return child;
  }

  async cleanup(): Promise<void> {
    for (const c of this.children) c.kill('SIGKILL');
    await Promise.all([...this.children].map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    this.cleanupSync();
  }

  cleanupSync(): void {
    for (const c of this.children) c.kill('SIGKILL');
    for (const ns of [this.pod, this.peer]) {
      try {
        execFileSync(IP, ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
    rmSync(`/etc/netns/${this.pod}`, { recursive: true, force: true });
    live.delete(this);
  }
}
