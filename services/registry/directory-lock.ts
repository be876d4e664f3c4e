import { open, readFile, unlink } from 'node:fs/promises';
import { fail } from '../shared/errors.js';

/** A held lock on an embedded registry directory. */
export interface DirectoryLock {
  release(): Promise<void>;
}

/**
 * Takes `<dir>.lock` for this process. PGlite keeps no lock of its own, and two processes
 * (say two hubs started on one data directory) writing the same files lose published
 * versions and access log entries without a word. A lock whose process is gone is stale
 * and is taken over.
 */
export async function lockDirectory(dir: string): Promise<DirectoryLock> {
  const path = `${dir}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      return {
        async release() {
          await unlink(path).catch(() => undefined);
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
        throw fail('REGISTRY_LOCKED', { path: dir, pid: holder });
      }
      await unlink(path).catch(() => undefined);
    }
  }
  throw fail('REGISTRY_LOCKED', { path: dir, pid: 'unknown' });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
