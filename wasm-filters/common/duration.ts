// absl::ParseDuration, for the stats filter's `tcp_reporting_duration` ("1s", "500ms", "1h30m",
// "1.5s", "0", "-2s", "inf"): an optional sign, then one or more decimal numbers each with a
// unit of ns, us, ms, s, m or h. The result is whole milliseconds, truncated toward zero as
// `duration / absl::Milliseconds(1)` does.

export class ParsedDuration {
  constructor(
    public ok: bool,
    public millis: i64,
  ) {}
}

function unitNanos(s: string, at: i32): i64 {
  // Longest match first: "ms" before "m".
  const two = s.substr(at, 2);
  if (two == 'ns') return 1;
  if (two == 'us') return 1000;
  if (two == 'ms') return 1000000;
  const one = s.substr(at, 1);
  if (one == 's') return 1000000000;
  if (one == 'm') return 60000000000;
  if (one == 'h') return 3600000000000;
  return 0;
}

export function parseDuration(input: string): ParsedDuration {
  let s = input;
  let sign: i64 = 1;
  if (s.length > 0 && (s.charCodeAt(0) == 0x2d || s.charCodeAt(0) == 0x2b)) {
    if (s.charCodeAt(0) == 0x2d) sign = -1;
    s = s.substr(1);
  }
  if (s == '0') return new ParsedDuration(true, 0);
  if (s == 'inf') return new ParsedDuration(true, sign * i64.MAX_VALUE);
  if (s.length == 0) return new ParsedDuration(false, 0);
  let totalNanos: f64 = 0;
  let i = 0;
  while (i < s.length) {
    const start = i;
    while (i < s.length && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x39) i++;
    const intDigits = i - start;
    let fracDigits = 0;
    if (i < s.length && s.charCodeAt(i) == 0x2e) {
      i++;
      const fs = i;
      while (i < s.length && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x39) i++;
      fracDigits = i - fs;
    }
    if (intDigits == 0 && fracDigits == 0) return new ParsedDuration(false, 0);
    const number = parseFloat(s.substring(start, i));
    const unit = unitNanos(s, i);
    if (unit == 0) return new ParsedDuration(false, 0);
    i += unit == 1 || unit == 1000 || unit == 1000000 ? 2 : 1;
    totalNanos += number * <f64>unit;
  }
  if (totalNanos >= 9.2e18) return new ParsedDuration(true, sign * (i64.MAX_VALUE / 1000000));
  return new ParsedDuration(true, (sign * <i64>totalNanos) / 1000000);
}
