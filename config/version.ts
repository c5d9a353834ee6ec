// `pilot-agent version` and the build information reported to istiod (node metadata
// ISTIO_VERSION). istiod gates generated config on the proxy's Istio version, so we report the
// Istio release we are a drop-in for, not this package's own version.
import { readFileSync } from 'node:fs';
import { AgentError } from '../lib/errors.js';

export const ISTIO_COMPAT_VERSION = '1.32.0';

export interface BuildInfo {
  Version: string;
  GitRevision: string;
  GolangVersion: string;
  BuildStatus: string;
  GitTag: string;
}

let cached: BuildInfo | undefined;

/** Build info; `dist/buildinfo.json` (written by packaging) supplies the git revision when present. */
export function buildInfo(): BuildInfo {
  if (cached) return cached;
  let extra: Partial<BuildInfo> = {};
  try {
    extra = JSON.parse(readFileSync(new URL('../buildinfo.json', import.meta.url), 'utf8')) as Partial<BuildInfo>;
  } catch {
    // Not a packaged build: fields stay "unknown".
  }
  cached = {
    Version: ISTIO_COMPAT_VERSION,
    GitRevision: extra.GitRevision ?? 'unknown',
    GolangVersion: `node ${process.version}`,
    BuildStatus: extra.BuildStatus ?? 'unknown',
    GitTag: extra.GitTag ?? 'unknown',
  };
  return cached;
}

/** Go `%#v`-style long form, as Istio's version.Info.LongForm(). */
export function longForm(b: BuildInfo = buildInfo()): string {
  const fields = (Object.keys(b) as (keyof BuildInfo)[]).map((k) => `${k}:${JSON.stringify(b[k])}`);
  return `version.BuildInfo{${fields.join(', ')}}`;
}

export class VersionOutputError extends AgentError {
  static override readonly code: string = 'VERSION_OUTPUT';
}

/** Output of `pilot-agent version [-s] [-o json|yaml]`. */
export async function versionText(short: boolean, output: string): Promise<string> {
  const b = buildInfo();
  if (output === '') return short ? `client version: ${b.Version}` : `client version: ${longForm(b)}`;
  if (output !== 'json' && output !== 'yaml') throw new VersionOutputError("--output must be 'yaml' or 'json'");
  const doc = {
    clientVersion: { version: b.Version, revision: b.GitRevision, golang_version: b.GolangVersion, status: b.BuildStatus, tag: b.GitTag },
  };
  if (output === 'json') return JSON.stringify(doc, null, 2);
  const { stringify } = await import('yaml');
  return stringify(doc).trimEnd();
}
