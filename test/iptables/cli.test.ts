// The istio-iptables binaries as the kubelet runs them (`istio-iptables …` and
// `pilot-agent istio-iptables …`): dry-run output and record, exit codes, and a lean start-up
// (the modules a run loads). Dry-run executes nothing, so these run without root.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { runCliToEnd } from '../support/cli.js';
import { runIptables } from '../../iptables/index.js';
import { findContainer, loadInjectedPods, POD_VALUES } from '../support/injection.js';
import { corpusSkipReason, istioIptablesBin, pilotAgentBin, projectRoot } from '../support/paths.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'ipt-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const env = (extra: Record<string, string> = {}) => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', ...extra });
const INJECTED = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', '', '-b', '*', '-d', '15090,15021,15020', '--log_output_level=default:info'];

t.test('dry-run prints the payload and records every call; both entry points agree', async (t) => {
  const record = join(dir, 'record');
  // A longer earlier record must not leave its tail behind (QUIRK 13 fixed).
  writeFileSync(record, 'x\n'.repeat(500));
  const a = await runCliToEnd([...INJECTED, '--dry-run'], { bin: istioIptablesBin, env: env({ DRY_RUN_FILE_PATH: record }) });
  t.equal(a.code, 0, a.stderr);
  const lines = readFileSync(record, 'utf8').split('\n');
  t.same(lines.slice(0, 3), ['iptables-save', 'ip6tables-save', '* nat']);
  t.same(lines.slice(-3), ['COMMIT', 'iptables-save', ''], 'payload, then the final save (IPv6 off)');
  t.equal(lines.filter((l) => l === 'x').length, 0);
  t.match(a.stdout, /running iptables in dry-run mode/);
  t.match(a.stdout, /Running iptables restore with: iptables-restore and the following input:\n\* nat\n-N ISTIO_INBOUND\n/);
  t.match(a.stdout, /-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN\n-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT\n/);
  t.match(a.stdout, /skipping configuring routes due to dry run mode/);

  const record2 = join(dir, 'record2');
  const b = await runCliToEnd(['istio-iptables', ...INJECTED, '--dry-run'], { bin: pilotAgentBin, env: env({ DRY_RUN_FILE_PATH: record2 }) });
  t.equal(b.code, 0, b.stderr);
  t.equal(readFileSync(record2, 'utf8'), readFileSync(record, 'utf8'));
});

t.test("the injector's istio-init arguments produce capture rules", { skip: corpusSkipReason('injection') }, async (t) => {
  let checked = 0;
  for (const pod of loadInjectedPods()) {
    // (istio-validation, with istio-cni, would validate this host's real rules; not run here.)
    const init = findContainer(pod, 'istio-init');
    if (!init?.args || init.args[0] !== 'istio-iptables') continue;
    const record = join(dir, `${pod.file}.record`);
    let stderr = '';
    const code = await runIptables([...init.args.slice(1), '--dry-run', `--log_target=${join(dir, `${pod.file}.log`)}`], {
      env: { DRY_RUN_FILE_PATH: record },
      machine: { interfaceAddresses: () => [POD_VALUES.podIp], dnsServers: () => ({ v4: ['10.96.0.10'], v6: [] }), lookupUid: () => undefined },
      stdout: () => {},
      stderr: (s) => (stderr += s),
    });
    t.equal(code, 0, `${pod.file}: exit 0 ${stderr}`);
    const text = readFileSync(record, 'utf8');
    t.match(text, /^-A OUTPUT -j ISTIO_OUTPUT$/m, `${pod.file}: outbound capture`);
    if (init.args.includes('TPROXY')) t.match(text, /-j TPROXY --tproxy-mark 1337\/0xffffffff --on-port 15006/, `${pod.file}: TPROXY`);
    checked++;
  }
  t.ok(checked >= 15, `checked ${checked} injected pods`);
});

t.test('exit codes and error lines', async (t) => {
  const unknown = await runCliToEnd(['--bogus'], { bin: istioIptablesBin, env: env() });
  t.equal(unknown.code, 255);
  t.equal(unknown.stderr, 'Error: unknown flag: --bogus\n', 'one line, no usage text');
  const badBool = await runCliToEnd(['--dry-run=maybe'], { bin: istioIptablesBin, env: env() });
  t.equal(badBool.code, 255);

  const help = await runCliToEnd(['--help'], { bin: istioIptablesBin, env: env() });
  t.equal(help.code, 0);
  t.match(help.stdout, /istio-iptables \[flags\]/);
  t.match(help.stdout, /--istio-inbound-interception-mode string/);

  const badCidr = await runCliToEnd([...INJECTED, '-x', '10.0.0.0', '--dry-run'], { bin: istioIptablesBin, env: env() });
  t.equal(badCidr.code, 1);
  t.match(badCidr.stdout, /\terror\tnetip\.ParsePrefix\("10\.0\.0\.0"\): no '\/'\n/);
  t.notMatch(badCidr.stdout, /Running iptables restore/, 'nothing is applied');

  const wildExclude = await runCliToEnd([...INJECTED, '-x', '*', '--dry-run'], { bin: istioIptablesBin, env: env() });
  t.equal(wildExclude.code, 1);
  t.match(wildExclude.stdout, /invalid value for OUTBOUND_IP_RANGES_EXCLUDE/);

  const json = await runCliToEnd([...INJECTED, '-m', 'FOO', '--log_as_json'], { bin: istioIptablesBin, env: env() });
  t.equal(json.code, 1);
  const errors = json.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { level: string; msg: string })
    .filter((l) => l.level === 'error');
  t.equal(errors.length, 1);
  t.match(errors[0]!.msg, /invalid inbound interception mode "FOO"/);
});

t.test('start-up is lean: one bundle file, no commander, YAML, HTTP or gRPC', async (t) => {
  // A preload that records every module either loader loads: CommonJS through Module._load,
  // ES modules through a registered load hook.
  const logFile = join(dir, 'loaded');
  const hooks = join(dir, 'hooks.mjs');
  writeFileSync(
    hooks,
    `import { appendFileSync } from 'node:fs';\nexport async function load(url, context, next) { appendFileSync(${JSON.stringify(logFile)}, url + '\\n'); return next(url, context); }\n`,
  );
  const preload = join(dir, 'preload.cjs');
  writeFileSync(
    preload,
    `const { appendFileSync } = require('node:fs');\nconst Module = require('node:module');\nModule.register(${JSON.stringify(pathToFileURL(hooks).href)});\n` +
      `const load = Module._load;\nModule._load = function (request, parent, isMain) { const m = load.apply(this, arguments); try { appendFileSync(${JSON.stringify(logFile)}, Module._resolveFilename(request, parent, isMain) + '\\n'); } catch {} return m; };\n`,
  );
  const loaded = async (bin: string, args: string[]) => {
    writeFileSync(logFile, '');
    // `env -u`: tap adds its process-tracking hooks to children through NODE_OPTIONS.
    await run('env', ['-u', 'NODE_OPTIONS', process.execPath, '--require', preload, bin, ...args], { env: env() });
    return readFileSync(logFile, 'utf8');
  };
  const onDisk = (files: string) =>
    [
      ...new Set(
        files
          .split('\n')
          .map((f) => f.replace(/^file:\/\//, ''))
          .filter((f) => f.startsWith(projectRoot + '/')),
      ),
    ]
      .map((f) => f.slice(projectRoot.length + 1))
      .sort();
  // istio-iptables is one CommonJS file; pilot-agent adds only its entry and the chunks of the
  // dispatch check (esbuild's helpers and dispatch.ts, no command tree, no configuration model).
  t.same(onDisk(await loaded(istioIptablesBin, [...INJECTED, '--dry-run'])), ['dist/bundle/istio-iptables.cjs']);
  const viaAgent = onDisk(await loaded(pilotAgentBin, ['istio-iptables', ...INJECTED, '--dry-run']));
  const chunks = viaAgent.filter((f) => f.startsWith('dist/bundle/agent-chunk-'));
  t.same(
    viaAgent.filter((f) => !chunks.includes(f)),
    ['dist/bundle/istio-iptables-lib.cjs', 'dist/bundle/pilot-agent.mjs'],
    'the entry and the istio-iptables bundle',
  );
  t.ok(chunks.length <= 2, `at most two small shared chunks (${chunks.join(', ')})`);
  const chunkText = chunks.map((f) => readFileSync(join(projectRoot, f), 'utf8')).join('');
  t.ok(chunkText.length < 8000 && !/commander|resolveAgentConfig/.test(chunkText), 'neither commander nor the configuration model');
});
