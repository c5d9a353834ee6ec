// The XDS benchmark's control plane, in its own process as istiod would be: an ADS server on
// 127.0.0.1 that answers the first request of every stream (SotW or delta) with COUNT
// responses of SIZE bytes each, as fast as HTTP/2 flow control lets it, and ignores the ACKs.
// The responses are the same pre-encoded bytes on every stream, so the direct and the proxied
// client receive exactly the same thing. With a ROOT_FILE argument it serves TLS with a
// certificate for istiod.istio-system.svc and writes the root that verifies it there.
// Prints `READY <port>`.
import { writeFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs/minimal.js';
import { generateKeyAndCsr } from '../agent/security/index.js';
import { CertificateAuthority } from '../agent/security/local-ca/index.js';

const [count = '1000', size = '102400', rootFile] = process.argv.slice(2);
const COUNT = Number(count);
const SIZE = Number(size);
const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';

/** A DiscoveryResponse / DeltaDiscoveryResponse with one resource whose Any value is SIZE bytes. */
function response(delta: boolean): Buffer {
  const value = Buffer.alloc(SIZE, 0x61);
  const any = protobuf.Writer.create()
    .uint32((1 << 3) | 2)
    .string(CDS)
    .uint32((2 << 3) | 2)
    .bytes(value)
    .finish();
  const w = protobuf.Writer.create();
  w.uint32((1 << 3) | 2).string('v1');
  if (delta) {
    const res = protobuf.Writer.create()
      .uint32((1 << 3) | 2)
      .string('v1')
      .uint32((2 << 3) | 2)
      .bytes(any)
      .uint32((3 << 3) | 2)
      .string('bench')
      .finish();
    w.uint32((2 << 3) | 2).bytes(res);
  } else {
    w.uint32((2 << 3) | 2).bytes(any);
  }
  w.uint32((4 << 3) | 2)
    .string(CDS)
    .uint32((5 << 3) | 2)
    .string('n1');
  return Buffer.from(w.finish());
}

const payload = { sotw: response(false), delta: response(true) };
const raw = (b: Buffer) => b;
const method = (name: string) => ({
  path: `/envoy.service.discovery.v3.AggregatedDiscoveryService/${name}`,
  requestStream: true,
  responseStream: true,
  requestSerialize: raw,
  requestDeserialize: raw,
  responseSerialize: raw,
  responseDeserialize: raw,
});

function serve(call: grpc.ServerDuplexStream<Buffer, Buffer>, msg: Buffer): void {
  let started = false;
  call.on('data', () => {
    if (started) return; // ACKs
    started = true;
    let sent = 0;
    const pump = () => {
      while (sent < COUNT) {
        sent++;
        if (!call.write(msg)) {
          call.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  call.on('end', () => call.end());
  call.on('error', () => {});
}

const server = new grpc.Server();
server.addService(
  { StreamAggregatedResources: method('StreamAggregatedResources'), DeltaAggregatedResources: method('DeltaAggregatedResources') },
  {
    StreamAggregatedResources: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => serve(call, payload.sotw),
    DeltaAggregatedResources: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => serve(call, payload.delta),
  },
);
let creds = grpc.ServerCredentials.createInsecure();
if (rootFile) {
  const ca = await CertificateAuthority.createRoot({ organization: 'cluster.local', commonName: 'bench istiod root' });
  const kc = await generateKeyAndCsr({ eccSignatureAlgorithm: 'ECDSA', eccCurve: 'P256', rsaKeySize: 2048, pkcs8: false }, 'spiffe://cluster.local/ns/istio-system/sa/istiod');
  const [leaf] = await ca.sign(kc.csrPem, { ttlSeconds: 86400, identities: ['istiod.istio-system.svc'], verifyCsr: false });
  creds = grpc.ServerCredentials.createSsl(Buffer.from(ca.certPem), [{ private_key: Buffer.from(kc.privateKeyPem), cert_chain: Buffer.from(leaf!) }]);
  writeFileSync(rootFile, ca.certPem);
}
server.bindAsync('127.0.0.1:0', creds, (err, port) => {
  if (err) throw err;
  process.stdout.write(`READY ${port}\n`);
});
process.on('SIGTERM', () => {
  server.forceShutdown();
  process.exit(0);
});
