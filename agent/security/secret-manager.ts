// The secret cache (Istio's SecretManagerClient): the workload key + chain from a CSR to the CA
// (or from files), the root(s), file-based resources, OUTPUT_CERTS, and rotation.
//
// Rotation differs from Istio on purpose. Istio's timer clears the cache and pushes `default`,
// so a CA that is down at that moment fails the push, ends Envoy's SDS streams with an error and
// leaves the cache empty until a retry succeeds. Here the timer starts a background renewal
// while the current certificate stays cached and served; the renewal retries with backoff until
// the CA answers, then swaps the item, pushes `default` (and `ROOTCA` if the root changed) and
// rewrites OUTPUT_CERTS. Only a certificate that has really expired is dropped, so nothing
// invalid is ever served.
import type { X509Certificate } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { scope } from '../../lib/log.js';
import { ExponentialBackoff, LongTimer, rotationDelay, sleep, systemClock, type BackoffOptions, type Clock } from './backoff.js';
import { CertWatcher } from './file-watch.js';
import { generateKeyAndCsr, type KeyOptions } from './keycsr.js';
import { writeOutputCerts } from './output-certs.js';
import { concatCerts, keyMatchesCertificate, mergeTrustAnchors, notAfter, parseCertificates, spiffeIds, verifyChain } from './pem.js';
import { FILE_CERT_PREFIX, FILE_ROOT_PREFIX, ROOT_CERT_RESOURCE, WORKLOAD_KEY_CERT_RESOURCE, type CaClient, type SecretItem } from './types.js';
import { AgentError, errorMessage } from '../../lib/errors.js';

/** A secret that cannot be generated or loaded (CA answer, certificate files, a closed manager). */
export class SecretError extends AgentError {
  static override readonly code: string = 'SDS_SECRET';
}

const log = scope('cache');

/** OS CA bundles, first existing wins (Go's crypto/x509 list for Linux). */
export const OS_CA_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/ca-bundle.pem',
  '/etc/pki/tls/cacert.pem',
  '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem',
  '/etc/ssl/cert.pem',
  '/usr/local/etc/ssl/cert.pem',
  '/etc/ssl/certs/ca-certificates',
];

/** A resource name the agent does not serve (see README: Istio serves the workload cert instead). */
export class UnknownResourceError extends AgentError {
  static override readonly code: string = 'SDS_UNKNOWN_RESOURCE';
}

export interface SecretManagerOptions {
  /**
   * undefined in file-mounted and files-only modes. May be a promise: the first CSR's key
   * generation then overlaps the CA client's set-up.
   */
  caClient?: CaClient | Promise<CaClient> | undefined;
  workloadIdentity: string;
  ttlSeconds: number;
  graceRatio: number;
  graceJitter: number;
  key: KeyOptions;
  /** Existing workload cert files (absolute) and whether to use them when present. */
  certFiles: { certChain: string; key: string; root: string };
  useExistingCertFiles: boolean;
  outputDir?: string;
  outputCertMode?: number;
  trustAnchors?: readonly string[];
  fileDebounceMs?: number;
  /** Total time to wait for a changing key/cert pair or root file to become valid (Istio: 10 s). */
  fileRetryTotalMs?: number;
  /** OS bundle candidates for `file-root:system` (tests override). */
  osCaBundles?: readonly string[];
  clock?: Clock;
  rand?: () => number;
  /** Backoff of the renewal retries (default: Istio's 500 ms ×1.5 ±50 %, cap 60 s). */
  renewBackoff?: BackoffOptions;
}

type FileSource = { kind: 'cert'; certPath: string; keyPath: string } | { kind: 'root'; path: string; mergeAnchors: boolean };

interface WorkloadItem extends SecretItem {
  certificateChain: string;
  privateKey: string;
  /** the raw root bundle from the CA (last chain element) */
  rootCert: string;
}

/** The counters Istio exports under istio_agent_* (security/pkg/nodeagent/cache/monitoring.go). */
export interface SecretManagerMetrics {
  outgoingLatencyMs: number;
  outgoingRequests: number;
  failedOutgoingRequests: number;
  fileSecretFailures: number;
}

export class SecretManager {
  private item: WorkloadItem | undefined;
  private lastSeenRoot = '';
  private anchors: string[];
  private readonly listeners = new Set<(name: string) => void>();
  private lock: Promise<unknown> = Promise.resolve();
  private readonly rotationTimer: LongTimer;
  private readonly watcher: CertWatcher;
  private readonly stopped = new AbortController();
  private renewing: Promise<void> | undefined;
  private readonly warnedIds = new Set<string>();
  private readonly clock: Clock;
  private readonly rand: () => number;
  readonly metrics: SecretManagerMetrics = { outgoingLatencyMs: 0, outgoingRequests: 0, failedOutgoingRequests: 0, fileSecretFailures: 0 };

  constructor(private readonly o: SecretManagerOptions) {
    this.clock = o.clock ?? systemClock;
    this.rand = o.rand ?? Math.random;
    this.anchors = [...(o.trustAnchors ?? [])];
    this.rotationTimer = new LongTimer(this.clock);
    this.watcher = new CertWatcher(o.fileDebounceMs ?? 100, (names, path) => {
      for (const n of names) {
        log.info(`file ${path} changed, pushing ${n}`);
        this.notify(n);
      }
    });
  }

  /** Registers a callback for "this resource changed" (Istio's OnSecretUpdate); returns an unsubscribe. */
  onSecretUpdate(cb: (resourceName: string) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  private notify(name: string): void {
    for (const cb of this.listeners) {
      try {
        cb(name);
      } catch (err) {
        log.warn(`secret update callback for ${name} failed: ${errorMessage(err)}`);
      }
    }
  }

  /** Seconds until the cached workload certificate expires (istio_agent_cert_expiry_seconds). */
  certExpirySeconds(): number | undefined {
    return this.item ? (this.item.expireTime - this.clock.now()) / 1000 : undefined;
  }

  /** Failed watch set-ups (num_file_watcher_failures_total). */
  get fileWatcherFailures(): number {
    return this.watcher.failures;
  }

  /** When the next rotation is due (epoch ms), if one is scheduled. */
  get nextRotation(): number | undefined {
    return this.rotationTimer.scheduledAt;
  }

  /** The secret for an SDS resource name (Istio's SecretManagerClient.GenerateSecret). */
  async generateSecret(name: string): Promise<SecretItem> {
    if (this.stopped.signal.aborted) throw new SecretError('secret manager is closed');
    const file = this.fileSource(name);
    if (file) {
      const s = await this.readFileSecret(name, file);
      if (name === WORKLOAD_KEY_CERT_RESOURCE || name === ROOT_CERT_RESOURCE) await this.output(s);
      return s;
    }
    if (name !== WORKLOAD_KEY_CERT_RESOURCE && name !== ROOT_CERT_RESOURCE) {
      throw new UnknownResourceError(`unknown SDS resource name ${JSON.stringify(name)} (served: default, ROOTCA, file-cert:<cert>~<key>, file-root:<path>)`);
    }
    let item = this.validItem();
    let fresh = false;
    if (!item) {
      item = await this.withLock(async () => {
        const cached = this.validItem();
        if (cached) return cached;
        fresh = true;
        return this.fetchWorkloadItem();
      });
      // The requester of ROOTCA gets the new root in its own response; push it to the others.
      this.noteRoot(item.rootCert, name !== ROOT_CERT_RESOURCE);
    }
    const s = this.view(name, item);
    await this.output(fresh ? this.fullView(item) : s);
    return s;
  }

  /** Key, chain and served root together: what OUTPUT_CERTS gets after a new certificate. */
  private fullView(item: WorkloadItem): SecretItem {
    return { ...this.view(WORKLOAD_KEY_CERT_RESOURCE, item), rootCert: mergeTrustAnchors(item.rootCert, this.anchors) };
  }

  private view(name: string, item: WorkloadItem): SecretItem {
    if (name === ROOT_CERT_RESOURCE) return { resourceName: name, rootCert: mergeTrustAnchors(item.rootCert, this.anchors), createdTime: item.createdTime, expireTime: item.expireTime };
    return { resourceName: name, certificateChain: item.certificateChain, privateKey: item.privateKey, createdTime: item.createdTime, expireTime: item.expireTime };
  }

  private async output(s: SecretItem): Promise<void> {
    if (this.o.outputDir) await writeOutputCerts(this.o.outputDir, s, this.o.outputCertMode ?? 0o600);
  }

  /** The cached workload item, unless it has expired (an expired cert is never served). */
  private validItem(): WorkloadItem | undefined {
    if (this.item && this.item.expireTime <= this.clock.now()) {
      log.warn(`workload certificate expired at ${new Date(this.item.expireTime).toISOString()}; dropping it`);
      this.item = undefined;
    }
    return this.item;
  }

  private withLock<T>(fn: () => Promise<T>): Promise<T> {
    const waitStart = this.clock.now();
    const run = this.lock.then(() => {
      const waited = this.clock.now() - waitStart;
      if (waited > 1000) log.warn(`waited ${waited} ms for the secret generation lock`);
      return fn();
    });
    this.lock = run.catch(() => {});
    return run;
  }

  /** A new key + CSR signed by the CA, validated; caches it and schedules rotation. Under the lock. */
  private async fetchWorkloadItem(): Promise<WorkloadItem> {
    const caP = this.o.caClient;
    if (!caP) {
      throw new SecretError(`no CA client (certificates are file-mounted) and no workload certificate files at ${this.o.certFiles.certChain} and ${this.o.certFiles.key}`);
    }
    const started = this.clock.now();
    this.metrics.outgoingRequests++;
    let chain: string[];
    let keyPem: string;
    try {
      const [kc, ca] = await Promise.all([generateKeyAndCsr(this.o.key, this.o.workloadIdentity), caP]);
      keyPem = kc.privateKeyPem;
      chain = await ca.csrSign(kc.csrPem, this.o.ttlSeconds);
      const extra = await ca.getRootCertBundle();
      if (extra.length) chain = [...chain.slice(0, -1), concatCerts([chain[chain.length - 1]!, ...extra])];
    } catch (err) {
      this.metrics.failedOutgoingRequests++;
      throw new SecretError(`failed to generate workload certificate`, { cause: err });
    } finally {
      this.metrics.outgoingLatencyMs += this.clock.now() - started;
    }
    let item: WorkloadItem;
    try {
      item = this.validateCaResponse(chain, keyPem);
    } catch (err) {
      this.metrics.failedOutgoingRequests++;
      throw new SecretError(`failed to generate workload certificate`, { cause: err });
    }
    this.item = item;
    this.scheduleRotation(item);
    log.info('generated new workload certificate', {
      resourceName: WORKLOAD_KEY_CERT_RESOURCE,
      latency: `${this.clock.now() - started}ms`,
      ttl: `${Math.round((item.expireTime - this.clock.now()) / 1000)}s`,
    });
    return item;
  }

  /**
   * Checks the CA's answer before anything is served: leaf + intermediates chain to a root of the
   * bundle it came with, nothing in the chain has expired, and the leaf holds our key. A SPIFFE
   * ID other than the requested one is accepted (istiod decides identity; trust-domain aliases
   * make that legitimate) and logged once.
   */
  private validateCaResponse(elements: string[], keyPem: string): WorkloadItem {
    if (elements.length <= 1) throw new SecretError('invalid empty CertChain');
    const rootText = elements[elements.length - 1]!;
    const chainCerts: X509Certificate[] = [];
    for (const [i, e] of elements.slice(0, -1).entries()) {
      const certs = parseCertificates(e);
      if (certs.length === 0) throw new SecretError(`element ${i} of the CA response holds no valid certificate`);
      chainCerts.push(...certs);
    }
    const roots = parseCertificates(rootText);
    if (roots.length === 0) throw new SecretError('the root bundle in the CA response holds no valid certificate');
    const now = this.clock.now();
    verifyChain(chainCerts, roots, now);
    const leaf = chainCerts[0]!;
    if (!keyMatchesCertificate(keyPem, leaf)) throw new SecretError('the certificate returned by the CA does not match the private key of the CSR');
    const ids = spiffeIds(leaf);
    if (!ids.includes(this.o.workloadIdentity)) {
      const got = ids.join(',') || leaf.subjectAltName || '(none)';
      if (!this.warnedIds.has(got)) {
        this.warnedIds.add(got);
        log.warn(`the CA issued identity ${got}, not the requested ${this.o.workloadIdentity}; serving it (istiod decides identity)`);
      }
    }
    return {
      resourceName: WORKLOAD_KEY_CERT_RESOURCE,
      certificateChain: concatCerts(elements),
      privateKey: keyPem,
      rootCert: rootText,
      createdTime: now,
      expireTime: notAfter(leaf),
    };
  }

  /** Remembers the CA root; a change (the first CSR included) pushes ROOTCA when `push`. */
  private noteRoot(root: string, push: boolean): void {
    if (root === this.lastSeenRoot) return;
    const first = this.lastSeenRoot === '';
    this.lastSeenRoot = root;
    if (!first) log.info('root certificate changed, pushing ROOTCA');
    if (push) this.notify(ROOT_CERT_RESOURCE);
  }

  private scheduleRotation(item: WorkloadItem): void {
    const delay = rotationDelay(item, this.o.graceRatio, this.o.graceJitter, this.clock.now(), this.rand);
    log.debug(`workload certificate rotation in ${Math.round(delay / 1000)}s`);
    this.rotationTimer.schedule(this.clock.now() + delay, () => {
      if (this.item === item) void this.renew('rotation');
    });
  }

  /**
   * Renews the workload certificate in the background, retrying with backoff until the CA
   * answers; the current certificate stays served meanwhile. Concurrent calls share one run.
   */
  renew(reason: string): Promise<void> {
    this.renewing ??= (async () => {
      const backoff = new ExponentialBackoff(this.o.renewBackoff, this.rand);
      log.info(`renewing workload certificate (${reason})`);
      try {
        while (!this.stopped.signal.aborted) {
          try {
            const item = await this.withLock(() => this.fetchWorkloadItem());
            this.noteRoot(item.rootCert, true);
            this.notify(WORKLOAD_KEY_CERT_RESOURCE);
            await this.output(this.fullView(item));
            return;
          } catch (err) {
            if (this.stopped.signal.aborted) return;
            const wait = backoff.next();
            const left = this.item ? `current certificate valid until ${new Date(this.item.expireTime).toISOString()}` : 'no valid certificate cached';
            log.warn(`workload certificate renewal failed, retrying in ${wait} ms (${left}): ${errorMessage(err)}`);
            this.validItem();
            if (!(await sleep(wait, this.stopped.signal))) return;
          }
        }
      } finally {
        this.renewing = undefined;
      }
    })();
    return this.renewing;
  }

  /**
   * New ProxyConfig trust anchors (from PCDS): ROOTCA is pushed, and the workload certificate
   * renewed (Istio clears the cache instead; here the current certificate stays served until
   * the new one arrives).
   */
  async updateConfigTrustBundle(anchors: readonly string[]): Promise<void> {
    const next = [...anchors];
    if (JSON.stringify(next) === JSON.stringify(this.anchors)) return;
    this.anchors = next;
    this.notify(ROOT_CERT_RESOURCE);
    if (this.o.caClient && this.item) {
      this.rotationTimer.cancel();
      await this.renew('trust bundle changed');
    }
  }

  // ---- file-based secrets (Istio's generateFileSecret and its file watches) ----

  private fileSource(name: string): FileSource | undefined {
    const f = this.o.certFiles;
    if (name === ROOT_CERT_RESOURCE && this.o.useExistingCertFiles && nonEmptyFile(f.root)) return { kind: 'root', path: f.root, mergeAnchors: true };
    if (name === WORKLOAD_KEY_CERT_RESOURCE && this.o.useExistingCertFiles && nonEmptyFile(f.certChain) && nonEmptyFile(f.key)) {
      return { kind: 'cert', certPath: f.certChain, keyPath: f.key };
    }
    if (name.startsWith(FILE_CERT_PREFIX)) {
      const parts = name.slice(FILE_CERT_PREFIX.length).split('~');
      if (parts.length === 2 && parts[0] !== '' && parts[1] !== '') return { kind: 'cert', certPath: parts[0]!, keyPath: parts[1]! };
      return undefined;
    }
    if (name.startsWith(FILE_ROOT_PREFIX)) {
      const p = name.slice(FILE_ROOT_PREFIX.length);
      if (p === '' || p.includes('~')) return undefined;
      if (p === 'system') {
        const os = (this.o.osCaBundles ?? OS_CA_BUNDLES).find((c) => existsSync(c));
        return os ? { kind: 'root', path: os, mergeAnchors: false } : undefined;
      }
      return { kind: 'root', path: p, mergeAnchors: false };
    }
    return undefined;
  }

  private async readFileSecret(name: string, src: FileSource): Promise<SecretItem> {
    try {
      const s = src.kind === 'cert' ? await this.readKeyCertPair(name, src.certPath, src.keyPath) : await this.readRoot(name, src.path, src.mergeAnchors);
      await this.watcher.add(src.kind === 'cert' ? src.certPath : src.path, name);
      return s;
    } catch (err) {
      this.metrics.fileSecretFailures++;
      throw err;
    }
  }

  /** Retries `fn` while files are mid-update, for up to fileRetryTotalMs (Istio: 10 s). */
  private async retryFile<T>(fn: () => Promise<T>): Promise<T> {
    const deadline = this.clock.now() + (this.o.fileRetryTotalMs ?? 10_000);
    const backoff = new ExponentialBackoff({ initialMs: this.o.fileDebounceMs ?? 100, multiplier: 1.5, randomization: 0.5, maxMs: 60_000 }, this.rand);
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const wait = backoff.next();
        if (code === 'ENOENT' || this.clock.now() + wait > deadline || this.stopped.signal.aborted) throw err;
        await sleep(wait, this.stopped.signal);
      }
    }
  }

  private async readKeyCertPair(name: string, certPath: string, keyPath: string): Promise<SecretItem> {
    return this.retryFile(async () => {
      const [chain, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
      const leafBlock = parseCertificates(chain)[0];
      if (!leafBlock) throw new SecretError(`failed to load key pair ${certPath} ~ ${keyPath}: no valid certificate in ${certPath}`);
      try {
        createSecureContext({ key, cert: chain });
      } catch (err) {
        throw new SecretError(`failed to load key pair ${certPath} ~ ${keyPath}`, { cause: err });
      }
      const expiry = notAfter(leafBlock);
      if (expiry <= this.clock.now()) throw new SecretError(`certificate ${certPath} expired at ${new Date(expiry).toISOString()}; not serving it`);
      return { resourceName: name, certificateChain: chain, privateKey: key, createdTime: this.clock.now(), expireTime: expiry };
    });
  }

  private async readRoot(name: string, path: string, mergeAnchors: boolean): Promise<SecretItem> {
    return this.retryFile(async () => {
      const text = await readFile(path, 'utf8');
      const certs = parseCertificates(text);
      if (certs.length === 0) throw new SecretError(`failed to read root certificate ${path}: no valid certificates`);
      const pem = certs.map((c) => c.toString()).join('');
      return { resourceName: name, rootCert: mergeAnchors ? mergeTrustAnchors(pem, this.anchors) : pem, createdTime: this.clock.now(), expireTime: 0 };
    });
  }

  /** Stops timers, watches and renewal; later generateSecret calls fail. */
  close(): void {
    this.stopped.abort();
    this.rotationTimer.cancel();
    this.watcher.close();
    void Promise.resolve(this.o.caClient).then(
      (c) => c?.close(),
      () => {},
    );
  }
}

function nonEmptyFile(p: string): boolean {
  try {
    return statSync(p).size > 0;
  } catch {
    return false;
  }
}
