// Go `net/netip` address and prefix parsing, shared by istio-iptables (which reads CIDR lists and
// DNS servers with it: what it accepts, the error text users see (`netip.ParsePrefix("10.0.0.0"):
// no '/'`) and the canonical form written into rules must all match) and the agent (its
// address checks, which Istio also makes with netip).
import { AgentError, errorMessage } from './errors.js';

export interface Addr {
  /** 4 bytes for IPv4, 16 for IPv6 (IPv4-mapped IPv6 stays 16 bytes, as in Go). */
  readonly bytes: Uint8Array;
  readonly zone: string;
}

export interface Prefix {
  readonly addr: Addr;
  readonly bits: number;
}

export class NetipError extends AgentError {
  static override readonly code: string = 'NETIP';
}

// strconv.Quote for the plain ASCII inputs these messages carry; other characters escaped as Go does.
function quote(s: string): string {
  return JSON.stringify(s);
}

function addrError(input: string, msg: string, at?: string): NetipError {
  return new NetipError(`ParseAddr(${quote(input)}): ${msg}${at ? ` (at ${quote(at)})` : ''}`);
}

function parseIPv4(s: string): Addr {
  const fields = new Uint8Array(4);
  let val = 0;
  let pos = 0;
  let digits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits === 1 && val === 0) throw addrError(s, 'IPv4 field has octet with leading zero');
      val = val * 10 + (c - 48);
      digits++;
      if (val > 255) throw addrError(s, 'IPv4 field has value >255');
    } else if (s[i] === '.') {
      if (i === 0 || i === s.length - 1 || s[i - 1] === '.') throw addrError(s, 'IPv4 field must have at least one digit', s.slice(i));
      if (pos === 3) throw addrError(s, 'IPv4 address too long');
      fields[pos++] = val;
      val = 0;
      digits = 0;
    } else {
      throw addrError(s, 'unexpected character', s.slice(i));
    }
  }
  if (pos < 3) throw addrError(s, 'IPv4 address too short');
  fields[3] = val;
  return { bytes: fields, zone: '' };
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

function parseIPv6(input: string): Addr {
  let s = input;
  let zone = '';
  const pct = s.indexOf('%');
  if (pct >= 0) {
    zone = s.slice(pct + 1);
    s = s.slice(0, pct);
    if (zone === '') throw addrError(input, 'zone must be a non-empty string');
  }
  const ip = new Uint8Array(16);
  let ellipsis = -1;
  if (s.length >= 2 && s[0] === ':' && s[1] === ':') {
    ellipsis = 0;
    s = s.slice(2);
    if (s.length === 0) return { bytes: ip, zone };
  }
  let i = 0;
  while (i < 16) {
    let off = 0;
    let acc = 0;
    for (; off < s.length; off++) {
      const h = hexValue(s.charCodeAt(off));
      if (h < 0) break;
      acc = acc * 16 + h;
      // Go checks the digit count first: "00001" is refused although its value fits.
      if (off > 3) throw addrError(input, 'each group must have 4 or less digits', s);
      if (acc > 0xffff) throw addrError(input, 'IPv6 field has value >=2^16', s);
    }
    if (off === 0) throw addrError(input, 'each colon-separated field must have at least one digit', s);
    if (off < s.length && s[off] === '.') {
      if (ellipsis < 0 && i !== 12) throw addrError(input, 'embedded IPv4 address must replace the final 2 fields of the address', s);
      if (i + 4 > 16) throw addrError(input, 'too many hex fields to fit an embedded IPv4 at the end of the address', s);
      let v4: Addr;
      try {
        v4 = parseIPv4(s);
      } catch (err) {
        throw addrError(input, errorMessage(err), s);
      }
      ip.set(v4.bytes, i);
      s = '';
      i += 4;
      break;
    }
    ip[i] = acc >> 8;
    ip[i + 1] = acc & 0xff;
    i += 2;
    s = s.slice(off);
    if (s.length === 0) break;
    if (s[0] !== ':') throw addrError(input, 'unexpected character, want colon', s);
    if (s.length === 1) throw addrError(input, 'colon must be followed by more characters', s);
    s = s.slice(1);
    if (s[0] === ':') {
      if (ellipsis >= 0) throw addrError(input, 'multiple :: in address', s);
      ellipsis = i;
      s = s.slice(1);
      if (s.length === 0) break;
    }
  }
  if (s.length !== 0) throw addrError(input, 'trailing garbage after address', s);
  if (i < 16) {
    if (ellipsis < 0) throw addrError(input, 'address string too short');
    const n = 16 - i;
    for (let j = i - 1; j >= ellipsis; j--) ip[j + n] = ip[j]!;
    for (let j = ellipsis + n - 1; j >= ellipsis; j--) ip[j] = 0;
  } else if (ellipsis >= 0) {
    throw addrError(input, 'the :: must expand to at least one field of zeros');
  }
  return { bytes: ip, zone };
}

/** Go netip.ParseAddr. Throws NetipError with Go's message. */
export function parseAddr(s: string): Addr {
  for (const ch of s) {
    if (ch === '.') return parseIPv4(s);
    if (ch === ':') return parseIPv6(s);
    if (ch === '%') throw addrError(s, 'missing IPv6 address');
  }
  throw addrError(s, 'unable to parse IP');
}

/** Go netip.ParsePrefix: host bits are kept; zones and leading-zero bit counts are rejected. */
export function parsePrefix(s: string): Prefix {
  const fail = (msg: string) => new NetipError(`netip.ParsePrefix(${quote(s)}): ${msg}`);
  const slash = s.lastIndexOf('/');
  if (slash < 0) throw fail("no '/'");
  let addr: Addr;
  try {
    addr = parseAddr(s.slice(0, slash));
  } catch (err) {
    throw fail(errorMessage(err));
  }
  if (is6(addr) && addr.zone !== '') throw fail('IPv6 zones cannot be present in a prefix');
  const bitsStr = s.slice(slash + 1);
  if (bitsStr.length > 1 && (bitsStr[0]! < '1' || bitsStr[0]! > '9')) throw fail(`bad bits after slash: ${quote(bitsStr)}`);
  if (!/^[+-]?\d+$/.test(bitsStr)) throw fail(`bad bits after slash: ${quote(bitsStr)}`);
  const bits = Number(bitsStr);
  if (bits < 0 || bits > (is6(addr) ? 128 : 32)) throw fail('prefix length out of range');
  return { addr, bits };
}

export const is4 = (a: Addr): boolean => a.bytes.length === 4;
export const is6 = (a: Addr): boolean => a.bytes.length === 16;

export function is4In6(a: Addr): boolean {
  if (!is6(a)) return false;
  for (let i = 0; i < 10; i++) if (a.bytes[i] !== 0) return false;
  return a.bytes[10] === 0xff && a.bytes[11] === 0xff;
}

/** IPv4-mapped IPv6 → IPv4; anything else unchanged. */
export function unmap(a: Addr): Addr {
  return is4In6(a) ? { bytes: a.bytes.slice(12), zone: '' } : a;
}

export function isLoopback(a: Addr): boolean {
  const u = unmap(a);
  if (is4(u)) return u.bytes[0] === 127;
  return u.bytes.every((b, i) => b === (i === 15 ? 1 : 0));
}

export function isLinkLocalUnicast(a: Addr): boolean {
  const u = unmap(a);
  if (is4(u)) return u.bytes[0] === 169 && u.bytes[1] === 254;
  return u.bytes[0] === 0xfe && (u.bytes[1]! & 0xc0) === 0x80;
}

export function isLinkLocalMulticast(a: Addr): boolean {
  const u = unmap(a);
  if (is4(u)) return u.bytes[0] === 224 && u.bytes[1] === 0 && u.bytes[2] === 0;
  return u.bytes[0] === 0xff && (u.bytes[1]! & 0x0f) === 0x02;
}

/** Go Addr.IsUnspecified: 0.0.0.0 or :: (no zone). */
export function isUnspecified(a: Addr): boolean {
  return a.zone === '' && a.bytes.every((b) => b === 0);
}

/** Go Addr.String(): dotted quad, or RFC 5952 IPv6 (longest zero run compressed, first on a tie). */
export function formatAddr(a: Addr): string {
  if (is4(a)) return Array.from(a.bytes).join('.');
  if (is4In6(a)) return `::ffff:${Array.from(a.bytes.slice(12)).join('.')}${a.zone ? `%${a.zone}` : ''}`;
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((a.bytes[i]! << 8) | a.bytes[i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i >= 2 && j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      out += '::';
      i += bestLen - 1;
      continue;
    }
    if (out !== '' && !out.endsWith(':')) out += ':';
    out += words[i]!.toString(16);
  }
  return out + (a.zone ? `%${a.zone}` : '');
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddr(p.addr)}/${p.bits}`;
}

/**
 * 4, 6 or 0, as node:net `isIP` answers, by Go's rules (netip.ParseAddr; a zone is allowed on
 * IPv6). Not `isIP` itself: its first IPv6 check compiles a large regular expression, ~4 ms of the
 * agent's start-up.
 */
export function ipFamily(s: string): 0 | 4 | 6 {
  try {
    return parseAddr(s).bytes.length === 4 ? 4 : 6;
  } catch {
    return 0;
  }
}
