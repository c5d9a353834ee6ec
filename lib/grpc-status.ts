// gRPC status codes by number, and the text Go's grpc-go prints for a failed RPC
// (google.golang.org/grpc/status: `rpc error: code = Unavailable desc = …`). Istio's logs and
// probe results carry that text, so the CA client and the gRPC health probe both word errors with it.
const CODE_NAMES = [
  'OK',
  'Canceled',
  'Unknown',
  'InvalidArgument',
  'DeadlineExceeded',
  'NotFound',
  'AlreadyExists',
  'PermissionDenied',
  'ResourceExhausted',
  'FailedPrecondition',
  'Aborted',
  'OutOfRange',
  'Unimplemented',
  'Internal',
  'Unavailable',
  'DataLoss',
  'Unauthenticated',
];

/** Go's `codes.Code.String()`: the name, or `Code(n)` for a number it does not know. */
export function grpcCodeName(code: number): string {
  return CODE_NAMES[code] ?? `Code(${code})`;
}

/** Go's `status.Error(code, desc).Error()`. */
export function rpcErrorText(code: number, desc: string): string {
  return `rpc error: code = ${grpcCodeName(code)} desc = ${desc}`;
}
