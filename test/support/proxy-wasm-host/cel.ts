// The subset of CEL (Common Expression Language) Istio's stats configuration uses, evaluated
// against the host's attributes, standing in for Envoy's `expr_create` / `expr_evaluate`
// foreign functions: literals (strings, ints, bools, null), identifiers, field selection
// (`a.b`), indexing (`a['k']`, `a[0]`), `has(a.b)`, `size(x)`, `+` (strings, ints), `-`, `*`,
// `==`, `!=`, `<`, `<=`, `>`, `>=`, `!`, `&&`, `||` and `? :`. Anything else is a parse error, as
// `cannot _ parse | 1` must be; evaluation errors (an unknown identifier, a missing key) are
// errors too, as in CEL.

export type CelValue = string | bigint | boolean | null | Uint8Array | CelValue[] | { [k: string]: CelValue };

export type Expr =
  | { kind: 'lit'; value: CelValue }
  | { kind: 'ident'; name: string }
  | { kind: 'select'; operand: Expr; field: string }
  | { kind: 'index'; operand: Expr; index: Expr }
  | { kind: 'call'; fn: string; args: Expr[] }
  | { kind: 'unary'; op: '!' | '-'; operand: Expr }
  | { kind: 'binary'; op: string; left: Expr; right: Expr }
  | { kind: 'cond'; test: Expr; then: Expr; otherwise: Expr };

export class CelError extends Error {}

type Token = { t: 'str'; v: string } | { t: 'int'; v: bigint } | { t: 'id'; v: string } | { t: 'op'; v: string } | { t: 'eof' };

const OPS = ['&&', '||', '==', '!=', '<=', '>=', '<', '>', '+', '-', '*', '/', '%', '!', '?', ':', '.', ',', '(', ')', '[', ']'];

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      let s = '';
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\') {
          const e = src[j + 1];
          const map: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', "'": "'" };
          if (e === undefined || map[e] === undefined) throw new CelError(`bad escape in ${src}`);
          s += map[e];
          j += 2;
        } else s += src[j++];
      }
      if (j >= src.length) throw new CelError('unterminated string');
      out.push({ t: 'str', v: s });
      i = j + 1;
      continue;
    }
    const num = /^[0-9]+/.exec(src.slice(i));
    if (num) {
      out.push({ t: 'int', v: BigInt(num[0]) });
      i += num[0].length;
      continue;
    }
    const id = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i));
    if (id) {
      out.push({ t: 'id', v: id[0] });
      i += id[0].length;
      continue;
    }
    const op = OPS.find((o) => src.startsWith(o, i));
    if (op === undefined) throw new CelError(`unexpected character '${c}'`);
    out.push({ t: 'op', v: op });
    i += op.length;
  }
  out.push({ t: 'eof' });
  return out;
}

class Parser {
  private pos = 0;
  constructor(private readonly toks: Token[]) {}

  private peek(): Token {
    return this.toks[this.pos]!;
  }

  private isOp(v: string): boolean {
    const t = this.peek();
    return t.t === 'op' && t.v === v;
  }

  private expect(v: string): void {
    if (!this.isOp(v)) throw new CelError(`expected '${v}'`);
    this.pos++;
  }

  parse(): Expr {
    const e = this.cond();
    if (this.peek().t !== 'eof') throw new CelError('unexpected trailing input');
    return e;
  }

  private cond(): Expr {
    const test = this.binary(0);
    if (!this.isOp('?')) return test;
    this.pos++;
    const then = this.cond();
    this.expect(':');
    return { kind: 'cond', test, then, otherwise: this.cond() };
  }

  private static readonly LEVELS = [['||'], ['&&'], ['==', '!=', '<', '<=', '>', '>='], ['+', '-'], ['*', '/', '%']];

  private binary(level: number): Expr {
    if (level >= Parser.LEVELS.length) return this.unary();
    let left = this.binary(level + 1);
    for (;;) {
      const t = this.peek();
      if (t.t === 'op' && Parser.LEVELS[level]!.includes(t.v)) {
        this.pos++;
        left = { kind: 'binary', op: t.v, left, right: this.binary(level + 1) };
      } else return left;
    }
  }

  private unary(): Expr {
    if (this.isOp('!') || this.isOp('-')) {
      const op = (this.toks[this.pos++] as { v: '!' | '-' }).v;
      return { kind: 'unary', op, operand: this.unary() };
    }
    return this.member();
  }

  private member(): Expr {
    let e = this.primary();
    for (;;) {
      if (this.isOp('.')) {
        this.pos++;
        const t = this.peek();
        if (t.t !== 'id') throw new CelError('expected a field name');
        this.pos++;
        e = { kind: 'select', operand: e, field: t.v };
      } else if (this.isOp('[')) {
        this.pos++;
        const index = this.cond();
        this.expect(']');
        e = { kind: 'index', operand: e, index };
      } else return e;
    }
  }

  private primary(): Expr {
    const t = this.peek();
    this.pos++;
    if (t.t === 'str') return { kind: 'lit', value: t.v };
    if (t.t === 'int') return { kind: 'lit', value: t.v };
    if (t.t === 'id') {
      if (t.v === 'true' || t.v === 'false') return { kind: 'lit', value: t.v === 'true' };
      if (t.v === 'null') return { kind: 'lit', value: null };
      if (this.isOp('(')) {
        this.pos++;
        const args: Expr[] = [];
        if (!this.isOp(')')) {
          args.push(this.cond());
          while (this.isOp(',')) {
            this.pos++;
            args.push(this.cond());
          }
        }
        this.expect(')');
        if (t.v === 'has' && (args.length !== 1 || args[0]!.kind !== 'select')) throw new CelError('has() needs a field selection');
        if (!['has', 'size', 'string', 'int'].includes(t.v)) throw new CelError(`unknown function ${t.v}`);
        return { kind: 'call', fn: t.v, args };
      }
      return { kind: 'ident', name: t.v };
    }
    if (t.t === 'op' && t.v === '(') {
      const e = this.cond();
      this.expect(')');
      return e;
    }
    throw new CelError('unexpected token');
  }
}

export function parseCel(src: string): Expr {
  return new Parser(tokenize(src)).parse();
}

/** Resolves a top-level identifier; undefined when there is no such attribute. */
export type Activation = (name: string) => CelValue | undefined;

function isMap(v: CelValue): v is { [k: string]: CelValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function selectField(v: CelValue, key: CelValue): CelValue {
  if (Array.isArray(v)) {
    if (typeof key !== 'bigint' || key < 0n || key >= BigInt(v.length)) throw new CelError('index out of range');
    return v[Number(key)]!;
  }
  if (isMap(v)) {
    if (typeof key !== 'string' || !Object.hasOwn(v, key)) throw new CelError(`no such key: ${typeof key === 'string' ? key : typeof key}`);
    return v[key]!;
  }
  throw new CelError('value does not support field selection');
}

export function evaluateCel(e: Expr, act: Activation): CelValue {
  switch (e.kind) {
    case 'lit':
      return e.value;
    case 'ident': {
      const v = act(e.name);
      if (v === undefined) throw new CelError(`no such attribute: ${e.name}`);
      return v;
    }
    case 'select':
      return selectField(evaluateCel(e.operand, act), e.field);
    case 'index':
      return selectField(evaluateCel(e.operand, act), evaluateCel(e.index, act));
    case 'call': {
      if (e.fn === 'has') {
        const sel = e.args[0] as Extract<Expr, { kind: 'select' }>;
        const target = evaluateCel(sel.operand, act);
        if (!isMap(target)) throw new CelError('has() on a non-map');
        return Object.hasOwn(target, sel.field);
      }
      const arg = evaluateCel(e.args[0]!, act);
      if (e.fn === 'size') {
        if (typeof arg === 'string') return BigInt([...arg].length);
        if (Array.isArray(arg)) return BigInt(arg.length);
        if (isMap(arg)) return BigInt(Object.keys(arg).length);
        throw new CelError('size() of an unsized value');
      }
      if (e.fn === 'string')
        return typeof arg === 'bigint'
          ? arg.toString()
          : typeof arg === 'string'
            ? arg
            : (() => {
                throw new CelError('string() conversion');
              })();
      if (typeof arg === 'string' && /^-?[0-9]+$/.test(arg)) return BigInt(arg);
      if (typeof arg === 'bigint') return arg;
      throw new CelError('int() conversion');
    }
    case 'unary': {
      const v = evaluateCel(e.operand, act);
      if (e.op === '!') {
        if (typeof v !== 'boolean') throw new CelError('! needs a bool');
        return !v;
      }
      if (typeof v !== 'bigint') throw new CelError('- needs an int');
      return -v;
    }
    case 'cond': {
      const t = evaluateCel(e.test, act);
      if (typeof t !== 'boolean') throw new CelError('condition is not a bool');
      return t ? evaluateCel(e.then, act) : evaluateCel(e.otherwise, act);
    }
    case 'binary': {
      if (e.op === '&&' || e.op === '||') {
        const l = evaluateCel(e.left, act);
        if (typeof l !== 'boolean') throw new CelError(`${e.op} needs bools`);
        if (e.op === '&&' ? !l : l) return l;
        const r = evaluateCel(e.right, act);
        if (typeof r !== 'boolean') throw new CelError(`${e.op} needs bools`);
        return r;
      }
      const l = evaluateCel(e.left, act);
      const r = evaluateCel(e.right, act);
      if (e.op === '==' || e.op === '!=') {
        const eq =
          typeof l === typeof r &&
          (l === r || JSON.stringify(l, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) === JSON.stringify(r, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)));
        return e.op === '==' ? eq : !eq;
      }
      if (typeof l === 'string' && typeof r === 'string') {
        if (e.op === '+') return l + r;
        if (e.op === '<') return l < r;
        if (e.op === '<=') return l <= r;
        if (e.op === '>') return l > r;
        if (e.op === '>=') return l >= r;
      }
      if (typeof l === 'bigint' && typeof r === 'bigint') {
        switch (e.op) {
          case '+':
            return l + r;
          case '-':
            return l - r;
          case '*':
            return l * r;
          case '/':
            if (r === 0n) throw new CelError('division by zero');
            return l / r;
          case '%':
            if (r === 0n) throw new CelError('modulus by zero');
            return l % r;
          case '<':
            return l < r;
          case '<=':
            return l <= r;
          case '>':
            return l > r;
          case '>=':
            return l >= r;
        }
      }
      throw new CelError(`no matching overload for ${e.op}`);
    }
  }
}

/** The bytes expr_evaluate returns for a value (Envoy serializeValue): strings raw, ints as 8 LE bytes, bools as one byte. */
export function serializeCelValue(v: CelValue): Uint8Array | null {
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'bigint') {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt.asIntN(64, v));
    return b;
  }
  if (typeof v === 'boolean') return Uint8Array.of(v ? 1 : 0);
  return null;
}
