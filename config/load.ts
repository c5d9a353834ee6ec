// The I/O shell around resolve(): reads the mesh config and downward-API files relative to the
// working directory, lists interface addresses, and loads the YAML parser only when some input
// is not plain JSON (the injector's PROXY_CONFIG is JSON, so the usual start path never pays
// for it).
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import type { EnvSource } from '../lib/env.js';
import type { LogOptions } from '../lib/log.js';
import type { InterfaceAddress } from './identity.js';
import { ConfigError, type YamlParser } from './proxy-config.js';
import { ANNOTATION_PROXY_CONFIG, resolveAgentConfig, type ProxyFlags, type Resolution } from './resolve.js';
import { parseDownwardApi } from './downward.js';

export const POD_ANNOTATIONS_FILE = './etc/istio/pod/annotations';
export const POD_LABELS_FILE = './etc/istio/pod/labels';

function readOptional(path: string, what: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new ConfigError(`failed to read ${what} ${path}`, { cause: err });
  }
}

export function listInterfaceAddresses(): InterfaceAddress[] {
  const out: InterfaceAddress[] = [];
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    for (const a of addrs ?? []) out.push({ name, address: a.address, internal: a.internal });
  }
  return out;
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** A parser that takes JSON directly and falls back to YAML (already loaded by the caller). */
export function jsonThenYaml(yamlParse?: (t: string) => unknown): YamlParser {
  return (text) => {
    if (text.trim() === '') return null;
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      if (!yamlParse) throw err;
      return yamlParse(text);
    }
  };
}

export interface LoadOptions {
  proxyTypeArg?: string | undefined;
  flags: ProxyFlags;
  log: LogOptions;
  env: EnvSource;
  interfaces?: readonly InterfaceAddress[];
}

export async function loadAgentConfig(o: LoadOptions): Promise<Resolution> {
  const meshConfig = readOptional(o.flags.meshConfig, 'mesh config file');
  const podAnnotations = readOptional(POD_ANNOTATIONS_FILE, 'pod annotations');
  const podLabels = readOptional(POD_LABELS_FILE, 'pod labels');
  let annotationConfig: string | undefined;
  try {
    annotationConfig = podAnnotations === undefined ? undefined : parseDownwardApi(podAnnotations).get(ANNOTATION_PROXY_CONFIG);
  } catch {
    annotationConfig = undefined; // resolve() reports the unreadable file
  }
  const texts = [meshConfig, o.env.PROXY_CONFIG, annotationConfig].filter((t): t is string => t !== undefined && t.trim() !== '');
  let yamlParse: ((t: string) => unknown) | undefined;
  if (texts.some((t) => !isJson(t))) {
    const yaml = await import('yaml');
    yamlParse = (t) => yaml.parse(t);
  }
  return resolveAgentConfig({
    proxyTypeArg: o.proxyTypeArg,
    flags: o.flags,
    log: o.log,
    env: o.env,
    files: { meshConfig, podAnnotations, podLabels },
    interfaces: o.interfaces ?? listInterfaceAddresses(),
    parseYaml: jsonThenYaml(yamlParse),
  });
}
