// ISTIO_BOOTSTRAP_OVERRIDE: a YAML or JSON file that Envoy merges over the bootstrap through
// `--config-yaml`. Istio substitutes `$(HOST_IP)` (tracer addresses on the node) and hands Envoy
// compact JSON with sorted keys (Go's YAML→JSON conversion). A file that cannot be read or
// converted gives one warning naming it, and the flag is left out (Istio's readBootstrapToJSON
// and args in pkg/envoy/proxy.go).
import { readFile } from 'node:fs/promises';
import { AgentError, errorMessage } from '../lib/errors.js';

/** Parses YAML (or JSON) text into plain data; throws on malformed input. */
export type YamlToData = (text: string) => unknown;

/** Substitutes `$(HOST_IP)`: IPv6 addresses are bracketed, without doubling `[$(HOST_IP)]`. */
export function substituteHostIp(text: string, hostIp: string): string {
  let ip = hostIp;
  if (ip.includes(':')) {
    ip = `[${ip}]`;
    text = text.split('[$(HOST_IP)]').join(ip);
  }
  return text.split('$(HOST_IP)').join(ip);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

/** The override file's text as the JSON string Envoy receives. */
export function bootstrapOverrideToJson(text: string, hostIp: string, parse: YamlToData): string {
  return JSON.stringify(sortKeys(parse(substituteHostIp(text, hostIp))) ?? null);
}

export class BootstrapOverrideError extends AgentError {
  static override readonly code: string = 'ENVOY_BOOTSTRAP_OVERRIDE';
}

/**
 * Reads and converts the override file. The YAML parser is loaded only here, so the usual start
 * path (no override) never pays for it.
 */
export async function readBootstrapOverride(file: string, hostIp: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new BootstrapOverrideError(`failed to read file: ${file}, ${errorMessage(err)}`, { cause: err, appendCause: false });
  }
  let parse: YamlToData = (t) => JSON.parse(t);
  try {
    JSON.parse(substituteHostIp(text, hostIp));
  } catch {
    const yaml = await import('yaml');
    parse = (t) => yaml.parse(t);
  }
  try {
    return bootstrapOverrideToJson(text, hostIp, parse);
  } catch (err) {
    throw new BootstrapOverrideError(`failed to convert to JSON: ${file}, ${errorMessage(err).split('\n')[0]}`, { cause: err, appendCause: false });
  }
}
