// The test CA as its own process (like istiod, off the agent's event loop), for benchmarks:
// `node dist/test/support/test-ca-main.js <root-file>` writes the root that verifies the server
// to <root-file>, prints `READY <port>` and serves until killed.
import { TestCaServer } from './test-ca.js';

const ca = await TestCaServer.start();
ca.writeServerRoot(process.argv[2] ?? 'root-cert.pem');
process.stdout.write(`READY ${ca.port}\n`);
process.on('SIGTERM', () => void ca.stop().then(() => process.exit(0)));
