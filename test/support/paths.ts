// Where tests find the project and Istio's conformance corpora. Tests run from the project root
// (npm test), so paths resolve against it. The corpora are Istio's own expected outputs; they live
// beside this repository (../shared/conformance) in the team's checkouts and CI, and each can be
// pointed elsewhere with its variable. A clone without them skips those tests and says why.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root (dist/test/support/paths.js → ../../..). */
export const projectRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
export const conformanceRoot = resolve(projectRoot, '../shared/conformance');

/** Istio's corpora: the variable that points at each, and where it is by default. */
const CORPORA = {
  injection: { variable: 'INJECTION_DIR', defaultPath: 'injection', what: "Istio's injected pod specs" },
  iptables: { variable: 'IPTABLES_CASES', defaultPath: 'iptables/cases.json', what: "Istio's istio-iptables cases" },
  bootstrap: { variable: 'BOOTSTRAP_CASES_DIR', defaultPath: 'bootstrap', what: "Istio's bootstrap golden cases" },
} as const;
export type CorpusName = keyof typeof CORPORA;

/** Where a corpus is: its variable when set, else under ../shared/conformance. */
export function corpusPath(name: CorpusName): string {
  const c = CORPORA[name];
  return resolve(process.env[c.variable] ?? resolve(conformanceRoot, c.defaultPath));
}

/**
 * Why a corpus's tests cannot run here (tap's `skip` option), or false when the corpus is there.
 * With CI=true a missing corpus is an error: CI must run them.
 */
export function corpusSkipReason(name: CorpusName): string | false {
  const path = corpusPath(name);
  if (existsSync(path)) return false;
  const c = CORPORA[name];
  const reason = `${c.what} not found at ${path}: set ${c.variable} to a copy (see the README, "Conformance corpora")`;
  if (process.env.CI === 'true') throw new Error(`CI=true but ${reason}`);
  return reason;
}

export const injectionDir = corpusPath('injection');
/** The shipped `pilot-agent` bin: the ES module bundle (packaging/bundle.mjs). */
export const pilotAgentBin = resolve(projectRoot, 'dist/bundle/pilot-agent.mjs');
/** The shipped `istio-iptables` bin: the CommonJS bundle (package.json `build`). */
export const istioIptablesBin = resolve(projectRoot, 'dist/bundle/istio-iptables.cjs');
