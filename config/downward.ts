// Kubernetes downward-API files (`./etc/istio/pod/labels`, `./etc/istio/pod/annotations`): one
// `key="go-quoted value"` per line. Istio skips lines without `=` and treats a value that fails
// to unquote as an error for the whole file.
import { goUnquote } from '../lib/goparse.js';
import { AgentError } from '../lib/errors.js';

export class DownwardApiError extends AgentError {
  static override readonly code: string = 'CONFIG_DOWNWARD_API';
}

export function parseDownwardApi(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i < 0) continue;
    const key = line.slice(0, i);
    const raw = line.slice(i + 1);
    const value = goUnquote(raw);
    if (value === undefined) throw new DownwardApiError(`failed to unquote value of ${JSON.stringify(key)}: ${raw}`);
    out.set(key, value);
  }
  return out;
}

/** The inverse, for tests and tools that write these files: Go %q quoting of the value. */
export function formatDownwardApi(entries: Iterable<[string, string]>): string {
  const quote = (v: string) =>
    '"' +
    [...v]
      .map((c) => {
        const cp = c.codePointAt(0)!;
        if (c === '"' || c === '\\') return `\\${c}`;
        if (c === '\n') return '\\n';
        if (c === '\t') return '\\t';
        if (c === '\r') return '\\r';
        if (cp < 0x20 || cp === 0x7f) return `\\x${cp.toString(16).padStart(2, '0')}`;
        return c;
      })
      .join('') +
    '"';
  return [...entries].map(([k, v]) => `${k}=${quote(v)}`).join('\n');
}
