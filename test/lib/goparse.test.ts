import t from 'tap';
import { formatGoDuration, goUnquote, parseGoBool, parseGoDuration, parseGoFloat, parseGoInt } from '../../lib/goparse.js';

t.test('ParseBool accepts exactly Go spellings', async (t) => {
  for (const v of ['1', 't', 'T', 'TRUE', 'true', 'True']) t.equal(parseGoBool(v), true, v);
  for (const v of ['0', 'f', 'F', 'FALSE', 'false', 'False']) t.equal(parseGoBool(v), false, v);
  for (const v of ['', 'yes', 'no', 'tRUE', ' true', 'on']) t.equal(parseGoBool(v), undefined, JSON.stringify(v));
});

t.test('Atoi', async (t) => {
  t.equal(parseGoInt('15020'), 15020);
  t.equal(parseGoInt('-1'), -1);
  t.equal(parseGoInt('+7'), 7);
  for (const v of ['', '1.0', '0x10', ' 1', '1e3', 'abc']) t.equal(parseGoInt(v), undefined, JSON.stringify(v));
});

t.test('ParseFloat', async (t) => {
  t.equal(parseGoFloat('0.5'), 0.5);
  t.equal(parseGoFloat('1e-2'), 0.01);
  t.equal(parseGoFloat('.5'), 0.5);
  t.equal(parseGoFloat('abc'), undefined);
  t.equal(parseGoFloat(''), undefined);
});

t.test('ParseDuration follows time.ParseDuration', async (t) => {
  const ok: [string, number][] = [
    ['0', 0],
    ['5s', 5000],
    ['1m30s', 90000],
    ['100ms', 100],
    ['1.5h', 5400000],
    ['-2s', -2000],
    ['300us', 0.3],
    ['300µs', 0.3],
    ['10ns', 0.00001],
    ['2h45m', 9900000],
    ['.5s', 500],
    ['1.s', 1000],
  ];
  for (const [s, ms] of ok) t.ok(Math.abs(parseGoDuration(s)! - ms) < 1e-9, `${s} = ${ms}ms`);
  for (const s of ['', '5', '1d', 's', '.s', '1.5', 'abc', '5 s', '--5s']) t.equal(parseGoDuration(s), undefined, JSON.stringify(s));
});

t.test('Duration.String', async (t) => {
  t.equal(formatGoDuration(0), '0s');
  t.equal(formatGoDuration(24 * 3600_000), '24h0m0s');
  t.equal(formatGoDuration(90_000), '1m30s');
  t.equal(formatGoDuration(100), '100ms');
  t.equal(formatGoDuration(1500), '1.5s');
  t.equal(formatGoDuration(-5000), '-5s');
});

t.test('Unquote handles the downward API escapes', async (t) => {
  t.equal(goUnquote('"plain"'), 'plain');
  t.equal(goUnquote('"a\\"b\\\\c"'), 'a"b\\c');
  t.equal(goUnquote('"line\\nnext\\ttab"'), 'line\nnext\ttab');
  t.equal(goUnquote('"\\x41\\u00e9\\U0001F600\\101"'), 'Aé😀A');
  t.equal(goUnquote('"héllo ✓"'), 'héllo ✓');
  t.equal(goUnquote('`raw \\n`'), 'raw \\n');
  for (const bad of ['noquotes', '"unterminated', '"bad \\q escape"', '"a"b"', '"\\x4"', "'x'"]) t.equal(goUnquote(bad), undefined, bad);
});
