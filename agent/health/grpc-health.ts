// `grpc.health.v1.Health/Check` as one plaintext HTTP/2 request on a socket the caller opened.
// A unary gRPC call is a POST with a 5-byte length prefix in front of a protobuf message and the
// status in the trailers; speaking it over node:http2 lets the probe bind its source address
// (which gRPC-js cannot) and keeps gRPC-js and its protos off the probe path. The two tiny
// messages are encoded with protobufjs's wire writer.
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import pb from 'protobufjs/minimal.js';
import { ProbeError, raceAbort } from './probe-error.js';
import { rpcErrorText } from '../../lib/grpc-status.js';

const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

/** HealthCheckRequest { string service = 1; } as a length-prefixed gRPC message. */
export function encodeHealthCheckRequest(service: string): Buffer {
  const w = pb.Writer.create();
  if (service !== '') w.uint32(10).string(service);
  const msg = w.finish();
  const framed = Buffer.alloc(5 + msg.length);
  framed.writeUInt32BE(msg.length, 1);
  framed.set(msg, 5);
  return framed;
}

/** HealthCheckResponse { ServingStatus status = 1; } from the first length-prefixed message. */
export function decodeHealthCheckResponse(body: Buffer): string {
  if (body.length < 5) throw new ProbeError('rpc error: code = Internal desc = response has no message');
  if (body[0] !== 0) throw new ProbeError('rpc error: code = Internal desc = compressed response without negotiated compression');
  const len = body.readUInt32BE(1);
  const r = pb.Reader.create(body.subarray(5, 5 + len));
  let status = 0;
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 === 1 && (tag & 7) === 0) status = r.int32();
    else r.skipType(tag & 7);
  }
  return SERVING_STATUS[status] ?? String(status);
}

export interface CheckOptions {
  service: string;
  userAgent?: string | undefined;
  timeoutMs: number;
  /** the probe's deadline: aborting rejects with its reason (grpcHealthProbe words it as gRPC's DeadlineExceeded) */
  signal: AbortSignal;
}

/** Sends the Check call on `sock` and resolves with the serving status name. */
export function checkHealth(sock: Socket, authority: string, o: CheckOptions): Promise<string> {
  let session: ClientHttp2Session | undefined;
  const p = new Promise<string>((resolve, reject) => {
    const fail = (err: Error) => reject(err instanceof ProbeError ? err : new ProbeError(`rpc error: code = Unavailable desc = ${err.message}`));
    session = connect(`http://${authority}`, { createConnection: () => sock });
    session.once('error', fail);
    const req = session.request({
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: '/grpc.health.v1.Health/Check',
      [constants.HTTP2_HEADER_SCHEME]: 'http',
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': o.userAgent ? `${o.userAgent} istio-agent-grpc` : 'istio-agent-grpc',
      ...(o.timeoutMs > 0 ? { 'grpc-timeout': `${Math.max(1, Math.ceil(o.timeoutMs))}m` } : {}),
    });
    const chunks: Buffer[] = [];
    let headers: Record<string, string | string[] | number | undefined> = {};
    req.on('response', (h) => (headers = h));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('error', fail);
    const finish = (trailers: Record<string, string | string[] | number | undefined>) => {
      const httpStatus = Number(headers[':status']);
      // A trailers-only answer carries grpc-status in the headers.
      const code = Number(trailers['grpc-status'] ?? headers['grpc-status'] ?? (httpStatus === 200 ? NaN : 14));
      const message = decodeURIComponent(String(trailers['grpc-message'] ?? headers['grpc-message'] ?? ''));
      if (Number.isNaN(code)) return reject(new ProbeError('rpc error: code = Internal desc = server closed the stream without sending trailers'));
      if (code !== 0) return reject(new ProbeError(rpcErrorText(code, message || `HTTP status ${httpStatus}`)));
      try {
        resolve(decodeHealthCheckResponse(Buffer.concat(chunks)));
      } catch (err) {
        reject(err instanceof Error ? err : new ProbeError(String(err)));
      }
    };
    let trailers: Record<string, string | string[] | number | undefined> = {};
    req.on('trailers', (t: Record<string, string | string[] | number | undefined>) => (trailers = t));
    req.once('end', () => finish(trailers));
    req.once('close', () => reject(new ProbeError(`rpc error: code = Unavailable desc = stream closed (${req.rstCode ?? 0})`)));
    req.end(encodeHealthCheckRequest(o.service));
  });
  const close = () => session?.destroy();
  return raceAbort(p, o.signal, close).finally(close);
}
