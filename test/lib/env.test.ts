import t from 'tap';
import { bool, duration, envTableMarkdown, float, int, optBool, optStr, prefix, readEnv, str, type EnvWarning } from '../../lib/env.js';

const defs = {
  A_STR: str('dflt', 'a string', 'G'),
  A_BOOL: bool(true, 'a bool', 'G'),
  A_INT: int(15020, 'an int', 'G'),
  A_FLOAT: float(0.5, 'a float', 'G'),
  A_DUR: duration(5000, 'a duration', 'G'),
  A_OPT: optStr('optional', 'G'),
  A_OPTB: optBool('optional bool', 'G'),
  P_: prefix('a family', 'H'),
};

t.test('defaults when unset', async (t) => {
  const w: EnvWarning[] = [];
  const v = readEnv(defs, {}, (x) => w.push(x));
  t.same({ ...v, P_: [...v.P_] }, { A_STR: 'dflt', A_BOOL: true, A_INT: 15020, A_FLOAT: 0.5, A_DUR: 5000, A_OPT: undefined, A_OPTB: undefined, P_: [] });
  t.equal(w.length, 0);
});

t.test('set values parse with Go rules; set-but-empty strings count as set', async (t) => {
  const v = readEnv(defs, { A_STR: '', A_BOOL: 'F', A_INT: '-3', A_FLOAT: '1e-2', A_DUR: '1m', A_OPT: '', A_OPTB: 'true', P_X: '1', P_: 'no', Q_P_Y: '2' }, () => t.fail('no warnings'));
  t.equal(v.A_STR, '');
  t.equal(v.A_BOOL, false);
  t.equal(v.A_INT, -3);
  t.equal(v.A_FLOAT, 0.01);
  t.equal(v.A_DUR, 60000);
  t.equal(v.A_OPT, '');
  t.equal(v.A_OPTB, true);
  t.same([...v.P_], [['X', '1']]);
});

t.test('unparsable values warn once, naming variable and value, and fall back', async (t) => {
  const w: EnvWarning[] = [];
  const v = readEnv(defs, { A_BOOL: 'yes', A_INT: '1.5', A_DUR: '10', A_OPTB: 'maybe' }, (x) => w.push(x));
  t.equal(v.A_BOOL, true);
  t.equal(v.A_INT, 15020);
  t.equal(v.A_DUR, 5000);
  t.equal(v.A_OPTB, undefined);
  t.equal(w.length, 4);
  t.match(w[0]!.message, /"yes".*A_BOOL.*default true/);
  t.match(w[1]!.message, /"1\.5".*A_INT/);
  t.match(w[2]!.message, /"10".*A_DUR.*duration.*default 5s/);
});

t.test('table is generated from the declarations', async (t) => {
  const md = envTableMarkdown(defs);
  t.match(md, /\| `A_DUR` \| duration \| `5s` \| a duration \|/);
  t.match(md, /\| `P_<NAME>` \| string map \| — \| a family \|/);
  t.match(md, /\| `A_OPT` \| string \| \(unset\) \|/);
});
