// Atomic file replacement: write a temporary file beside the target, fsync it, rename it over
// the target. A reader (Envoy, a kubelet probe, an operator's cat) sees the old file or the new
// one, never a half-written one, and a failure leaves the old file untouched.
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

let counter = 0;

/**
 * `mode` is filtered by the process umask, as Go's os.WriteFile does, unless `exactMode` is set:
 * then the file gets exactly `mode` whatever the umask (fchmod on the temp file, before rename).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644, { exactMode = false }: { exactMode?: boolean } = {}): Promise<void> {
  // pid + counter is unique among live writers; 'wx' below refuses to reuse a stale name.
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${++counter}.tmp`);
  let fh;
  try {
    fh = await open(tmp, 'wx', mode);
    if (exactMode) await fh.chmod(mode);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
  } catch (err) {
    await fh?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
}
