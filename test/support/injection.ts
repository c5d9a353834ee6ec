// Reads Istio's injected pod specs (../shared/conformance/injection or $INJECTION_DIR) and turns
// a container into what the kubelet would run: args with $(VAR) expanded and env with valueFrom
// resolved to plausible values for a pod.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { formatDownwardApi } from '../../config/index.js';
import { corpusSkipReason, injectionDir } from './paths.js';

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; resourceFieldRef?: { resource: string; divisor?: string } };
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  resources?: { limits?: Record<string, string>; requests?: Record<string, string> };
  [k: string]: unknown;
}

export interface InjectedPod {
  file: string;
  name: string;
  namespace: string;
  serviceAccount: string;
  podIp: string;
  hostIp: string;
  nodeName: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  initContainers: Container[];
  containers: Container[];
}

/** The plausible downward-API values every test pod gets. */
export const POD_VALUES = { namespace: 'default', serviceAccount: 'default', podIp: '10.244.1.17', hostIp: '10.0.0.5', nodeName: 'node-1' };

function podTemplate(doc: Record<string, any>): { metadata: Record<string, any>; spec: Record<string, any> } {
  const spec = doc.spec ?? {};
  if (spec.jobTemplate) return spec.jobTemplate.spec.template;
  if (spec.template) return spec.template;
  return { metadata: doc.metadata ?? {}, spec };
}

/**
 * The injected pods for a test file, or none when the corpus is absent here: then one skipped
 * test says why (and under CI=true that is an error instead).
 */
export function injectedPodsOrSkip(t: { test(name: string, opts: { skip: string }, fn: () => void): unknown }): InjectedPod[] {
  const skip = corpusSkipReason('injection');
  if (!skip) return loadInjectedPods();
  t.test("Istio's injected pods", { skip }, () => {});
  return [];
}

export function loadInjectedPods(dir = injectionDir): InjectedPod[] {
  const pods: InjectedPod[] = [];
  for (const file of readdirSync(dir).sort()) {
    const docs = parseAllDocuments(readFileSync(join(dir, file), 'utf8'))
      .map((d) => d.toJS() as Record<string, any> | null)
      .filter((d): d is Record<string, any> => !!d && typeof d === 'object' && !!d.spec);
    for (const doc of docs) {
      const t = podTemplate(doc);
      const name = `${doc.metadata?.name ?? 'pod'}-7d9f8c6b5-x2x4q`;
      pods.push({
        file,
        name,
        namespace: doc.metadata?.namespace ?? POD_VALUES.namespace,
        serviceAccount: t.spec.serviceAccountName ?? POD_VALUES.serviceAccount,
        podIp: POD_VALUES.podIp,
        hostIp: POD_VALUES.hostIp,
        nodeName: POD_VALUES.nodeName,
        labels: t.metadata?.labels ?? {},
        annotations: t.metadata?.annotations ?? {},
        initContainers: t.spec.initContainers ?? [],
        containers: t.spec.containers ?? [],
      });
      break; // one pod per file
    }
  }
  return pods;
}

export function findContainer(pod: InjectedPod, name: string): Container | undefined {
  return [...pod.initContainers, ...pod.containers].find((c) => c.name === name);
}

function quantityToInt(q: string, divisor = '1'): string {
  const unit = (s: string): number => {
    const m = /^(\d+(?:\.\d+)?)(m|k|M|G|Ki|Mi|Gi)?$/.exec(s);
    if (!m) return Number(s);
    const mult: Record<string, number> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };
    return Number(m[1]) * (m[2] ? mult[m[2]]! : 1);
  };
  // Kubernetes rounds resourceFieldRef values up to an integer number of divisors.
  return String(Math.ceil(unit(q) / unit(divisor)));
}

/** The container's environment as the kubelet would set it. */
export function containerEnv(pod: InjectedPod, c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = expand(e.value, env);
    else if (e.valueFrom?.fieldRef) {
      const path = e.valueFrom.fieldRef.fieldPath;
      const values: Record<string, string> = {
        'metadata.name': pod.name,
        'metadata.namespace': pod.namespace,
        'status.podIP': pod.podIp,
        'status.hostIP': pod.hostIp,
        'spec.serviceAccountName': pod.serviceAccount,
        'spec.nodeName': pod.nodeName,
      };
      env[e.name] = values[path] ?? '';
    } else if (e.valueFrom?.resourceFieldRef) {
      const r = e.valueFrom.resourceFieldRef;
      const [kind, res] = r.resource.split('.') as ['limits' | 'requests', string];
      const q = c.resources?.[kind]?.[res];
      env[e.name] = q === undefined ? '0' : quantityToInt(q, r.divisor);
    } else {
      env[e.name] = '';
    }
  }
  return env;
}

/** Kubernetes $(VAR) expansion ($$ escapes a dollar; unknown references stay as written). */
export function expand(s: string, env: Record<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string | undefined) => (m === '$$' ? '$' : name !== undefined && name in env ? env[name]! : m));
}

export function containerArgs(c: Container, env: Record<string, string>): string[] {
  return (c.args ?? []).map((a) => expand(a, env));
}

/** The downward-API annotations/labels files the pod's istio-podinfo volume would hold. */
export function podInfoFiles(pod: InjectedPod): { annotations: string; labels: string } {
  return { annotations: formatDownwardApi(Object.entries(pod.annotations)), labels: formatDownwardApi(Object.entries(pod.labels)) };
}

/**
 * The agent's configuration for a pod's istio-proxy container, resolved as `pilot-agent proxy`
 * would resolve it inside that pod (args and env as the kubelet passes them, the pod-info files,
 * the pod IP on eth0).
 */
export async function resolvePodAgentConfig(pod: InjectedPod, c: Container, env: Record<string, string>) {
  const { parseProxyCommandLine } = await import('../../agent/cmd/cli.js');
  const { jsonThenYaml, resolveAgentConfig } = await import('../../config/index.js');
  const { parse } = await import('yaml');
  let stderr = '';
  const inv = await parseProxyCommandLine(containerArgs(c, env), { stderr: (s) => (stderr += s) });
  const files = podInfoFiles(pod);
  const resolution = resolveAgentConfig({
    proxyTypeArg: inv.typeArg,
    flags: inv.flags,
    log: inv.logOptions,
    env,
    files: { podAnnotations: files.annotations, podLabels: files.labels },
    interfaces: [{ name: 'eth0', address: pod.podIp, internal: false }],
    parseYaml: jsonThenYaml(parse),
  });
  return { inv, stderr, ...resolution };
}

let rootPem: string | undefined;

/** A self-signed root standing in for the `istio-ca-root-cert` configmap (made once per process). */
export function istiodRootCert(): string {
  if (!rootPem) {
    const dir = mkdtempSync(join(tmpdir(), 'istiod-root-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'root-cert.pem'),
        '-subj',
        '/O=cluster.local',
        '-days',
        '2',
      ],
      { stdio: 'ignore' },
    );
    rootPem = readFileSync(join(dir, 'root-cert.pem'), 'utf8');
  }
  return rootPem;
}

/**
 * A fresh working directory laid out like the pod's volumes: `./etc/istio/pod/{annotations,labels}`
 * (downward API) and the istiod volumes (writeIstiodVolumes).
 */
export function podWorkdir(pod: InjectedPod, prefix = 'pod-'): string {
  const cwd = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(join(cwd, 'etc/istio/pod'), { recursive: true });
  const files = podInfoFiles(pod);
  writeFileSync(join(cwd, 'etc/istio/pod/annotations'), files.annotations);
  writeFileSync(join(cwd, 'etc/istio/pod/labels'), files.labels);
  writeIstiodVolumes(cwd);
  return cwd;
}

/**
 * What every injected pod mounts for talking to istiod: the `istio-ca-root-cert` configmap at
 * `./var/run/secrets/istio/root-cert.pem` (the agent refuses to start without it, as Istio's
 * does) and the projected token at `./var/run/secrets/tokens/istio-token`.
 */
export function writeIstiodVolumes(cwd: string): void {
  mkdirSync(join(cwd, 'var/run/secrets/istio'), { recursive: true });
  writeFileSync(join(cwd, 'var/run/secrets/istio/root-cert.pem'), istiodRootCert());
  // The projected service-account token (audience istio-ca); its content only matters to istiod.
  mkdirSync(join(cwd, 'var/run/secrets/tokens'), { recursive: true });
  writeFileSync(join(cwd, 'var/run/secrets/tokens/istio-token'), 'eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOlsiaXN0aW8tY2EiXX0.c2ln');
}
