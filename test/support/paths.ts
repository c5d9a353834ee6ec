// Where tests find the project and the shared conformance corpora. Tests run from the project
// root (npm test), so paths resolve against it; corpora can be swapped with env vars.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root (dist/test/support/paths.js → ../../..). */
export const projectRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
export const conformanceRoot = resolve(projectRoot, '../shared/conformance');
export const injectionDir = process.env.INJECTION_DIR ?? resolve(conformanceRoot, 'injection');
/** The shipped `pilot-agent` bin: the ES module bundle (packaging/bundle.mjs). */
export const pilotAgentBin = resolve(projectRoot, 'dist/bundle/pilot-agent.mjs');
/** The shipped `istio-iptables` bin: the CommonJS bundle (package.json `build`). */
export const istioIptablesBin = resolve(projectRoot, 'dist/bundle/istio-iptables.cjs');
