// The istio-iptables command line and environment, with cobra/pflag's rules.
import t from 'tap';
import { parseCommandLine, parseGoUint16, UsageError } from '../../iptables/index.js';

const parse = (args: string[], env: Record<string, string> = {}) => parseCommandLine(args, env).flags;

t.test("defaults are Istio's", async (t) => {
  const f = parse([]);
  t.match(f, {
    envoyPort: '15001',
    inboundCapturePort: '15006',
    inboundTunnelPort: '15008',
    proxyUid: '',
    proxyGid: '',
    interceptionMode: '',
    inboundPorts: '',
    tproxyMark: '1337',
    tproxyRouteTable: '133',
    dryRun: false,
    probePort: 15002,
    probeTimeout: 5000,
    redirectDns: false,
    forceIptablesBinary: '',
  });
  const log = parseCommandLine([], {}).log;
  t.same(log.targets, ['stdout']);
  t.equal(log.asJson, false);
});

t.test('short and long spellings', async (t) => {
  const f = parse(['-p', '16001', '-z16006', '-u=7', '--proxy-gid', '8', '--istio-inbound-ports=*', '-n', '--redirect-dns', '-x', '']);
  t.match(f, { envoyPort: '16001', inboundCapturePort: '16006', proxyUid: '7', proxyGid: '8', inboundPorts: '*', dryRun: true, redirectDns: true, serviceExcludeCidr: '' });
  t.equal(parse(['--dry-run=false']).dryRun, false);
  t.equal(parse(['--dry-run=T']).dryRun, true);
  // `--flag false`: the word is a stray positional argument and the flag is true.
  t.equal(parse(['--redirect-dns', 'false']).redirectDns, true);
  t.equal(parse(['--iptables-probe-port', '0x10']).probePort, 16);
  t.equal(parse(['--probe-timeout', '1m30s']).probeTimeout, 90_000);
  t.equal(parse(['--', '-p', '1']).envoyPort, '15001', 'everything after -- is positional');
  t.same(parseCommandLine(['--log_target', 'stderr', '--log_target=/tmp/x', '--log_as_json', '--log_output_level=default:debug'], {}).log, {
    outputLevels: 'default:debug',
    stackTraceLevels: 'default:none',
    logCallers: '',
    asJson: true,
    targets: ['stderr', '/tmp/x'],
  });
  t.ok(parseCommandLine(['-h'], {}).help);
  t.ok(parseCommandLine(['--help'], {}).help);
});

t.test('command-line errors are cobra usage errors', async (t) => {
  const cases: [string[], string][] = [
    [['--foo'], 'unknown flag: --foo'],
    [['-y'], "unknown shorthand flag: 'y' in -y"],
    [['-p'], "flag needs an argument: 'p' in -p"],
    [['--envoy-port'], 'flag needs an argument: --envoy-port'],
    [['--dry-run=maybe'], 'invalid argument "maybe" for "-n, --dry-run" flag: strconv.ParseBool: parsing "maybe": invalid syntax'],
    [['--iptables-probe-port=70000'], 'invalid argument "70000" for "--iptables-probe-port" flag: strconv.ParseUint: parsing "70000": value out of range'],
    [['--iptables-probe-port=x'], 'invalid argument "x" for "--iptables-probe-port" flag: strconv.ParseUint: parsing "x": invalid syntax'],
    [['--probe-timeout=5'], 'invalid argument "5" for "--probe-timeout" flag: time: invalid duration "5"'],
  ];
  for (const [args, msg] of cases) t.throws(() => parseCommandLine(args, {}), new UsageError(msg), args.join(' '));
});

t.test('environment: own variable, then alias, then the command line', async (t) => {
  t.equal(parse([], { INBOUND_CAPTURE_PORT: '16006' }).inboundCapturePort, '16006');
  t.equal(parse(['-z', '17006'], { INBOUND_CAPTURE_PORT: '16006' }).inboundCapturePort, '17006');
  t.equal(parse([], { ENVOY_PORT: '16001' }).envoyPort, '15001', '-p has no env var');
  t.equal(parse([], { ISTIO_META_DNS_CAPTURE: 'true' }).redirectDns, true);
  t.equal(parse([], { REDIRECT_DNS: 'true', ISTIO_META_DNS_CAPTURE: 'false' }).redirectDns, false, 'the alias is read last');
  t.equal(parse([], { INVALID_DROP: 'true' }).dropInvalid, true);
  t.equal(parse([], { ISTIO_DUAL_STACK: '1' }).dualStack, true);
  t.equal(parse([], { ISTIO_INBOUND_PORTS: '' }).inboundPorts, '', 'set-but-empty is the empty value');
  t.equal(parse([], { PROXY_UID: '0,1337' }).proxyUid, '0,1337');
  t.equal(parse([], { IPTABLES_PROBE_PORT: '0o17' }).probePort, 15);
  t.equal(parse([], { PROBE_TIMEOUT: '250ms' }).probeTimeout, 250);
});

t.test("unparsable env values keep pflag's fallback (and say so)", async (t) => {
  const r = parseCommandLine([], { REDIRECT_DNS: 'true', ISTIO_META_DNS_CAPTURE: 'yes', IPTABLES_PROBE_PORT: '70000', PROBE_TIMEOUT: 'soon' });
  t.equal(r.flags.redirectDns, false, 'an invalid alias bool replaces the earlier true with false');
  t.equal(r.flags.probePort, 65535, 'uint16 out of range → max');
  t.equal(r.flags.probeTimeout, 0, 'invalid duration → 0s');
  t.equal(r.envWarnings.length, 3);
  t.match(r.envWarnings.join('\n'), /ISTIO_META_DNS_CAPTURE.*yes|"yes".*ISTIO_META_DNS_CAPTURE/);
  t.equal(parse([], { IPTABLES_PROBE_PORT: 'abc' }).probePort, 0, 'uint16 syntax error → 0');
});

t.test('Go ParseUint(s, 0, 16)', async (t) => {
  t.same(parseGoUint16('15002'), { value: 15002 });
  t.same(parseGoUint16('0x3a9a'), { value: 0x3a9a });
  t.same(parseGoUint16('0b101'), { value: 5 });
  t.same(parseGoUint16('017'), { value: 15 });
  t.same(parseGoUint16('1_000'), { value: 1000 });
  t.equal(parseGoUint16('-1').value, 0);
  t.equal(parseGoUint16('08').value, 0);
  t.equal(parseGoUint16('').value, 0);
  t.match(parseGoUint16('65536'), { value: 65535, error: /value out of range/ });
});
