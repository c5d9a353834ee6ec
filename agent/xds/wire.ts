// The proxy relays discovery messages as the bytes it received (Istio forwards them unchanged):
// decoding a 100 KB DiscoveryResponse into objects and encoding it again would cost more than
// the relay itself. What the proxy needs to know about a message — its type URL, the version
// and nonce to ACK with, the first resource of an agent-handled type — is read from the
// protobuf wire format here, skipping everything else; the few requests the agent makes up
// itself (ACKs, NDS/PCDS subscriptions, health) are encoded here too. Field numbers are those of
// envoy.service.discovery.v3 (discovery.proto) and google.rpc.Status.
import protobuf from 'protobufjs/minimal.js';

const VARINT = 0;
const LEN = 2;

/** Field numbers of the messages the proxy reads or writes, per API flavour. */
const FIELDS = {
  sotw: {
    request: { versionInfo: 1, typeUrl: 4, responseNonce: 5, errorDetail: 6 },
    response: { versionInfo: 1, resources: 2, typeUrl: 4, nonce: 5 },
  },
  delta: {
    // DeltaDiscoveryRequest has no version_info.
    request: { versionInfo: 0, typeUrl: 2, responseNonce: 6, errorDetail: 7 },
    // DeltaDiscoveryResponse.system_version_info; resources are Resource{version=1, resource=2 (Any), name=3}.
    response: { versionInfo: 1, resources: 2, typeUrl: 4, nonce: 5 },
  },
} as const;

export type Flavour = 'sotw' | 'delta';

/** A google.protobuf.Any as bytes. */
export interface RawAny {
  typeUrl: string;
  value: Uint8Array;
}

/** What the proxy reads of a response. */
export interface ResponseSummary {
  typeUrl: string;
  versionInfo: string;
  nonce: string;
  resourceCount: number;
  /** The first resource (for delta: the Any inside the first Resource), when asked for. */
  first?: RawAny;
}

function readAny(bytes: Uint8Array): RawAny {
  const r = protobuf.Reader.create(bytes);
  let typeUrl = '';
  let value: Uint8Array = new Uint8Array();
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag === ((1 << 3) | LEN)) typeUrl = r.string();
    else if (tag === ((2 << 3) | LEN)) value = r.bytes();
    else r.skipType(tag & 7);
  }
  return { typeUrl, value };
}

/** The Any inside a delta Resource (field 2). */
function resourceAny(bytes: Uint8Array): RawAny | undefined {
  const r = protobuf.Reader.create(bytes);
  let any: RawAny | undefined;
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag === ((2 << 3) | LEN)) any = readAny(r.bytes());
    else r.skipType(tag & 7);
  }
  return any;
}

/** The type URL of a DiscoveryRequest / DeltaDiscoveryRequest. Throws on malformed bytes. */
export function requestTypeUrl(buf: Uint8Array, flavour: Flavour): string {
  const want = (FIELDS[flavour].request.typeUrl << 3) | LEN;
  const r = protobuf.Reader.create(buf);
  let typeUrl = '';
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag === want) typeUrl = r.string();
    else r.skipType(tag & 7);
  }
  return typeUrl;
}

/**
 * Type URL, version, nonce and resource count of a DiscoveryResponse /
 * DeltaDiscoveryResponse, plus its first resource when `withFirst`. Throws on malformed bytes.
 */
export function readResponse(buf: Uint8Array, flavour: Flavour, withFirst = false): ResponseSummary {
  const f = FIELDS[flavour].response;
  const r = protobuf.Reader.create(buf);
  const out: ResponseSummary = { typeUrl: '', versionInfo: '', nonce: '', resourceCount: 0 };
  while (r.pos < r.len) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if ((tag & 7) !== LEN) {
      r.skipType(tag & 7);
      continue;
    }
    if (field === f.typeUrl) out.typeUrl = r.string();
    else if (field === f.versionInfo) out.versionInfo = r.string();
    else if (field === f.nonce) out.nonce = r.string();
    else if (field === f.resources) {
      out.resourceCount++;
      if (withFirst && out.resourceCount === 1) {
        const bytes = r.bytes();
        const any = flavour === 'sotw' ? readAny(bytes) : resourceAny(bytes);
        if (any) out.first = any;
      } else {
        r.skipType(LEN);
      }
    } else r.skipType(LEN);
  }
  return out;
}

/** google.rpc.Status as the agent sends it in NACKs and unhealthy reports. */
export interface ErrorDetail {
  code: number;
  message: string;
}

/** A request the agent writes itself. Empty strings are left out, as proto3 does. */
export interface AgentRequest {
  typeUrl: string;
  /** SotW only (DeltaDiscoveryRequest has no version). */
  versionInfo?: string;
  responseNonce?: string;
  errorDetail?: ErrorDetail;
}

/** Encodes a DiscoveryRequest / DeltaDiscoveryRequest with only the fields of `req`. */
export function encodeRequest(req: AgentRequest, flavour: Flavour): Buffer {
  const f = FIELDS[flavour].request;
  const w = protobuf.Writer.create();
  // Written in field-number order, as protobuf encoders emit them (SotW 1, 4, 5, 6; delta 2, 6, 7).
  if (flavour === 'sotw' && req.versionInfo) w.uint32((f.versionInfo << 3) | LEN).string(req.versionInfo);
  if (req.typeUrl) w.uint32((f.typeUrl << 3) | LEN).string(req.typeUrl);
  if (req.responseNonce) w.uint32((f.responseNonce << 3) | LEN).string(req.responseNonce);
  if (req.errorDetail) {
    const e = req.errorDetail;
    w.uint32((f.errorDetail << 3) | LEN).fork();
    if (e.code) w.uint32((1 << 3) | VARINT).int32(e.code);
    if (e.message) w.uint32((2 << 3) | LEN).string(e.message);
    w.ldelim();
  }
  const bytes = w.finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
