// AssemblyScript's `abort` (failed assertions, out-of-bounds access, `throw`), redirected by
// `asc --use abort=sdk/runtime/proxyAbort` (packaging/build-wasm.mjs): without this the module
// would import `env.abort`, which no proxy-wasm host provides. The message goes to Envoy's log
// at critical level, then the module traps as it must (the host marks the VM failed).
import { LogLevel, proxy_log } from './abi';

export function proxyAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  let text = 'wasm abort: ' + (message === null ? 'unknown' : changetype<string>(message));
  if (fileName !== null) text += ' at ' + changetype<string>(fileName) + ':' + line.toString() + ':' + column.toString();
  const bytes = String.UTF8.encode(text);
  proxy_log(LogLevel.Critical, changetype<usize>(bytes), bytes.byteLength);
  unreachable();
}
