// Watches certificate files served over SDS and reports which resource names changed.
// fs.watch on a file follows its inode, so an atomic rename (what Istio's tests, OUTPUT_CERTS
// writers and kubelet's `..data` swap all do) would silently end the watch. We watch the
// file's directory instead — plus the directory of its resolved target when the path goes
// through a symlink — and match events by name; kubelet's `..data` swap counts as a change of
// every watched file in that directory. Events are debounced per file.
import { watch, type FSWatcher } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { scope } from '../../lib/log.js';
import { errorMessage } from '../../lib/errors.js';

const log = scope('cache');

interface Watched {
  names: Set<string>;
  /** (directory, entry name) pairs whose events mean this file changed */
  triggers: Set<string>;
  timer?: NodeJS.Timeout | undefined;
}

export class CertWatcher {
  private readonly files = new Map<string, Watched>();
  private readonly dirs = new Map<string, FSWatcher>();
  private closed = false;
  /** Failed watch set-ups (Istio's num_file_watcher_failures_total). */
  failures = 0;

  constructor(
    private readonly debounceMs: number,
    private readonly onChange: (names: string[], path: string) => void,
  ) {}

  /** Starts watching `path` (if not yet) and maps it to `resourceName`. */
  async add(path: string, resourceName: string): Promise<void> {
    if (this.closed) return;
    const p = resolve(path);
    let w = this.files.get(p);
    if (!w) {
      w = { names: new Set(), triggers: new Set() };
      this.files.set(p, w);
      await this.arm(p, w);
    }
    w.names.add(resourceName);
  }

  private async arm(p: string, w: Watched): Promise<void> {
    const pairs: [string, string][] = [
      [dirname(p), basename(p)],
      [dirname(p), '..data'],
    ];
    try {
      const target = await realpath(p);
      if (target !== p) pairs.push([dirname(target), basename(target)]);
    } catch {
      // not there yet: the directory watch sees it appear
    }
    for (const [dir, name] of pairs) {
      w.triggers.add(`${dir}\0${name}`);
      this.watchDir(dir);
    }
  }

  private watchDir(dir: string): void {
    if (this.dirs.has(dir)) return;
    try {
      const fw = watch(dir, { persistent: false }, (_event, filename) => this.onEvent(dir, filename === null ? null : String(filename)));
      fw.on('error', (err) => {
        this.failures++;
        log.warn(`certificate watcher for ${dir} failed: ${err.message}`);
        fw.close();
        this.dirs.delete(dir);
      });
      this.dirs.set(dir, fw);
    } catch (err) {
      this.failures++;
      log.warn(`failed to watch ${dir}: ${errorMessage(err)}`);
    }
  }

  private onEvent(dir: string, filename: string | null): void {
    for (const [p, w] of this.files) {
      const hit = filename === null ? [...w.triggers].some((t) => t.startsWith(`${dir}\0`)) : w.triggers.has(`${dir}\0${filename}`);
      if (!hit) continue;
      if (w.timer) continue;
      w.timer = setTimeout(() => {
        w.timer = undefined;
        if (this.closed) return;
        // A kubelet swap moves the symlink's target: follow it for the next change.
        void this.arm(p, w).then(() => this.onChange([...w.names], p));
      }, this.debounceMs);
      w.timer.unref();
    }
  }

  close(): void {
    this.closed = true;
    for (const w of this.files.values()) if (w.timer) clearTimeout(w.timer);
    for (const fw of this.dirs.values()) fw.close();
    this.dirs.clear();
    this.files.clear();
  }
}
