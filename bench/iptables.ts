// istio-iptables cost, side by side, each run in a fresh network namespace:
//   (a) our full run (`istio-iptables …` and `pilot-agent istio-iptables …`),
//   (b) the floor for a Node program: `node -e ''` plus a direct iptables-restore of the same payload,
//   (c) one iptables exec per rule, as Istio 1.0's istio-iptables.sh did.
// For the injector's default sidecar flags (IPv4) and for a dual-stack pod with DNS capture.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildRules, parseCommandLine, renderCommands, renderRestore, resolveCaptureConfig, type Machine } from '../iptables/index.js';
import type { BenchResult } from './result.js';
import { median, percentile, timeCommand } from './stats.js';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const iptablesBin = resolve(root, 'dist/bundle/istio-iptables.cjs');
const agentBin = resolve(root, 'dist/bundle/pilot-agent.mjs');
const INJECTED = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'];
const POD4 = '10.44.0.2';
const POD6 = 'fd00:44::2';
const DNS4 = '10.96.0.10';
const DNS6 = 'fd00:10:96::a';

interface Scenario {
  name: string;
  args: string[];
  env: Record<string, string>;
  ipv6: boolean;
}

const scenarios: Scenario[] = [
  { name: 'default sidecar flags (IPv4)', args: INJECTED, env: {}, ipv6: false },
  { name: 'dual-stack pod, --redirect-dns (IPv4 + IPv6 nameserver)', args: [...INJECTED, '--redirect-dns'], env: { ISTIO_DUAL_STACK: 'true' }, ipv6: true },
];

const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

let seq = 0;
function freshNamespace(sc: Scenario): string {
  const ns = `ipt-bench-${process.pid}-${++seq}`;
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  // A pod address on lo is enough for the IPv6 decision (Istio's getLocalIP counts it).
  execFileSync('ip', ['-n', ns, 'addr', 'add', `${POD4}/32`, 'dev', 'lo']);
  if (sc.ipv6) execFileSync('ip', ['-n', ns, 'addr', 'add', `${POD6}/128`, 'dev', 'lo', 'nodad']);
  mkdirSync(`/etc/netns/${ns}`, { recursive: true });
  writeFileSync(`/etc/netns/${ns}/resolv.conf`, `nameserver ${DNS4}\n${sc.ipv6 ? `nameserver ${DNS6}\n` : ''}`);
  return ns;
}

function dropNamespace(ns: string): void {
  execFileSync('ip', ['netns', 'del', ns]);
  rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
}

/** The same rules our CLI applies, from the pure builder. */
function plan(sc: Scenario) {
  const env = { ...sc.env };
  const flags = parseCommandLine(sc.args, env).flags;
  const machine: Machine = {
    interfaceAddresses: () => (sc.ipv6 ? [POD4, POD6] : [POD4]),
    dnsServers: () => ({ v4: [DNS4], v6: sc.ipv6 ? [DNS6] : [] }),
    lookupUid: () => undefined,
  };
  return buildRules(resolveCaptureConfig(flags, env, machine)).rules;
}

export async function iptablesBench(): Promise<BenchResult> {
  if (process.getuid?.() !== 0) {
    return { title: 'istio-iptables (skipped)', rows: [['note'], ['needs root: every run uses a fresh network namespace']] };
  }
  const dir = mkdtempSync(join(tmpdir(), 'bench-ipt-'));
  const n = Number(process.env.BENCH_IPTABLES_RUNS ?? 25);
  const rows: string[][] = [['scenario', 'variant', 'execs', 'p50 ms', 'p90 ms', 'p50 / (b)']];
  const notes: string[] = [];
  try {
    for (const sc of scenarios) {
      const rules = plan(sc);
      const families = sc.ipv6 ? (['v4', 'v6'] as const) : (['v4'] as const);
      const restoreCmds: string[] = [];
      const perRule: string[] = [];
      let ruleCount = 0;
      for (const fam of families) {
        const bin = fam === 'v4' ? 'iptables-nft' : 'ip6tables-nft';
        const file = join(dir, `${seq}-${fam}.restore`);
        writeFileSync(file, renderRestore(rules[fam]));
        restoreCmds.push(`${bin}-restore --noflush < ${sh(file)}`);
        for (const args of renderCommands(rules[fam])) perRule.push([bin, ...args].map(sh).join(' '));
        ruleCount += rules[fam].length;
      }
      const script = join(dir, `${seq}-per-rule.sh`);
      writeFileSync(script, `set -e\n${perRule.join('\n')}\n`);
      const envArgs = Object.entries(sc.env).map(([k, v]) => `${k}=${v}`);
      // per family: nft save (detection + snapshot; legacy is skipped via /proc), restore, final
      // save; plus `ip` for the ::6 address when IPv6 is on
      const ourExecs = String(families.length * 3 + (sc.ipv6 ? 1 : 0));
      const variants: [string, string, string][] = [
        ['(a) istio-iptables', ourExecs, `exec env ${envArgs.join(' ')} ${sh(process.execPath)} ${sh(iptablesBin)} ${sc.args.map(sh).join(' ')} > /dev/null`],
        ['(a) pilot-agent istio-iptables', ourExecs, `exec env ${envArgs.join(' ')} ${sh(process.execPath)} ${sh(agentBin)} istio-iptables ${sc.args.map(sh).join(' ')} > /dev/null`],
        ["(b) node -e '' + iptables-restore", String(families.length), `${sh(process.execPath)} -e '' && ${restoreCmds.join(' && ')}`],
        ['(c) one iptables exec per rule', String(perRule.length), `sh ${sh(script)}`],
      ];
      const runs = new Map<string, number[]>(variants.map(([name]) => [name, []]));
      for (let i = 0; i < n; i++) {
        // Interleaved, so machine noise hits every variant alike.
        for (const [name, , cmd] of variants) {
          const ns = freshNamespace(sc);
          try {
            runs.get(name)!.push(await timeCommand('ip', ['netns', 'exec', ns, 'sh', '-c', cmd]));
          } finally {
            dropNamespace(ns);
          }
        }
      }
      const base = median(runs.get(variants[2]![0])!);
      for (const [name, execs] of variants) {
        const xs = runs.get(name)!;
        const sorted = [...xs].sort((a, b) => a - b);
        rows.push([`${sc.name}: ${ruleCount} rules`, name, execs, median(xs).toFixed(1), percentile(sorted, 90).toFixed(1), (median(xs) / base).toFixed(2)]);
      }
    }
    notes.push(`${n} runs per variant, interleaved; each run in a new network namespace (ip netns exec … sh -c …, the same wrapper for every variant).`);
    notes.push('Targets: (a)/(b) ≤ 1.3 in both scenarios; (a) faster than (c) for the dual-stack case.');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { title: 'istio-iptables: full run vs. the Node floor vs. one exec per rule', rows, notes };
}
