// Parsers that accept exactly what Go's standard library accepts, because Istio's users write
// values for Go's parsers (env vars, flags, annotations) and a drop-in must read them the same way.

/** Go strconv.ParseBool. Returns undefined when Go would return an error. */
export function parseGoBool(s: string): boolean | undefined {
  switch (s) {
    case '1':
    case 't':
    case 'T':
    case 'TRUE':
    case 'true':
    case 'True':
      return true;
    case '0':
    case 'f':
    case 'F':
    case 'FALSE':
    case 'false':
    case 'False':
      return false;
    default:
      return undefined;
  }
}

/** Go strconv.Atoi (base 10, optional sign, 64-bit range). Undefined on error. */
export function parseGoInt(s: string): number | undefined {
  if (!/^[+-]?\d+$/.test(s)) return undefined;
  const n = Number(s);
  // Go's int is 64-bit; JS can hold that only approximately, which is fine for ports, sizes and counts.
  if (!Number.isFinite(n) || Math.abs(n) > 2 ** 63) return undefined;
  return n;
}

/** Go strconv.ParseFloat(s, 64) for the decimal forms users write (no hex floats). */
export function parseGoFloat(s: string): number | undefined {
  const t = s.trim() === s ? s : '';
  if (/^[+-]?(inf|infinity)$/i.test(t)) return t.startsWith('-') ? -Infinity : Infinity;
  if (/^nan$/i.test(t)) return NaN;
  if (!/^[+-]?(\d[\d_]*\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t)) return undefined;
  const n = Number(t.replace(/_/g, ''));
  return Number.isNaN(n) ? undefined : n;
}

const durationUnits: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3, // U+00B5 micro sign
  μs: 1e-3, // U+03BC Greek mu
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Go time.ParseDuration ("300ms", "-1.5h", "2h45m", "0"). Returns milliseconds (possibly
 * fractional), or undefined where Go returns an error. A bare number other than 0 is an error in Go.
 */
export function parseGoDuration(input: string): number | undefined {
  let s = input;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') return undefined;
  let total = 0;
  const re = /^(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/;
  while (s.length > 0) {
    const m = re.exec(s);
    if (!m) return undefined;
    const [whole, intPart = '', fracPart] = m;
    if (intPart === '' && (fracPart === undefined || fracPart === '')) return undefined;
    const unit = durationUnits[m[3]!]!;
    const value = Number(`${intPart || '0'}.${fracPart ?? ''}0`);
    total += value * unit;
    s = s.slice(whole.length);
  }
  // Go rejects durations that overflow int64 nanoseconds (~292 years).
  if (total > 2 ** 63 / 1e9) return undefined; // 9223372036854.775807 s, as close as a double gets
  return sign * total;
}

/** Formats milliseconds the way Go's time.Duration.String() does ("1m30s", "500ms", "0s"). */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return '0s';
  const neg = ms < 0;
  let ns = Math.round(Math.abs(ms) * 1e6);
  let out: string;
  if (ns < 1e9) {
    // Sub-second values use the largest unit that keeps an integer part: ms, µs or ns.
    if (ns >= 1e6) out = `${trimFraction(ns / 1e6)}ms`;
    else if (ns >= 1e3) out = `${trimFraction(ns / 1e3)}µs`;
    else out = `${ns}ns`;
  } else {
    const h = Math.floor(ns / 3.6e12);
    ns -= h * 3.6e12;
    const m = Math.floor(ns / 6e10);
    ns -= m * 6e10;
    const s = trimFraction(ns / 1e9);
    out = h > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${m}m${s}s` : `${s}s`;
  }
  return neg ? `-${out}` : out;
}

function trimFraction(n: number): string {
  return Number(n.toFixed(9)).toString();
}

/**
 * Go strconv.Unquote for double-quoted strings, which is how the Kubernetes downward API writes
 * label and annotation values. Returns undefined where Go would return an error.
 */
export function goUnquote(s: string): string | undefined {
  if (s.length < 2) return undefined;
  const q = s[0];
  if (q !== s[s.length - 1]) return undefined;
  if (q === '`') {
    const body = s.slice(1, -1);
    return body.includes('`') ? undefined : body.replace(/\r/g, '');
  }
  if (q !== '"') return undefined;
  const body = s.slice(1, -1);
  const bytes: number[] = [];
  const pushString = (str: string) => {
    for (const b of Buffer.from(str, 'utf8')) bytes.push(b);
  };
  for (let i = 0; i < body.length;) {
    const c = body[i]!;
    if (c === '"' || c === '\n') return undefined;
    if (c !== '\\') {
      const cp = body.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      pushString(ch);
      i += ch.length;
      continue;
    }
    const e = body[i + 1];
    if (e === undefined) return undefined;
    const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, '"': 34 };
    if (e in simple) {
      bytes.push(simple[e]!);
      i += 2;
      continue;
    }
    if (e === 'x') {
      const hex = body.slice(i + 2, i + 4);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 4;
      continue;
    }
    if (e === 'u' || e === 'U') {
      const len = e === 'u' ? 4 : 8;
      const hex = body.slice(i + 2, i + 2 + len);
      if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(hex)) return undefined;
      const cp = parseInt(hex, 16);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return undefined;
      pushString(String.fromCodePoint(cp));
      i += 2 + len;
      continue;
    }
    if (e >= '0' && e <= '7') {
      const oct = body.slice(i + 1, i + 4);
      if (!/^[0-7]{3}$/.test(oct)) return undefined;
      const v = parseInt(oct, 8);
      if (v > 255) return undefined;
      bytes.push(v);
      i += 4;
      continue;
    }
    return undefined;
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Go strconv.Quote-like quoting used when we echo values back in logs (`FLAG: --x="v"`). */
export function goQuote(s: string): string {
  return JSON.stringify(s);
}
