// The built modules as Envoy would load them: only ABI 0.2.1 imports (read both with the
// WebAssembly API and with wabt's wasm-objdump), the ABI marker, an allocator, `_initialize`
// instead of a start section, no WASI import beyond proc_exit; and the host's link rules, which
// tests elsewhere rely on, checked with small modules assembled by wabt's wat2wasm.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProxyWasmHost, WasmLinkError, WasmTrapError, hostFunctionSignatures, metadataExchangeWasm, readModuleInterface, statsWasm } from '../support/proxy-wasm-host/index.js';

const hasWabt = spawnSync('wasm-objdump', ['--version']).status === 0 && spawnSync('wat2wasm', ['--version']).status === 0;
const wabtSkip = hasWabt ? false : process.env.CI === 'true' ? false : 'wabt (wasm-objdump, wat2wasm) is not installed: apt-get install wabt';

/** The host functions of proxy-wasm ABI 0.2.1 (proxy-wasm/spec abi-versions/v0.2.1/README.md). */
const ABI_0_2_1_HOST_FUNCTIONS = new Set([
  'proxy_log',
  'proxy_get_log_level',
  'proxy_get_current_time_nanoseconds',
  'proxy_set_tick_period_milliseconds',
  'proxy_get_configuration',
  'proxy_get_buffer_bytes',
  'proxy_get_buffer_status',
  'proxy_set_buffer_bytes',
  'proxy_get_header_map_pairs',
  'proxy_set_header_map_pairs',
  'proxy_get_header_map_value',
  'proxy_add_header_map_value',
  'proxy_replace_header_map_value',
  'proxy_remove_header_map_value',
  'proxy_get_header_map_size',
  'proxy_get_property',
  'proxy_set_property',
  'proxy_get_shared_data',
  'proxy_set_shared_data',
  'proxy_register_shared_queue',
  'proxy_resolve_shared_queue',
  'proxy_dequeue_shared_queue',
  'proxy_enqueue_shared_queue',
  'proxy_continue_stream',
  'proxy_close_stream',
  'proxy_send_local_response',
  'proxy_get_status',
  'proxy_set_effective_context',
  'proxy_done',
  'proxy_call_foreign_function',
  'proxy_http_call',
  'proxy_grpc_call',
  'proxy_grpc_stream',
  'proxy_grpc_send',
  'proxy_grpc_cancel',
  'proxy_grpc_close',
  'proxy_define_metric',
  'proxy_get_metric',
  'proxy_record_metric',
  'proxy_increment_metric',
  'proxy_continue_request',
  'proxy_continue_response',
  'proxy_clear_route_cache',
]);

const modules = [
  { name: 'metadata-exchange-filter.wasm', path: metadataExchangeWasm },
  { name: 'stats-filter.wasm', path: statsWasm },
];

for (const m of modules) {
  void t.test(`${m.name}: imports, exports and sections`, async (t) => {
    const bytes = readFileSync(m.path);
    const mod = await WebAssembly.compile(bytes);
    const imports = WebAssembly.Module.imports(mod);
    t.ok(imports.length > 0);
    for (const i of imports) {
      t.equal(i.kind, 'function', `${i.module}.${i.name} is a function`);
      const allowed = (i.module === 'env' && ABI_0_2_1_HOST_FUNCTIONS.has(i.name)) || (i.module.startsWith('wasi') && i.name === 'proc_exit');
      t.ok(allowed, `${i.module}.${i.name} is part of ABI 0.2.1`);
    }
    t.notOk(
      imports.some((i) => i.module.startsWith('wasi') && i.name !== 'proc_exit'),
      'no WASI import beyond proc_exit',
    );
    // Signatures, which the JS API does not show, against the ABI.
    for (const i of readModuleInterface(bytes).imports) {
      const want = hostFunctionSignatures[i.name];
      t.ok(want, `${i.name} known to the host`);
      t.same(i.signature, want, `${i.name} has its ABI 0.2.1 signature`);
    }
    const exports = WebAssembly.Module.exports(mod).map((e) => e.name);
    for (const e of [
      'proxy_abi_version_0_2_1',
      'proxy_on_memory_allocate',
      'proxy_on_context_create',
      'proxy_on_configure',
      'proxy_on_request_headers',
      'proxy_on_response_headers',
      'proxy_on_done',
      'proxy_on_delete',
      '_initialize',
      'memory',
    ]) {
      t.ok(exports.includes(e), `exports ${e}`);
    }
    t.notOk(
      exports.some((e) => /^proxy_abi_version_0_(1_0|2_0)$/.test(e)),
      'no other ABI marker',
    );
    t.notOk(exports.includes('malloc'), 'one allocator: proxy_on_memory_allocate (cpp-host would prefer malloc)');
  });

  void t.test(`${m.name}: wasm-objdump agrees`, { skip: wabtSkip }, async (t) => {
    const out = execFileSync('wasm-objdump', ['-x', m.path], { encoding: 'utf8' });
    const imported = [...out.matchAll(/<- ([\w.]+)$/gm)].map((x) => x[1]!);
    const api = WebAssembly.Module.imports(await WebAssembly.compile(readFileSync(m.path))).map((i) => `${i.module}.${i.name}`);
    t.same(imported.sort(), api.sort(), 'the same imports');
    t.ok(
      imported.every((i) => i.startsWith('env.proxy_')),
      'all env.proxy_*',
    );
    t.match(out, /-> "proxy_abi_version_0_2_1"/);
    const headers = execFileSync('wasm-objdump', ['-h', m.path], { encoding: 'utf8' });
    t.notMatch(headers, /^\s*Start /m, 'no start section: initialisation is _initialize, called by the host');
    const importLines = out.split('\n').filter((l) => l.includes(' <- '));
    t.ok(
      importLines.every((l) => /^ - func\[\d+\]/.test(l)),
      'every import is a function (no imported global, memory or table)',
    );
  });
}

void t.test('the stats module imports what its job needs', async (t) => {
  const names = WebAssembly.Module.imports(await WebAssembly.compile(readFileSync(statsWasm))).map((i) => i.name);
  for (const n of ['proxy_define_metric', 'proxy_record_metric', 'proxy_increment_metric', 'proxy_set_tick_period_milliseconds', 'proxy_set_effective_context', 'proxy_call_foreign_function']) {
    t.ok(names.includes(n), n);
  }
});

// ------------------------------------------------------------------------------------------------
// Host link and lifecycle rules, with hand-written modules.

function wat(src: string): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'wat-'));
  try {
    writeFileSync(join(dir, 'm.wat'), src);
    execFileSync('wat2wasm', [join(dir, 'm.wat'), '-o', join(dir, 'm.wasm')]);
    return new Uint8Array(readFileSync(join(dir, 'm.wasm')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const base = `
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32) (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n))) (local.get $p))`;

function host(): ProxyWasmHost {
  return new ProxyWasmHost({ node: { id: 'n', metadata: {} } });
}

void t.test('host: link errors as Envoy reports them', { skip: wabtSkip }, async (t) => {
  await t.rejects(
    host().loadVm(wat(`(module (import "env" "proxy_http_call" (func (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32))) ${base} (func (export "proxy_abi_version_0_2_1")))`), 'x'),
    { name: 'WasmLinkError', message: /missing import: env.proxy_http_call/ },
    'an ABI function this host does not provide',
  );
  await t.rejects(
    host().loadVm(wat(`(module (import "env" "proxy_log" (func (param i32 i32) (result i32))) ${base} (func (export "proxy_abi_version_0_2_1")))`), 'x'),
    { message: /import type mismatch: env.proxy_log/ },
    'a signature mismatch',
  );
  await t.rejects(host().loadVm(wat(`(module (import "env" "g" (global i32)) ${base} (func (export "proxy_abi_version_0_2_1")))`), 'x'), WasmLinkError, 'an imported global');
  await t.rejects(
    host().loadVm(wat(`(module (import "env" "abort" (func (param i32 i32 i32 i32))) ${base} (func (export "proxy_abi_version_0_2_1")))`), 'x'),
    { message: /missing import: env.abort/ },
    "AssemblyScript's abort is not a host function",
  );
  await t.rejects(
    host().loadVm(wat(`(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))) ${base} (func (export "proxy_abi_version_0_2_1")))`), 'x'),
    { message: /missing import/ },
    'WASI beyond proc_exit',
  );
  await t.rejects(host().loadVm(wat(`(module ${base})`), 'x'), { message: /ABI version/ }, 'no ABI marker');
  await t.rejects(host().loadVm(wat(`(module ${base} (func (export "proxy_abi_version_0_2_0")))`), 'x'), { message: /unsupported ABI version 0_2_0/ });
  await t.rejects(host().loadVm(wat(`(module (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_1")))`), 'x'), { message: /missing malloc/ });
  const ok = await host().loadVm(wat(`(module (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))) ${base} (func (export "proxy_abi_version_0_2_1")))`), 'x');
  t.equal(ok.failed, undefined, 'proc_exit is allowed');
});

void t.test('host: _initialize may only log; a trap fails the VM for good', { skip: wabtSkip }, async (t) => {
  const restricted = `(module
    (import "env" "proxy_get_property" (func $gp (param i32 i32 i32 i32) (result i32)))
    ${base} (func (export "proxy_abi_version_0_2_1"))
    (func (export "_initialize") (drop (call $gp (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))))`;
  await t.rejects(host().loadVm(wat(restricted), 'x'), WasmTrapError, 'a property read during _initialize traps');
  const trapping = `(module ${base} (func (export "proxy_abi_version_0_2_1"))
    (func (export "proxy_on_configure") (param i32 i32) (result i32) unreachable))`;
  const vm = await host().loadVm(wat(trapping), 'x');
  t.throws(() => vm.startPlugin({ configuration: '{}' }), WasmTrapError);
  t.ok(vm.failed, 'the VM is failed');
  t.throws(() => vm.startPlugin({ configuration: '{}' }), { message: /has failed earlier/ }, 'and never called again');
});

void t.test('host: shared data compare-and-swap', { skip: wabtSkip }, async (t) => {
  // set(cas) stores "v" under "k"; get() returns the status and leaves the cas at 16.
  const src = `(module
    (import "env" "proxy_set_shared_data" (func $set (param i32 i32 i32 i32 i32) (result i32)))
    (import "env" "proxy_get_shared_data" (func $get (param i32 i32 i32 i32 i32) (result i32)))
    ${base} (func (export "proxy_abi_version_0_2_1"))
    (data (i32.const 0) "kv")
    (func (export "set") (param $cas i32) (result i32) (call $set (i32.const 0) (i32.const 1) (i32.const 1) (i32.const 1) (local.get $cas)))
    (func (export "get") (result i32) (call $get (i32.const 0) (i32.const 1) (i32.const 8) (i32.const 12) (i32.const 16)))
    (func (export "cas") (result i32) (i32.load (i32.const 16))))`;
  const h = host();
  const vm = await h.loadVm(wat(src), 'shared');
  const exp = (vm as unknown as { exports: Record<string, (...a: number[]) => number> }).exports;
  t.equal(exp.get!(), 1, 'NOT_FOUND before any set');
  t.equal(exp.set!(0), 0, 'unconditional set');
  t.equal(exp.get!(), 0);
  const cas = exp.cas!();
  t.ok(cas > 0, 'a non-zero cas');
  t.equal(exp.set!(cas + 1), 8, 'a stale cas is CAS_MISMATCH');
  t.equal(exp.set!(cas), 0, 'the current cas wins');
  t.equal(exp.set!(cas), 8, 'and is then stale');
  const other = await h.loadVm(wat(src), 'other-vm');
  t.equal((other as unknown as { exports: Record<string, () => number> }).exports.get!(), 1, 'shared data is per VM id');
});
