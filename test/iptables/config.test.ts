// Derived settings (Istio's FillConfigFromEnvironment and Validate): Go netip parsing, IPv6
// detection from the pod's addresses, resolv.conf, the proxy UID/GID defaults and the validation
// errors.
import t from 'tap';
import {
  buildRules,
  ConfigError,
  detectHostIp,
  formatAddr,
  parseAddr,
  parseCommandLine,
  parsePrefix,
  parseResolvConf,
  resolveCaptureConfig,
  splitDnsServers,
  uidFromPasswd,
  type Machine,
} from '../../iptables/index.js';

t.test('Go netip.ParsePrefix: accepted forms and error text', async (t) => {
  t.same(parsePrefix('10.1.2.3/8'), { addr: parseAddr('10.1.2.3'), bits: 8 }, 'host bits are kept');
  const errors: [string, string][] = [
    ['10.0.0.0', `netip.ParsePrefix("10.0.0.0"): no '/'`],
    ['10.0.0.0/33', 'netip.ParsePrefix("10.0.0.0/33"): prefix length out of range'],
    ['abc/8', 'netip.ParsePrefix("abc/8"): ParseAddr("abc"): unable to parse IP'],
    ['010.0.0.0/8', 'netip.ParsePrefix("010.0.0.0/8"): ParseAddr("010.0.0.0"): IPv4 field has octet with leading zero'],
    ['10.0.0.0/08', 'netip.ParsePrefix("10.0.0.0/08"): bad bits after slash: "08"'],
    ['fe80::1%eth0/64', 'netip.ParsePrefix("fe80::1%eth0/64"): IPv6 zones cannot be present in a prefix'],
    ['1.2.3/8', 'netip.ParsePrefix("1.2.3/8"): ParseAddr("1.2.3"): IPv4 address too short'],
    ['1::2::3/64', 'netip.ParsePrefix("1::2::3/64"): ParseAddr("1::2::3"): multiple :: in address (at ":3")'],
    ['2001:db8:::/32', 'netip.ParsePrefix("2001:db8:::/32"): ParseAddr("2001:db8:::"): each colon-separated field must have at least one digit (at ":")'],
    ['12345::/33', 'netip.ParsePrefix("12345::/33"): ParseAddr("12345::"): each group must have 4 or less digits (at "12345::")'],
    ['00001::/64', 'netip.ParsePrefix("00001::/64"): ParseAddr("00001::"): each group must have 4 or less digits (at "00001::")'],
  ];
  for (const [input, msg] of errors) t.throws(() => parsePrefix(input), { message: msg }, input);
});

t.test('Go Addr.String: canonical IPv6', async (t) => {
  const cases: [string, string][] = [
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['::127.0.0.53', '::7f00:35'],
    ['::ffff:1.2.3.4', '::ffff:1.2.3.4'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4'],
    ['::', '::'],
    ['fd00:66::2', 'fd00:66::2'],
  ];
  for (const [input, want] of cases) t.equal(formatAddr(parseAddr(input)), want, input);
});

t.test('IPv6 is decided by the first qualifying address (or any IPv6 with --dual-stack)', async (t) => {
  t.same(detectHostIp(['127.0.0.1', '169.254.1.1', '10.0.0.5', 'fd00::5'], false), { hostIp: '10.0.0.5', enableIPv6: false });
  t.same(detectHostIp(['127.0.0.1', '::1', 'fe80::1', 'fd00::5'], false), { hostIp: 'fd00::5', enableIPv6: true });
  t.same(detectHostIp(['10.0.0.5', 'fe80::1', 'fd00::5'], true), { hostIp: '10.0.0.5', enableIPv6: true });
  t.same(detectHostIp(['10.0.0.5', 'fe80::1'], true), { hostIp: '10.0.0.5', enableIPv6: false });
  t.same(detectHostIp(['240.240.240.240'], false), { hostIp: '240.240.240.240', enableIPv6: false }, 'a non-loopback address on lo counts');
  t.same(detectHostIp(['::ffff:10.0.0.5'], false), { hostIp: '10.0.0.5', enableIPv6: false }, 'IPv4-mapped is unwrapped');
  t.throws(() => detectHostIp(['127.0.0.1', '::1'], false), new ConfigError('no valid local IP address found'));
});

t.test('resolv.conf servers: canonical, split by family, unparsable ones dropped', async (t) => {
  const servers = parseResolvConf('# comment\n; other\nsearch svc.cluster.local\nnameserver 10.96.0.10\n  nameserver   2001:DB8::53  \nnameserver bogus\nnameserver ::ffff:1.2.3.4\nnameserver\n');
  t.same(servers, ['10.96.0.10', '2001:DB8::53', 'bogus', '::ffff:1.2.3.4']);
  t.same(splitDnsServers(servers), { v4: ['10.96.0.10'], v6: ['2001:db8::53', '::ffff:1.2.3.4'] });
});

t.test('passwd lookup', async (t) => {
  const passwd = 'root:x:0:0:root:/root:/bin/bash\nistio-proxy:x:1337:1337::/home/istio-proxy:/bin/sh\n';
  t.equal(uidFromPasswd(passwd, 'istio-proxy'), '1337');
  t.equal(uidFromPasswd(passwd, 'nobody'), undefined);
});

const machine = (over: Partial<Machine> = {}): Machine => ({
  interfaceAddresses: () => ['10.244.1.17'],
  dnsServers: () => ({ v4: ['10.96.0.10'], v6: [] }),
  lookupUid: () => undefined,
  ...over,
});
const resolve = (args: string[], env: Record<string, string> = {}, m: Machine = machine()) => resolveCaptureConfig(parseCommandLine(args, env).flags, env, m);

t.test('proxy UID/GID defaults', async (t) => {
  t.match(resolve([]), { proxyUid: '1337', proxyGid: '1337' }, 'no ENVOY_USER entry → 1337');
  t.match(resolve([], {}, machine({ lookupUid: (n) => (n === 'istio-proxy' ? '2000' : undefined) })), { proxyUid: '2000', proxyGid: '2000' });
  t.match(resolve([], { ENVOY_USER: 'envoy' }, machine({ lookupUid: (n) => (n === 'envoy' ? '101' : undefined) })), { proxyUid: '101' });
  t.match(resolve(['-u', '3,4']), { proxyUid: '3,4', proxyGid: '3,4' }, 'the GID default is the whole UID string');
});

t.test('DNS servers are read only for --redirect-dns without --capture-all-dns', async (t) => {
  let reads = 0;
  const m = machine({
    dnsServers: () => {
      reads++;
      return { v4: ['10.96.0.10'], v6: [] };
    },
  });
  t.same(resolve([], {}, m).dnsServersV4, []);
  t.same(resolve(['--redirect-dns', '--capture-all-dns'], {}, m).dnsServersV4, []);
  t.same(resolve(['--redirect-dns'], {}, m).dnsServersV4, ['10.96.0.10']);
  t.equal(reads, 1);
  const broken = machine({
    dnsServers: () => {
      throw new Error('ENOENT: no such file or directory');
    },
  });
  t.throws(() => resolve(['--redirect-dns'], {}, broken), new ConfigError('failed to load /etc/resolv.conf: ENOENT: no such file or directory'));
});

t.test('validation errors (exit 1)', async (t) => {
  const groups = Array.from({ length: 65 }, (_, i) => String(i)).join(',');
  t.throws(() => resolve([], { ISTIO_OUTBOUND_OWNER_GROUPS: groups }), { message: /^number of owner groups whose outgoing traffic should be redirected to Envoy cannot exceed 64, got 65: \[0 1 2/ });
  t.doesNotThrow(() => resolve([], { ISTIO_OUTBOUND_OWNER_GROUPS: groups.split(',').slice(0, 64).join(',') }));
  t.throws(() => resolve(['--force-iptables-binary', 'iptables']), { message: /invalid FORCE_IPTABLES_BINARY value "iptables"/ });
  t.throws(() => resolve([], { ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: '' }), { message: /^failed to parse CIDR ""/ });
  t.throws(() => resolve([], { ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: '10.0.0.1/32' }), { message: 'expected valid IPv4 loopback address in CIDR 10.0.0.1/32' });
  t.throws(() => resolve([], { ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: '127.0.0.1/4' }), { message: 'expected CIDR 127.0.0.1/4 to have mask in range [8, 32]; found 4' });
  t.throws(() => resolve([], {}, machine({ interfaceAddresses: () => ['127.0.0.1'] })), { message: 'no valid local IP address found' });
});

t.test('interception mode: REDIRECT, TPROXY or empty; anything else is an error (QUIRK 3 fixed)', async (t) => {
  t.equal(resolve(['-m', 'TPROXY']).interceptionMode, 'TPROXY');
  t.equal(resolve(['-m', 'REDIRECT']).interceptionMode, 'REDIRECT');
  t.equal(resolve([]).interceptionMode, 'REDIRECT');
  t.throws(() => resolve(['-m', 'tproxy']), { message: /invalid inbound interception mode "tproxy".*want REDIRECT or TPROXY/ });
});

t.test('CIDR lists are checked before any rule exists', async (t) => {
  t.throws(() => buildRules(resolve(['-x', '*'])), new ConfigError('invalid value for OUTBOUND_IP_RANGES_EXCLUDE'));
  t.throws(() => buildRules(resolve(['-i', '10.0.0.0/8,10.0.0.0'])), new ConfigError(`netip.ParsePrefix("10.0.0.0"): no '/'`));
  const plan = buildRules(resolve(['-i', '2001:DB8::/32,10.1.2.3/8'], {}, machine({ interfaceAddresses: () => ['fd00::1'] })));
  t.ok(
    plan.rules.v4.some((r) => r.params.join(' ') === '-A ISTIO_OUTPUT -d 10.1.2.3/8 -j ISTIO_REDIRECT'),
    'v4 CIDR, host bits kept',
  );
  t.ok(
    plan.rules.v6.some((r) => r.params.join(' ') === '-A ISTIO_OUTPUT -d 2001:db8::/32 -j ISTIO_REDIRECT'),
    'v6 CIDR in canonical form',
  );
});

t.test('--redirect-dns without servers or capture-all disables DNS capture with a warning', async (t) => {
  const plan = buildRules(resolve(['--redirect-dns'], {}, machine({ dnsServers: () => ({ v4: [], v6: [] }) })));
  t.equal(plan.dnsCapture, false);
  t.match(plan.warnings.join('\n'), /no DNS servers/);
  t.notOk(plan.rules.v4.some((r) => r.table === 'raw'));
});
