// Reads a module's type, import and export sections. The JS API tells an import's name and kind
// but not its function signature, which Envoy checks when it links a module; this is the
// missing part (WebAssembly binary format, sections 1, 2 and 7).
import type { Signature, ValType } from './abi.js';

export interface ModuleImport {
  module: string;
  name: string;
  kind: 'function' | 'table' | 'memory' | 'global';
  /** For functions. */
  signature?: Signature | undefined;
}

export interface ModuleExport {
  name: string;
  kind: 'function' | 'table' | 'memory' | 'global';
  signature?: Signature | undefined;
}

export interface ModuleInterface {
  imports: ModuleImport[];
  exports: ModuleExport[];
}

const KINDS = ['function', 'table', 'memory', 'global'] as const;

function valType(b: number): ValType {
  switch (b) {
    case 0x7f:
      return 'i32';
    case 0x7e:
      return 'i64';
    case 0x7d:
      return 'f32';
    case 0x7c:
      return 'f64';
    default:
      throw new Error(`unsupported value type 0x${b.toString(16)}`);
  }
}

class Cursor {
  constructor(
    readonly b: Uint8Array,
    public pos: number,
  ) {}

  byte(): number {
    if (this.pos >= this.b.length) throw new Error('truncated module');
    return this.b[this.pos++]!;
  }

  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = this.byte();
      result += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7;
      if (shift > 35) throw new Error('bad LEB128');
    }
  }

  name(): string {
    const n = this.u32();
    const s = Buffer.from(this.b.subarray(this.pos, this.pos + n)).toString('utf8');
    this.pos += n;
    return s;
  }

  limits(): void {
    const flag = this.byte();
    this.u32();
    if (flag & 1) this.u32();
  }
}

export function readModuleInterface(bytes: Uint8Array): ModuleInterface {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) throw new Error('not a wasm module');
  const types: Signature[] = [];
  const importedFunctionTypes: number[] = [];
  const functionTypes: number[] = [];
  const imports: ModuleImport[] = [];
  const rawExports: { name: string; kind: (typeof KINDS)[number]; index: number }[] = [];
  const c = new Cursor(bytes, 8);
  while (c.pos < bytes.length) {
    const id = c.byte();
    const size = c.u32();
    const end = c.pos + size;
    if (id === 1) {
      const n = c.u32();
      for (let i = 0; i < n; i++) {
        if (c.byte() !== 0x60) throw new Error('bad function type');
        const params = Array.from({ length: c.u32() }, () => valType(c.byte()));
        const results = Array.from({ length: c.u32() }, () => valType(c.byte()));
        types.push({ params, results });
      }
    } else if (id === 2) {
      const n = c.u32();
      for (let i = 0; i < n; i++) {
        const module = c.name();
        const name = c.name();
        const kind = KINDS[c.byte()];
        if (kind === undefined) throw new Error('bad import kind');
        if (kind === 'function') {
          const t = c.u32();
          importedFunctionTypes.push(t);
          imports.push({ module, name, kind, signature: types[t] });
        } else {
          if (kind === 'table') {
            c.byte();
            c.limits();
          } else if (kind === 'memory') c.limits();
          else {
            c.byte();
            c.byte();
          }
          imports.push({ module, name, kind });
        }
      }
    } else if (id === 3) {
      const n = c.u32();
      for (let i = 0; i < n; i++) functionTypes.push(c.u32());
    } else if (id === 7) {
      const n = c.u32();
      for (let i = 0; i < n; i++) {
        const name = c.name();
        const kind = KINDS[c.byte()];
        if (kind === undefined) throw new Error('bad export kind');
        rawExports.push({ name, kind, index: c.u32() });
      }
    }
    c.pos = end;
  }
  const allFunctionTypes = [...importedFunctionTypes, ...functionTypes];
  const exports = rawExports.map((e) => {
    const t = e.kind === 'function' ? allFunctionTypes[e.index] : undefined;
    return { name: e.name, kind: e.kind, ...(t === undefined ? {} : { signature: types[t] }) };
  });
  return { imports, exports };
}
