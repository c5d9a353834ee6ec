// Istio's own expectations for istio-iptables, one test per case of the corpus
// ($IPTABLES_CASES, default ../shared/conformance/iptables/cases.json):
// - capture cases: the CLI run in dry-run (flags + env + the machine values Istio's test
//   injects) must record exactly the golden: saves, v4 payload, v6 payload, final saves;
// - builder goldens: command and restore renderings of direct builder calls;
// - inline cases: check lists, cleanup lists, state parsed from a restore payload.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseSave, renderChecks, renderCommands, renderRestore, renderUndo, RuleBuilder, runIptables, type Machine } from '../../iptables/index.js';
import { corpusPath, corpusSkipReason } from '../support/paths.js';

interface Op {
  op: 'AppendRuleV4' | 'AppendRuleV6' | 'InsertRuleV4' | 'InsertRuleV6';
  chain: string;
  table: string;
  position?: number;
  params: string[];
}
interface CaptureCase {
  name: string;
  flags: string[];
  env: Record<string, string>;
  config: { EnableIPv6: boolean; DNSServersV4: string[]; DNSServersV6: string[] };
  golden: string[];
}
interface BuilderCase {
  name: string;
  config?: { EnableIPv6?: boolean };
  used_by: { test: string; family: 'v4' | 'v6'; ops: Op[] }[];
  golden: string[];
}
interface InlineCase {
  test: string;
  ops: Op[];
  expected_v4?: string[][];
  expected_v6?: string[][];
  expected_state?: Record<string, Record<string, string[]>>;
}
interface Corpus {
  cases?: CaptureCase[];
  builder_cases?: BuilderCase[];
  builder_inline_cases?: InlineCase[];
}

const skip = corpusSkipReason('iptables');
if (skip) t.test("Istio's istio-iptables cases", { skip }, () => {});
const corpus = (skip ? {} : JSON.parse(readFileSync(corpusPath('iptables'), 'utf8'))) as Corpus;
const scratch = mkdtempSync(join(tmpdir(), 'ipt-conformance-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));

function trimmed(lines: string[] | string): string {
  return (Array.isArray(lines) ? lines.join('\n') : lines).trim();
}

/** The machine Istio's test describes: an address of the right family, the given DNS servers. */
function injectedMachine(c: CaptureCase): Machine {
  return {
    interfaceAddresses: () => [c.config.EnableIPv6 ? 'fd00:10:244::17' : '10.244.1.17'],
    dnsServers: () => ({ v4: [...c.config.DNSServersV4], v6: [...c.config.DNSServersV6] }),
    lookupUid: () => undefined,
  };
}

for (const c of corpus.cases ?? []) {
  t.test(`capture: ${c.name}`, async (t) => {
    const record = join(scratch, `${c.name}.record`);
    let stderr = '';
    const code = await runIptables([...c.flags, '--dry-run', `--log_target=${join(scratch, `${c.name}.log`)}`], {
      env: { ...c.env, DRY_RUN_FILE_PATH: record },
      machine: injectedMachine(c),
      stdout: () => {},
      stderr: (s) => (stderr += s),
    });
    t.equal(code, 0, stderr);
    t.equal(trimmed(readFileSync(record, 'utf8')), trimmed(c.golden));
  });
}

function build(ops: Op[], enableIPv6: boolean) {
  const b = new RuleBuilder(enableIPv6);
  for (const o of ops) {
    if (o.op === 'AppendRuleV4') b.appendV4(o.chain, o.table, ...o.params);
    else if (o.op === 'AppendRuleV6') b.appendV6(o.chain, o.table, ...o.params);
    else if (o.op === 'InsertRuleV4') b.insertV4(o.chain, o.table, o.position!, ...o.params);
    else b.insertV6(o.chain, o.table, o.position!, ...o.params);
  }
  return b.build();
}

for (const c of corpus.builder_cases ?? []) {
  t.test(`builder: ${c.name}`, async (t) => {
    for (const u of c.used_by) {
      const rules = build(u.ops, c.config?.EnableIPv6 ?? true)[u.family];
      const got = c.name.endsWith('-restore')
        ? renderRestore(rules)
        : renderCommands(rules)
            .map((a) => a.join(' '))
            .join('\n');
      t.equal(trimmed(got), trimmed(c.golden), u.test);
    }
  });
}

for (const c of corpus.builder_inline_cases ?? []) {
  t.test(`builder inline: ${c.test}`, async (t) => {
    if (c.expected_state) {
      const state = parseSave(renderRestore(build(c.ops, false).v4));
      const asObject = Object.fromEntries([...state].map(([table, chains]) => [table, Object.fromEntries(chains)]));
      t.same(asObject, c.expected_state);
      return;
    }
    const rules = build(c.ops, true);
    const render = c.test.startsWith('TestCheckRules') ? renderChecks : renderUndo;
    t.same(render(rules.v4), c.expected_v4 ?? []);
    t.same(render(rules.v6), c.expected_v6 ?? []);
  });
}
