// istio-iptables on a real kernel, with both backends: the real CLI applies the rules inside a
// "pod" network namespace joined to a "peer" namespace by a veth pair, and real TCP/UDP traffic
// (from processes running as the app, as uid 1337 and as gid 1337) shows where each connection
// lands and which original destination the listener reads with SO_ORIGINAL_DST.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tap from 'tap';
import { EXTRA4, EXTRA6, PEER4, PEER6, POD4, POD6, PodNetwork, privilegedSkipReason, type ExecOutput } from '../support/netns.js';
import { probe, serve } from '../support/netprobe.js';
import { istioIptablesBin } from '../support/paths.js';

const skip = privilegedSkipReason();
const BACKENDS = ['nft', 'legacy'] as const;
type BackendName = (typeof BACKENDS)[number];
const PATH = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin';
const APP = { uid: 1000, gid: 1000 };
const PROXY_UID = { uid: 1337, gid: 1000 };
const PROXY_GID = { uid: 1000, gid: 1337 };

/** The injector's istio-init arguments (REDIRECT, everything captured, Istio's ports excluded). */
const INJECTED = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020'];

async function cli(net: PodNetwork, args: string[], env: Record<string, string> = {}) {
  return net.exec('pod', process.execPath, [istioIptablesBin, ...args], { env: { PATH, ...env } });
}

/** Asserts an exit status, showing the output only when it is wrong. */
function exits(t: Pick<typeof tap, 'equal' | 'comment'>, r: ExecOutput, code: number, what: string) {
  if (!t.equal(r.code, code, `${what}: exit ${code}`)) t.comment(r.stdout + r.stderr);
}

/**
 * Legacy is chosen when it already holds rules (as on a legacy node); seeding every table the
 * tests touch also makes the "before" state comparable, because a legacy table, once created in
 * a namespace, cannot be removed again.
 */
async function prepareBackend(net: PodNetwork, backend: BackendName): Promise<void> {
  if (backend === 'nft') return;
  for (const [bin, dst] of [
    ['iptables-legacy', '192.0.2.99/32'],
    ['ip6tables-legacy', '2001:db8::99/128'],
  ] as const) {
    for (const table of ['filter', 'nat', 'mangle', 'raw']) {
      const r = await net.exec('pod', bin, ['-t', table, '-A', 'OUTPUT', '-d', dst, '-j', 'RETURN']);
      if (r.code !== 0) throw new Error(`seeding ${bin} ${table}: ${r.stderr}`);
    }
  }
}

/** Every table of both backends and families, without comments and counters. */
async function allSaves(net: PodNetwork): Promise<string> {
  const out: string[] = [];
  for (const bin of ['iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save']) {
    const r = await net.exec('pod', bin, []);
    out.push(
      `## ${bin}`,
      ...r.stdout
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('#'))
        .map((l) => l.replace(/ \[\d+:\d+\]$/, '')),
    );
  }
  return out.join('\n');
}

/** Policy rules and the TPROXY route table (133). */
async function routing(net: PodNetwork): Promise<string> {
  const parts: string[] = [];
  for (const args of [
    ['-4', 'rule'],
    ['-6', 'rule'],
    ['-4', 'route', 'show', 'table', '133'],
    ['-6', 'route', 'show', 'table', '133'],
  ]) {
    parts.push((await net.exec('pod', 'ip', args)).stdout);
  }
  return parts.join('\n');
}

/** The istio-validation container: same flags plus --run-validation --skip-rule-apply, as uid/gid 1337. */
async function validateAsProxy(net: PodNetwork, timeout: string) {
  const args = [...INJECTED, '--run-validation', '--skip-rule-apply', `--probe-timeout=${timeout}`];
  return net.exec('pod', 'setpriv', ['--reuid=1337', '--regid=1337', '--clear-groups', process.execPath, istioIptablesBin, ...args], { env: { PATH } });
}

const using = (backend: BackendName) => new RegExp(`Using iptables-${backend} \\(${backend}`);

for (const backend of BACKENDS) {
  tap.test(`${backend}: REDIRECT capture, dual-stack with DNS; re-run is a no-op; cleanup restores the tables`, { skip }, async (t) => {
    const net = await PodNetwork.create(`r${backend[0]}`, { ipv6: true, resolvConf: `nameserver ${PEER4}\nnameserver ${PEER6}\n` });
    t.teardown(() => net.cleanup());
    await prepareBackend(net, backend);
    await serve(net, 'pod', 'pod', ['tcp:15001', 'tcp:15006', 'tcp:15053', 'udp:15053', 'tcp:9080', 'tcp:15090', 'tcp:15021', 'tcp:15020', 'tcp:7777']);
    await serve(net, 'peer', 'peer', ['tcp:8080', 'tcp:5432', 'tcp:53', 'udp:53']);
    const before = await allSaves(net);
    const beforeRoutes = await routing(net);
    const args = [
      '-p',
      '15001',
      '-z',
      '15006',
      '-u',
      '1337',
      '-m',
      'REDIRECT',
      '-i',
      '*',
      '-x',
      `10.67.0.0/24,fd00:67::/64`,
      '-b',
      '*',
      '-d',
      '15090,15021,15020,7777',
      '-o',
      '5432',
      '--redirect-dns',
    ];
    // Injected pods carry proxyMetadata as env: ISTIO_DUAL_STACK turns on IPv6 for a dual-stack pod.
    const env = { ISTIO_DUAL_STACK: 'true' };
    const first = await cli(net, args, env);
    exits(t, first, 0, 'first run');
    t.match(first.stdout, using(backend), `applied with iptables-${backend}`);

    for (const [fam, peer, extra, pod, pass] of [
      ['IPv4', PEER4, EXTRA4, POD4, '127.0.0.6'],
      ['IPv6', PEER6, EXTRA6, POD6, '::6'],
    ] as const) {
      const show = (h: string, p: number) => (fam === 'IPv6' ? `\\[${h}\\]:${p}` : `${h.replace(/\./g, '\\.')}:${p}`);
      if (fam === 'IPv6') t.match((await net.exec('pod', 'ip', ['-6', 'addr', 'show', 'dev', 'lo'])).stdout, /inet6 ::6\/128/, 'IPv6: ::6 is on lo');
      // Outbound from the app reaches 15001 and the original destination is recoverable.
      t.match(await probe(net, 'pod', peer, 8080, APP), new RegExp(`^pod 15001 orig=${show(peer, 8080)} `), `${fam}: app outbound → 15001, SO_ORIGINAL_DST = peer:8080`);
      t.match(await probe(net, 'pod', peer, 8080, PROXY_UID), /^peer 8080 /, `${fam}: uid 1337 reaches the real destination`);
      t.match(await probe(net, 'pod', peer, 8080, PROXY_GID), /^peer 8080 /, `${fam}: gid 1337 reaches the real destination`);
      t.match(await probe(net, 'pod', extra, 8080, APP), /^peer 8080 /, `${fam}: excluded CIDR is not captured`);
      t.match(await probe(net, 'pod', peer, 5432, APP), /^peer 5432 /, `${fam}: excluded outbound port is not captured`);
      // Inbound from the peer reaches 15006; excluded ports reach the app's own listener.
      t.match(await probe(net, 'peer', pod, 9080), new RegExp(`^pod 15006 orig=${show(pod, 9080)} `), `${fam}: inbound → 15006 with the original destination`);
      for (const port of [15090, 15021, 15020, 7777]) t.match(await probe(net, 'peer', pod, port), new RegExp(`^pod ${port} `), `${fam}: inbound port ${port} is not captured`);
      // Envoy's inbound passthrough connects from 127.0.0.6 / ::6 and must bypass capture;
      // the same connection from another source is Envoy→own-pod traffic, re-captured to 15006.
      t.match(await probe(net, 'pod', pod, 9080, { ...PROXY_UID, src: pass }), /^pod 9080 /, `${fam}: source ${pass} bypasses capture`);
      t.match(await probe(net, 'pod', pod, 9080, PROXY_UID), /^pod 15006 /, `${fam}: proxy → own pod IP is sent to inbound`);
      // DNS to the resolv.conf server goes to the agent on 15053, but not the agent's own.
      t.match(await probe(net, 'pod', peer, 53, { ...APP, proto: 'udp' }), /^pod 15053 udp/, `${fam}: app UDP DNS → 15053`);
      t.match(await probe(net, 'pod', peer, 53, APP), /^pod 15053 /, `${fam}: app TCP DNS → 15053`);
      t.match(await probe(net, 'pod', peer, 53, { ...PROXY_UID, proto: 'udp' }), /^peer 53 udp/, `${fam}: uid 1337 UDP DNS reaches the server`);
      t.match(await probe(net, 'pod', peer, 53, PROXY_UID), /^peer 53 /, `${fam}: uid 1337 TCP DNS reaches the server`);
    }

    const applied = await allSaves(net);
    const second = await cli(net, args, env);
    exits(t, second, 0, 'second run');
    t.match(second.stdout, /Found compatible residual iptables rules; nothing to apply/);
    t.equal(await allSaves(net), applied, 'a second run leaves exactly one copy of every rule');

    const clean = await cli(net, [...args, '--cleanup-only'], env);
    exits(t, clean, 0, '--cleanup-only');
    t.equal(await allSaves(net), before, '--cleanup-only restores iptables-save of every backend and family');
    t.match(await probe(net, 'pod', PEER4, 8080, APP), /^peer 8080 /, 'nothing is captured after cleanup');
    t.equal(await routing(net), beforeRoutes, 'no policy rules or TPROXY routes left');
  });

  tap.test(`${backend}: TPROXY inbound keeps the original destination; cleanup removes its routes`, { skip }, async (t) => {
    const net = await PodNetwork.create(`t${backend[0]}`, { ipv6: true });
    t.teardown(() => net.cleanup());
    await prepareBackend(net, backend);
    await serve(net, 'pod', 'pod', ['tcp:15001', 'tcp:15006:t', 'tcp:9080', 'tcp:15090']);
    await serve(net, 'peer', 'peer', ['tcp:8080']);
    const before = await allSaves(net);
    const beforeRoutes = await routing(net);
    const args = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'TPROXY', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--dual-stack'];
    const r = await cli(net, args);
    exits(t, r, 0, 'TPROXY run');
    t.match(r.stdout, using(backend), `applied with iptables-${backend}`);
    t.match((await net.exec('pod', 'ip', ['-4', 'rule'])).stdout, /fwmark 0x539 lookup 133/);
    t.match((await net.exec('pod', 'ip', ['-6', 'rule'])).stdout, /fwmark 0x539 lookup 133/);
    t.match(await probe(net, 'peer', POD4, 9080), new RegExp(`^pod 15006 orig=\\S+ local=${POD4.replace(/\./g, '\\.')}:9080 `), 'IPv4 inbound → 15006, local address = original destination');
    t.match(await probe(net, 'peer', POD6, 9080), new RegExp(`^pod 15006 orig=\\S+ local=\\[${POD6}\\]:9080 `), 'IPv6 inbound → 15006, local address = original destination');
    t.match(await probe(net, 'peer', POD4, 15090), /^pod 15090 /, 'excluded inbound port is not captured');
    t.match(await probe(net, 'pod', PEER4, 8080, APP), /^pod 15001 /, 'outbound is still redirected');

    const again = await cli(net, args);
    exits(t, again, 0, 'second TPROXY run');
    t.equal((await net.exec('pod', 'ip', ['-4', 'rule'])).stdout.match(/fwmark 0x539 lookup 133/g)?.length, 1, 're-running does not stack policy rules');

    const clean = await cli(net, [...args, '--cleanup-only']);
    exits(t, clean, 0, '--cleanup-only');
    t.equal(await allSaves(net), before, 'iptables-save is back to the state before the first run');
    t.equal(await routing(net), beforeRoutes, 'the TPROXY policy rules and routes are removed');
  });

  tap.test(`${backend}: drift fails atomically without --reconcile; --reconcile replaces cleanly; --force-apply`, { skip }, async (t) => {
    const net = await PodNetwork.create(`d${backend[0]}`);
    t.teardown(() => net.cleanup());
    await prepareBackend(net, backend);
    const bin = `iptables-${backend}`;
    t.equal((await cli(net, INJECTED)).code, 0);
    const applied = await allSaves(net);

    // A foreign rule inside an Istio chain: the state differs from the plan.
    t.equal((await net.exec('pod', bin, ['-t', 'nat', '-A', 'ISTIO_OUTPUT', '-d', '192.0.2.1/32', '-j', 'RETURN'])).code, 0);
    const drifted = await allSaves(net);
    const plain = await cli(net, INJECTED);
    t.equal(plain.code, 1, 'without --reconcile the run fails as Istio does (the chains exist)');
    t.match(plain.stdout, /reconcile is recommended/);
    t.equal(await allSaves(net), drifted, 'the failed run changed nothing');

    const rec = await cli(net, [...INJECTED, '--reconcile']);
    exits(t, rec, 0, '--reconcile');
    t.equal(await allSaves(net), applied, '--reconcile leaves exactly the planned rules (guardrails removed)');

    const forced = await cli(net, [...INJECTED, '--force-apply']);
    t.equal(forced.code, 1, '--force-apply over existing chains fails');
    t.equal(await allSaves(net), applied, 'and changes nothing');

    // Other flags: reconcile is a clean replace, equal to a fresh apply of the new flags.
    const other = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '10.96.0.0/12', '-b', '9080,9443', '-q', '3306'];
    t.equal((await cli(net, [...other, '--reconcile'])).code, 0);
    const reconciled = await allSaves(net);
    t.equal((await cli(net, [...other, '--cleanup-only'])).code, 0);
    t.equal((await cli(net, other)).code, 0);
    t.equal(reconciled, await allSaves(net), 'reconciled state = fresh apply of the new flags');
  });

  tap.test(`${backend}: bad input fails with one error line naming the value and changes nothing`, { skip }, async (t) => {
    const net = await PodNetwork.create(`b${backend[0]}`);
    t.teardown(() => net.cleanup());
    await prepareBackend(net, backend);
    const cases: [string, string[], RegExp][] = [
      ['bad CIDR', [...INJECTED.slice(0, 10), '-x', '10.0.0.0/33'], /netip\.ParsePrefix\("10\.0\.0\.0\/33"\): prefix length out of range/],
      ['port out of range', ['-u', '1337', '-b', '70000'], /70000/],
      ['port out of range in nat after mangle was written (TPROXY)', ['-u', '1337', '-m', 'TPROXY', '-b', '*', '-q', '70000'], /70000/],
      ['non-numeric uid', ['-u', 'no-such-user-x'], /no-such-user-x/],
      ['unknown mode', ['-u', '1337', '-m', 'tproxy'], /"tproxy"/],
      ['interface name iptables rejects', ['-u', '1337', '-c', 'an-interface-name-far-too-long'], /an-interface-name-far-too-long/],
    ];
    if (backend === 'nft') cases.push(['iptables binary missing', ['-u', '1337'], /no usable iptables binary/]);
    const before = await allSaves(net);
    const check = async (name: string, n: PodNetwork, args: string[], env: Record<string, string>, want: RegExp, saved: string) => {
      const r = await cli(n, args, env);
      t.not(r.code, 0, `${name}: non-zero exit`);
      const errors = r.stdout.split('\n').filter((l) => /\terror\t/.test(l));
      t.equal(errors.length, 1, `${name}: one error line`);
      t.match(errors[0] ?? '', want, `${name}: the error names the value`);
      t.equal(await allSaves(n), saved, `${name}: iptables-save unchanged`);
      return r;
    };
    for (const [name, args, want] of cases) {
      const env: Record<string, string> = name === 'iptables binary missing' ? { PATH: '/nonexistent' } : {};
      await check(name, net, args, env, want, before);
    }

    // A dual-stack pod whose IPv6 payload fails after the IPv4 one was applied: IPv4 is rolled
    // back too. (A server zoned to a missing interface passes Go's address parser, not ip6tables.)
    const dual = await PodNetwork.create(`b${backend[0]}6`, { ipv6: true, resolvConf: `nameserver ${PEER4}\nnameserver fe80::1%nosuchif0\n` });
    t.teardown(() => dual.cleanup());
    await prepareBackend(dual, backend);
    const r = await check(
      'IPv6 payload rejected after IPv4 applied',
      dual,
      [...INJECTED, '--redirect-dns'],
      { ISTIO_DUAL_STACK: 'true' },
      /ip6tables-\w+-restore --noflush failed.*fe80::1%nosuchif0/,
      await allSaves(dual),
    );
    t.match(r.stdout, new RegExp(`Rolled back iptables-${backend} tables nat, raw`), 'the applied IPv4 tables were rolled back');
    t.notMatch((await dual.exec('pod', 'ip', ['-6', 'addr', 'show', 'dev', 'lo'])).stdout, /inet6 ::6\//, 'the ::6 address added meanwhile is removed again');
  });

  tap.test(`${backend}: validation passes once the rules are in place (IPv4 and IPv6 pods)`, { skip }, async (t) => {
    for (const family of ['IPv4', 'IPv6'] as const) {
      const net = await PodNetwork.create(`v${backend[0]}`, { ipv4: family === 'IPv4', ipv6: family === 'IPv6' });
      t.teardown(() => net.cleanup());
      await prepareBackend(net, backend);
      exits(t, await cli(net, INJECTED), 0, `${family}: apply`);
      const ok = await validateAsProxy(net, '5s');
      exits(t, ok, 0, `${family}: validation with the rules`);
      t.match(ok.stdout, /Validation passed, iptables rules established/);
      t.match(ok.stdout, family === 'IPv6' ? /\[::6\]:15002 redirected to \[::1\]:15006/ : /127\.0\.0\.6:15002 redirected to 127\.0\.0\.1:15006/);
    }
  });
}

tap.test('validation without the rules exits 126 after the probe timeout (IPv4 and IPv6 pods)', { skip }, async (t) => {
  for (const family of ['IPv4', 'IPv6'] as const) {
    const net = await PodNetwork.create('vx', { ipv4: family === 'IPv4', ipv6: family === 'IPv6' });
    t.teardown(() => net.cleanup());
    const started = Date.now();
    const r = await validateAsProxy(net, '1s');
    exits(t, r, 126, `${family}: no rules`);
    t.ok(Date.now() - started >= 1000, `${family}: waited for --probe-timeout`);
    t.match(r.stdout, /\terror\tvalidation timeout\niptables validation failed; workload is not ready for Istio\./);
  }
});

tap.test('legacy with --cni-mode: writes take the pod-scoped lock file (XTABLES_LOCKFILE)', { skip }, async (t) => {
  const net = await PodNetwork.create('cni');
  t.teardown(() => net.cleanup());
  const dir = mkdtempSync(join(tmpdir(), 'ipt-cni-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const lock = join(dir, 'netns-lock');
  const r = await cli(net, [...INJECTED, '--cni-mode', `--network-namespace=${lock}`, '--force-iptables-binary=legacy']);
  exits(t, r, 0, 'apply');
  t.match(r.stdout, /Using iptables-legacy \(legacy/);
  t.ok(existsSync(lock), 'iptables-legacy locked the --network-namespace path');
  t.match((await net.exec('pod', 'iptables-legacy-save', [])).stdout, /-A OUTPUT -j ISTIO_OUTPUT/);
});
