// A minimal flatbuffers reader and writer for the tests: the host navigates FlatNode filter
// state for CEL (`upstream_peer.labels['app'].value`), tests inspect what the filters stored, and
// stand in for Envoy's native TCP metadata-exchange filter, which writes the same table. The
// reader checks bounds as it goes and throws on a malformed buffer.

export class FbTable {
  constructor(
    readonly buf: Buffer,
    readonly pos: number,
  ) {
    if (pos < 0 || pos + 4 > buf.length) throw new Error(`flatbuffer: table at ${pos} out of bounds`);
    const vt = pos - buf.readInt32LE(pos);
    if (vt < 0 || vt + 4 > buf.length) throw new Error('flatbuffer: vtable out of bounds');
    this.vtable = vt;
    this.vtableSize = buf.readUInt16LE(vt);
    if (vt + this.vtableSize > buf.length) throw new Error('flatbuffer: vtable overruns buffer');
  }

  private readonly vtable: number;
  private readonly vtableSize: number;

  static root(buf: Buffer): FbTable {
    if (buf.length < 8) throw new Error('flatbuffer: too short');
    return new FbTable(buf, buf.readUInt32LE(0));
  }

  /** Absolute position of a field, or 0 when absent. */
  field(slot: number): number {
    const voff = 4 + 2 * slot;
    if (voff + 2 > this.vtableSize) return 0;
    const off = this.buf.readUInt16LE(this.vtable + voff);
    return off === 0 ? 0 : this.pos + off;
  }

  private deref(at: number): number {
    return at + this.buf.readUInt32LE(at);
  }

  string(slot: number): string | undefined {
    const at = this.field(slot);
    if (at === 0) return undefined;
    return readString(this.buf, this.deref(at));
  }

  table(slot: number): FbTable | undefined {
    const at = this.field(slot);
    return at === 0 ? undefined : new FbTable(this.buf, this.deref(at));
  }

  private vector(slot: number): { start: number; count: number } | undefined {
    const at = this.field(slot);
    if (at === 0) return undefined;
    const v = this.deref(at);
    const count = this.buf.readUInt32LE(v);
    if (v + 4 + 4 * count > this.buf.length) throw new Error('flatbuffer: vector overruns buffer');
    return { start: v + 4, count };
  }

  tables(slot: number): FbTable[] | undefined {
    const v = this.vector(slot);
    if (v === undefined) return undefined;
    return Array.from({ length: v.count }, (_, i) => new FbTable(this.buf, this.deref(v.start + 4 * i)));
  }

  strings(slot: number): string[] | undefined {
    const v = this.vector(slot);
    if (v === undefined) return undefined;
    return Array.from({ length: v.count }, (_, i) => readString(this.buf, this.deref(v.start + 4 * i)));
  }

  /** Little-endian scalar of `size` bytes (1, 2, 4 or 8), or the default when absent. */
  scalar(slot: number, size: 1 | 2 | 4 | 8, signed: boolean, dflt: number): number {
    const at = this.field(slot);
    if (at === 0) return dflt;
    if (size === 1) return signed ? this.buf.readInt8(at) : this.buf.readUInt8(at);
    if (size === 2) return signed ? this.buf.readInt16LE(at) : this.buf.readUInt16LE(at);
    if (size === 4) return signed ? this.buf.readInt32LE(at) : this.buf.readUInt32LE(at);
    return Number(this.buf.readBigInt64LE(at));
  }
}

function readString(buf: Buffer, at: number): string {
  const n = buf.readUInt32LE(at);
  if (at + 4 + n + 1 > buf.length || buf[at + 4 + n] !== 0) throw new Error('flatbuffer: bad string');
  return buf.toString('utf8', at + 4, at + 4 + n);
}

/** FlatNode (istio/proxy extensions/common/node_info.fbs) as plain data. */
export interface FlatNode {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
  owner?: string;
  workload_name?: string;
  platform_metadata?: Record<string, string>;
  istio_version?: string;
  mesh_id?: string;
  app_containers?: string[];
  cluster_id?: string;
  instance_ips?: string[];
}

const STRING_SLOTS = { name: 0, namespace: 1, owner: 3, workload_name: 4, istio_version: 6, mesh_id: 7, cluster_id: 9 } as const;
const KEYVAL_SLOTS = { labels: 2, platform_metadata: 5 } as const;
const LIST_SLOTS = { app_containers: 8, instance_ips: 10 } as const;

export function decodeFlatNode(bytes: Uint8Array): FlatNode {
  const root = FbTable.root(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const node: FlatNode = {};
  for (const [k, slot] of Object.entries(STRING_SLOTS)) {
    const v = root.string(slot);
    if (v !== undefined) node[k as keyof typeof STRING_SLOTS] = v;
  }
  for (const [k, slot] of Object.entries(KEYVAL_SLOTS)) {
    const t = root.tables(slot);
    if (t !== undefined) node[k as keyof typeof KEYVAL_SLOTS] = Object.fromEntries(t.map((kv) => [kv.string(0) ?? '', kv.string(1) ?? '']));
  }
  for (const [k, slot] of Object.entries(LIST_SLOTS)) {
    const v = root.strings(slot);
    if (v !== undefined) node[k as keyof typeof LIST_SLOTS] = v;
  }
  return node;
}

/** Encodes a FlatNode front to back (every offset points forward), key-sorted KeyVal vectors. */
export function encodeFlatNode(node: FlatNode): Uint8Array {
  const out: number[] = [];
  const u8 = (v: number): void => void out.push(v & 0xff);
  const u16 = (v: number): void => (u8(v), u8(v >> 8));
  const u32 = (v: number): void => (u16(v & 0xffff), u16(v >>> 16));
  const patch32 = (at: number, v: number): void => {
    for (let i = 0; i < 4; i++) out[at + i] = (v >>> (8 * i)) & 0xff;
  };
  const align4 = (): void => {
    while (out.length % 4) u8(0);
  };
  const str = (s: string): number => {
    align4();
    const at = out.length;
    const b = Buffer.from(s, 'utf8');
    u32(b.length);
    for (const x of b) u8(x);
    u8(0);
    return at;
  };
  const slots: [number, () => number][] = [];
  for (const [k, slot] of Object.entries(STRING_SLOTS)) {
    const v = node[k as keyof typeof STRING_SLOTS];
    if (v !== undefined) slots.push([slot, () => str(v)]);
  }
  for (const [k, slot] of Object.entries(LIST_SLOTS)) {
    const v = node[k as keyof typeof LIST_SLOTS];
    if (v !== undefined)
      slots.push([
        slot,
        () => {
          align4();
          const at = out.length;
          u32(v.length);
          const first = out.length;
          v.forEach(() => u32(0));
          v.forEach((s, i) => patch32(first + 4 * i, str(s) - (first + 4 * i)));
          return at;
        },
      ]);
  }
  for (const [k, slot] of Object.entries(KEYVAL_SLOTS)) {
    const v = node[k as keyof typeof KEYVAL_SLOTS];
    if (v !== undefined)
      slots.push([
        slot,
        () => {
          const entries = Object.entries(v).sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
          align4();
          const at = out.length;
          u32(entries.length);
          const first = out.length;
          entries.forEach(() => u32(0));
          const vtable = out.length;
          [8, 12, 4, 8].forEach(u16);
          entries.forEach(([key, value], i) => {
            align4();
            const table = out.length;
            patch32(first + 4 * i, table - (first + 4 * i));
            u32(table - vtable);
            u32(0);
            u32(0);
            patch32(table + 4, str(key) - (table + 4));
            patch32(table + 8, str(value) - (table + 8));
          });
          return at;
        },
      ]);
  }
  slots.sort(([a], [b]) => a - b);
  u32(0);
  const vtable = out.length;
  u16(4 + 2 * 11);
  u16(4 + 4 * slots.length);
  const fieldOffset = new Map<number, number>();
  slots.forEach(([slot], i) => fieldOffset.set(slot, 4 + 4 * i));
  for (let s = 0; s < 11; s++) u16(fieldOffset.get(s) ?? 0);
  align4();
  const table = out.length;
  patch32(0, table);
  u32(table - vtable);
  slots.forEach(() => u32(0));
  for (const [slot, write] of slots) {
    const at = table + fieldOffset.get(slot)!;
    patch32(at, write() - at);
  }
  return Uint8Array.from(out);
}
