// A strict JSON parser for plugin configuration (RFC 8259, as nlohmann::json parses it for
// istio/proxy extensions/common/wasm/json_util.cc JsonParse). Objects keep the last value of a
// repeated key and iterate in sorted key order, like nlohmann's std::map-backed object. Nesting
// is capped so a hostile configuration cannot overflow the wasm stack.

const MAX_DEPTH = 128;

export namespace JsonKind {
  export const Null: i32 = 0;
  export const Bool: i32 = 1;
  export const Number: i32 = 2;
  export const String: i32 = 3;
  export const Array: i32 = 4;
  export const Object: i32 = 5;
}

export class JsonValue {
  kind: i32 = JsonKind.Null;
  bool: bool = false;
  num: f64 = 0;
  /** Whether the number was written without fraction or exponent (nlohmann's integer kinds). */
  integral: bool = false;
  str: string = '';
  items: JsonValue[] = [];
  keys: string[] = [];
  values: JsonValue[] = [];

  isObject(): bool {
    return this.kind == JsonKind.Object;
  }

  /** The member named `key`, or null. */
  get(key: string): JsonValue | null {
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] == key) return this.values[i];
    return null;
  }

  /** Object keys in sorted order (std::map iteration). */
  sortedKeys(): string[] {
    const k = this.keys.slice(0);
    k.sort((a: string, b: string): i32 => (a < b ? -1 : a > b ? 1 : 0));
    return k;
  }
}

class Parser {
  pos: i32 = 0;
  failed: bool = false;

  constructor(public readonly s: string) {}

  peek(): i32 {
    return this.pos < this.s.length ? this.s.charCodeAt(this.pos) : -1;
  }

  ws(): void {
    while (this.pos < this.s.length) {
      const c = this.s.charCodeAt(this.pos);
      if (c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d) this.pos++;
      else break;
    }
  }

  fail(): JsonValue {
    this.failed = true;
    return new JsonValue();
  }

  literal(word: string): bool {
    if (this.s.substr(this.pos, word.length) != word) return false;
    this.pos += word.length;
    return true;
  }

  value(depth: i32): JsonValue {
    if (depth > MAX_DEPTH) return this.fail();
    this.ws();
    const c = this.peek();
    const v = new JsonValue();
    if (c == 0x7b) return this.object(depth);
    if (c == 0x5b) return this.array(depth);
    if (c == 0x22) {
      const s = this.string();
      if (this.failed) return v;
      v.kind = JsonKind.String;
      v.str = s;
      return v;
    }
    if (c == 0x74 && this.literal('true')) {
      v.kind = JsonKind.Bool;
      v.bool = true;
      return v;
    }
    if (c == 0x66 && this.literal('false')) {
      v.kind = JsonKind.Bool;
      return v;
    }
    if (c == 0x6e && this.literal('null')) return v;
    if (c == 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    return this.fail();
  }

  number(): JsonValue {
    const start = this.pos;
    let integral = true;
    if (this.peek() == 0x2d) this.pos++;
    if (this.peek() == 0x30) this.pos++;
    else if (this.peek() >= 0x31 && this.peek() <= 0x39) while (this.peek() >= 0x30 && this.peek() <= 0x39) this.pos++;
    else return this.fail();
    if (this.peek() == 0x2e) {
      integral = false;
      this.pos++;
      if (!(this.peek() >= 0x30 && this.peek() <= 0x39)) return this.fail();
      while (this.peek() >= 0x30 && this.peek() <= 0x39) this.pos++;
    }
    if (this.peek() == 0x65 || this.peek() == 0x45) {
      integral = false;
      this.pos++;
      if (this.peek() == 0x2b || this.peek() == 0x2d) this.pos++;
      if (!(this.peek() >= 0x30 && this.peek() <= 0x39)) return this.fail();
      while (this.peek() >= 0x30 && this.peek() <= 0x39) this.pos++;
    }
    const v = new JsonValue();
    v.kind = JsonKind.Number;
    v.integral = integral;
    v.num = parseFloat(this.s.substring(start, this.pos));
    return v;
  }

  hex4(): i32 {
    if (this.pos + 4 > this.s.length) return -1;
    let v = 0;
    for (let i = 0; i < 4; i++) {
      const c = this.s.charCodeAt(this.pos + i);
      let d = -1;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x61 + 10;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x41 + 10;
      if (d < 0) return -1;
      v = (v << 4) | d;
    }
    this.pos += 4;
    return v;
  }

  string(): string {
    this.pos++; // opening quote
    let out = '';
    let chunk = this.pos;
    while (true) {
      if (this.pos >= this.s.length) {
        this.failed = true;
        return '';
      }
      const c = this.s.charCodeAt(this.pos);
      if (c == 0x22) {
        out += this.s.substring(chunk, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) {
        this.failed = true;
        return '';
      }
      if (c != 0x5c) {
        this.pos++;
        continue;
      }
      out += this.s.substring(chunk, this.pos);
      this.pos++;
      const e = this.peek();
      this.pos++;
      if (e == 0x22) out += '"';
      else if (e == 0x5c) out += '\\';
      else if (e == 0x2f) out += '/';
      else if (e == 0x62) out += '\b';
      else if (e == 0x66) out += '\f';
      else if (e == 0x6e) out += '\n';
      else if (e == 0x72) out += '\r';
      else if (e == 0x74) out += '\t';
      else if (e == 0x75) {
        const u = this.hex4();
        if (u < 0) {
          this.failed = true;
          return '';
        }
        if (u >= 0xd800 && u <= 0xdbff) {
          // A high surrogate must be followed by an escaped low surrogate.
          if (!this.literal('\\u')) {
            this.failed = true;
            return '';
          }
          const lo = this.hex4();
          if (lo < 0xdc00 || lo > 0xdfff) {
            this.failed = true;
            return '';
          }
          out += String.fromCharCode(u, lo);
        } else if (u >= 0xdc00 && u <= 0xdfff) {
          this.failed = true;
          return '';
        } else {
          out += String.fromCharCode(u);
        }
      } else {
        this.failed = true;
        return '';
      }
      chunk = this.pos;
    }
  }

  array(depth: i32): JsonValue {
    this.pos++;
    const v = new JsonValue();
    v.kind = JsonKind.Array;
    this.ws();
    if (this.peek() == 0x5d) {
      this.pos++;
      return v;
    }
    while (true) {
      const item = this.value(depth + 1);
      if (this.failed) return v;
      v.items.push(item);
      this.ws();
      const c = this.peek();
      this.pos++;
      if (c == 0x2c) continue;
      if (c == 0x5d) return v;
      return this.fail();
    }
  }

  object(depth: i32): JsonValue {
    this.pos++;
    const v = new JsonValue();
    v.kind = JsonKind.Object;
    this.ws();
    if (this.peek() == 0x7d) {
      this.pos++;
      return v;
    }
    while (true) {
      this.ws();
      if (this.peek() != 0x22) return this.fail();
      const key = this.string();
      if (this.failed) return v;
      this.ws();
      if (this.peek() != 0x3a) return this.fail();
      this.pos++;
      const item = this.value(depth + 1);
      if (this.failed) return v;
      let replaced = false;
      for (let i = 0; i < v.keys.length; i++) {
        if (v.keys[i] == key) {
          v.values[i] = item;
          replaced = true;
          break;
        }
      }
      if (!replaced) {
        v.keys.push(key);
        v.values.push(item);
      }
      this.ws();
      const c = this.peek();
      this.pos++;
      if (c == 0x2c) continue;
      if (c == 0x7d) return v;
      return this.fail();
    }
  }
}

/** Parses a JSON document; null unless it is valid JSON whose top level is an object. */
export function parseJsonObject(text: string): JsonValue | null {
  const p = new Parser(text);
  const v = p.value(0);
  if (p.failed) return null;
  p.ws();
  if (p.pos != text.length) return null;
  return v.isObject() ? v : null;
}

/** JsonValueAs<bool>: a JSON bool, or the strings "true" / "false". -1 when absent or not a bool. */
export function jsonBool(obj: JsonValue, key: string): i32 {
  const v = obj.get(key);
  if (v === null) return -1;
  if (v.kind == JsonKind.Bool) return v.bool ? 1 : 0;
  if (v.kind == JsonKind.String) {
    if (v.str == 'true') return 1;
    if (v.str == 'false') return 0;
  }
  return -1;
}

/** JsonValueAs<std::string>: only a JSON string. */
export function jsonString(obj: JsonValue, key: string): string | null {
  const v = obj.get(key);
  if (v === null || v.kind != JsonKind.String) return null;
  return v.str;
}

export class JsonInt {
  constructor(
    public ok: bool,
    public value: i64,
  ) {}
}

/** JsonValueAs<int64_t>: a JSON number (truncated), or a string absl::SimpleAtoi accepts. */
export function jsonInt64(obj: JsonValue, key: string): JsonInt {
  const v = obj.get(key);
  if (v === null) return new JsonInt(false, 0);
  if (v.kind == JsonKind.Number) {
    if (!isFinite(v.num) || v.num >= 9.2233720368547758e18 || v.num < -9.2233720368547758e18) return new JsonInt(false, 0);
    return new JsonInt(true, <i64>v.num);
  }
  if (v.kind == JsonKind.String) return simpleAtoi(v.str);
  return new JsonInt(false, 0);
}

/** absl::SimpleAtoi for int64: optional surrounding ASCII whitespace, optional sign, decimal digits, no overflow. */
export function simpleAtoi(s: string): JsonInt {
  let i = 0;
  let end = s.length;
  while (i < end && isAsciiSpace(s.charCodeAt(i))) i++;
  while (end > i && isAsciiSpace(s.charCodeAt(end - 1))) end--;
  let negative = false;
  if (i < end && (s.charCodeAt(i) == 0x2b || s.charCodeAt(i) == 0x2d)) {
    negative = s.charCodeAt(i) == 0x2d;
    i++;
  }
  if (i >= end) return new JsonInt(false, 0);
  let v: u64 = 0;
  const limit: u64 = negative ? 9223372036854775808 : 9223372036854775807;
  for (; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return new JsonInt(false, 0);
    const d = <u64>(c - 0x30);
    if (v > (limit - d) / 10) return new JsonInt(false, 0);
    v = v * 10 + d;
  }
  return new JsonInt(true, negative ? -(<i64>v) : <i64>v);
}

function isAsciiSpace(c: i32): bool {
  return c == 0x20 || (c >= 0x09 && c <= 0x0d);
}
