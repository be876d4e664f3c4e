import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../shared/digest.js';
import type { Logger } from '../shared/logger.js';

/**
 * The hub's local copy of chunk bytes, one file per SHA-256 under its state directory. The
 * registry stays the source of truth: a chunk is read from it once, written here, and
 * served from here afterwards, verified against its hash on its first read by each process
 * (a file that fails is dropped and read from the registry again). Reading a chunk out of PostgreSQL costs
 * its bytes hex-encoded on the server and decoded in the hub; a file costs a page-cache
 * copy, which is what lets a download approach the speed of the network.
 *
 * The cache holds every chunk served since it was emptied, which is at most the size of
 * the registry's chunk storage; removing the directory at any time is safe.
 */
export class ChunkCache {
  #ready: Promise<unknown> | undefined;
  /**
   * Files this process wrote or verified: they are not hashed again on every read (the
   * participant verifies every chunk regardless, so a file changed behind the hub's back
   * is refused there, and dropped here at the next restart). 64 bytes per chunk.
   */
  readonly #verified = new Set<string>();

  constructor(
    readonly dir: string,
    private readonly logger: Logger,
  ) {}

  #path(sha256: string): string {
    return join(this.dir, sha256.slice(0, 2), sha256);
  }

  /** The chunk's bytes, from the cache or else from `load`, whose result is then kept. */
  async get(sha256: string, load: () => Promise<Buffer>): Promise<Buffer> {
    const path = this.#path(sha256);
    if (existsSync(path)) {
      const data = await readFile(path).catch(() => null);
      if (data && (this.#verified.has(sha256) || sha256Hex(data) === sha256)) {
        this.#verified.add(sha256);
        return data;
      }
      this.logger.warn({ sha256 }, 'cached chunk failed verification; reading the registry');
      await rm(path, { force: true });
    }
    const data = await load();
    // Bytes that do not match their hash are passed on (the participant refuses them and
    // says so) but never kept.
    if (sha256Hex(data) !== sha256) return data;
    // A failed write only costs the next read a trip to the registry.
    await this.#put(path, data).then(
      () => this.#verified.add(sha256),
      (err: unknown) => this.logger.warn({ err, sha256 }, 'chunk cache write failed'),
    );
    return data;
  }

  async #put(path: string, data: Uint8Array): Promise<void> {
    this.#ready ??= mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.#ready;
    await mkdir(join(path, '..'), { recursive: true });
    const temporary = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    await writeFile(temporary, data, { mode: 0o600 });
    await rename(temporary, path);
  }
}
