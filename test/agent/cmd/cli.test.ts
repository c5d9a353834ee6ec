// The pilot-agent command line as Istio's users and injector drive it: flag forms, unknown
// flags, exit codes, version output and the bad-input messages.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseProxyCommandLine } from '../../../agent/cmd/cli.js';
import { runCliToEnd, spawnCli } from '../../support/cli.js';

// The embedded local CA lets the agent run without istiod (as `npm start` does).
// No istiod in these runs: plaintext to the (absent) control plane, so no istiod root is needed.
const baseEnv = { PATH: process.env.PATH, DISABLE_ENVOY: 'true', CA_PROVIDER: 'local', PROXY_CONFIG: '{"controlPlaneAuthPolicy":"NONE"}' };

t.test('flag forms: --flag=value, --flag value, bare bools, --bool=false, unknown flags ignored', async (t) => {
  const inv = await parseProxyCommandLine([
    '--log_as_json',
    'proxy',
    'router',
    '--domain',
    'd.example',
    '--unknown-flag',
    'swallowed',
    '--stsPort=15463',
    '--profiling=false',
    '--other-unknown=x',
    '--proxyLogLevel',
    'debug',
    '--log_output_level=default:debug',
    '--log_target',
    '/dev/null',
    '--log_target=stderr',
  ]);
  t.equal(inv.typeArg, 'router');
  t.equal(inv.flags.domain, 'd.example');
  t.equal(inv.flags.stsPort, 15463);
  t.equal(inv.flags.profiling, false);
  t.equal(inv.flags.proxyLogLevel, 'debug');
  t.equal(inv.logOptions.asJson, true);
  t.equal(inv.logOptions.outputLevels, 'default:debug');
  t.same(inv.logOptions.targets, ['/dev/null', 'stderr']);
  t.match(inv.flagLines.join('\n'), /FLAG: --stsPort="15463"/);

  const d = await parseProxyCommandLine(['proxy']);
  t.equal(d.typeArg, undefined, 'type defaults (sidecar) when omitted');
  t.same(d.flags, {
    domain: '',
    meshConfig: './etc/istio/config/mesh',
    stsPort: 0,
    tokenManagerPlugin: 'GoogleTokenExchange',
    serviceCluster: 'istio-proxy',
    proxyLogLevel: 'warning',
    proxyComponentLogLevel: '',
    concurrency: 0,
    templateFile: '',
    outlierLogPath: '',
    profiling: true,
  });
  t.same(d.logOptions.targets, ['stdout']);
  // pflag: an unknown flag followed by a non-flag word takes it as its value.
  const swallowed = await parseProxyCommandLine(['proxy', '--not-a-flag', 'router']);
  t.equal(swallowed.typeArg, undefined);
});

t.test('unknown proxy type: Istio error, exit 255', async (t) => {
  const r = await runCliToEnd(['proxy', 'gateway'], { env: baseEnv, cwd: mkdtempSync(join(tmpdir(), 'cli-')) });
  t.equal(r.code, 255);
  const errors = r.stdout.split('\n').filter((l) => /\terror\t/.test(l));
  t.equal(errors.length, 1);
  t.match(errors[0]!, /\terror\tInvalid proxy Type: gateway$/);
});

t.test('malformed PROXY_CONFIG: one error line naming the variable source and value, exit 255', async (t) => {
  const r = await runCliToEnd(['proxy', 'sidecar'], { env: { ...baseEnv, PROXY_CONFIG: '{"drainDuration": "forever"}' }, cwd: mkdtempSync(join(tmpdir(), 'cli-')) });
  t.equal(r.code, 255);
  const errors = r.stdout.split('\n').filter((l) => /\terror\t/.test(l));
  t.equal(errors.length, 1);
  t.match(errors[0]!, /failed to unmarshal mesh config from environment .*drainDuration.*"forever"/);
  const y = await runCliToEnd(['proxy'], { env: { ...baseEnv, PROXY_CONFIG: 'drainDuration: [' }, cwd: mkdtempSync(join(tmpdir(), 'cli-')) });
  t.equal(y.code, 255);
  t.match(y.stdout, /\terror\tfailed to unmarshal mesh config from environment \[drainDuration: \[\]/);
});

t.test('invalid duration and bool env vars: one warning line each, the agent carries on with defaults', async (t) => {
  const run = spawnCli(['proxy'], {
    env: { ...baseEnv, SECRET_TTL: '10 days', ISTIO_META_DNS_CAPTURE: 'yes', MINIMUM_DRAIN_DURATION: '5' },
    cwd: mkdtempSync(join(tmpdir(), 'cli-')),
  });
  await run.waitFor(/Effective config/);
  run.child.kill('SIGINT');
  const r = await run.exited;
  t.equal(r.code, 0);
  const warns = r.stdout.split('\n').filter((l) => /\twarn\t/.test(l));
  t.equal(warns.length, 3, warns.join('\n'));
  t.match(warns.join('\n'), /invalid value "10 days" for environment variable SECRET_TTL: expecting a duration.*using default 24h0m0s/);
  t.match(warns.join('\n'), /invalid value "yes" for environment variable ISTIO_META_DNS_CAPTURE: expecting a boolean.*using default false/);
  t.match(warns.join('\n'), /invalid value "5" for environment variable MINIMUM_DRAIN_DURATION/);
});

t.test('bad flag values exit 255 with the flag named', async (t) => {
  const r = await runCliToEnd(['proxy', '--concurrency=lots'], { env: baseEnv });
  t.equal(r.code, 255);
  t.match(r.stderr, /invalid argument "lots" for "--concurrency" flag/);
  const b = await runCliToEnd(['proxy', '--profiling=maybe'], { env: baseEnv });
  t.equal(b.code, 255);
  t.match(b.stderr, /invalid argument "maybe" for "--profiling" flag/);
  const l = await runCliToEnd(['proxy', '--log_output_level=default:loud'], { env: baseEnv });
  t.equal(l.code, 255);
  t.match(l.stderr, /--log_output_level.*"loud"/);
});

t.test('logging flags reach the logger: JSON lines to a file target', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cli-'));
  const file = join(dir, 'agent.log');
  const run = spawnCli(['proxy', '--log_as_json', `--log_target=${file}`, '--log_output_level=default:info'], { env: baseEnv, cwd: dir });
  // Signal only once the agent is running (its last start-up line is in the file), however loaded the machine.
  const deadline = Date.now() + 20_000;
  while (!(existsSync(file) && readFileSync(file, 'utf8').includes('Effective config')) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  run.child.kill('SIGTERM');
  const r = await run.exited;
  t.equal(r.code, 0);
  t.equal(r.stdout, '', 'nothing on stdout when the target is a file');
  const recs = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { level: string; msg: string });
  t.ok(recs.some((x) => x.msg === 'FLAG: --log_as_json="true"'));
  t.ok(recs.some((x) => x.msg.startsWith('Agent draining: received signal: SIGTERM')));
});

t.test('version', async (t) => {
  const long = await runCliToEnd(['version']);
  t.equal(long.code, 0);
  t.match(long.stdout, /^client version: version\.BuildInfo\{Version:"1\.32\.0", GitRevision:"[^"]*", GolangVersion:"node v\d+[^"]*", BuildStatus:"[^"]*", GitTag:"[^"]*"\}\n$/);
  const short = await runCliToEnd(['version', '-s']);
  t.equal(short.stdout, 'client version: 1.32.0\n');
  const json = await runCliToEnd(['version', '--output=json']);
  t.same(Object.keys(JSON.parse(json.stdout).clientVersion), ['version', 'revision', 'golang_version', 'status', 'tag']);
  const yaml = await runCliToEnd(['version', '-o', 'yaml']);
  t.match(yaml.stdout, /^clientVersion:\n {2}version: 1\.32\.0\n/);
  const bad = await runCliToEnd(['version', '-o', 'xml']);
  t.equal(bad.code, 255);
  t.match(bad.stdout, /--output must be 'yaml' or 'json'/);
});

t.test('collateral fails like the agent build of Istio; istio-iptables is handed over', async (t) => {
  const c = await runCliToEnd(['collateral']);
  t.equal(c.code, 255);
  t.match(c.stdout, /this build is not compiled with collateral support/);
  // The pilot-agent root ignores unknown flags; istio-iptables rejects them, as cobra does there.
  const ipt = await runCliToEnd(['--log_output_level', 'default:info', 'istio-iptables', '--help-me']);
  t.equal(ipt.code, 255);
  t.equal(ipt.stderr, 'Error: unknown flag: --help-me\n', 'handled by istio-iptables, not by the pilot-agent command tree');
});

t.test('help exits 0', async (t) => {
  const h = await runCliToEnd(['--help']);
  t.equal(h.code, 0);
  t.match(h.stdout, /proxy/);
});
