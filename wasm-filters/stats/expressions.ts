// Envoy CEL expressions through the foreign functions Envoy registers for Wasm (proxy-wasm-cpp-sdk
// contrib/proxy_expr.h): expr_create (expression text → u32 token), expr_evaluate (token →
// the value's bytes: a string's bytes, 8 little-endian bytes for an int) and expr_delete.
import { Status } from '../sdk/abi';
import { callForeignFunction } from '../sdk/host';

function tokenArgs(token: u32): ArrayBuffer {
  const b = new ArrayBuffer(4);
  store<u32>(changetype<usize>(b), token);
  return b;
}

/** The token of a new expression, or -1 when the host cannot compile it. */
export function createExpression(expression: string): i64 {
  const r = callForeignFunction('expr_create', String.UTF8.encode(expression), true);
  if (r.status != Status.Ok || r.data.byteLength != 4) return -1;
  return <i64>load<u32>(changetype<usize>(r.data));
}

export function evaluateString(token: u32): string | null {
  const r = callForeignFunction('expr_evaluate', tokenArgs(token), true);
  if (r.status != Status.Ok) return null;
  return String.UTF8.decode(r.data);
}

export class IntResult {
  constructor(
    public ok: bool,
    public value: i64,
  ) {}
}

export function evaluateInt(token: u32): IntResult {
  const r = callForeignFunction('expr_evaluate', tokenArgs(token), true);
  if (r.status != Status.Ok || r.data.byteLength != 8) return new IntResult(false, 0);
  return new IntResult(true, load<i64>(changetype<usize>(r.data)));
}

export function deleteExpression(token: u32): void {
  callForeignFunction('expr_delete', tokenArgs(token), false);
}
