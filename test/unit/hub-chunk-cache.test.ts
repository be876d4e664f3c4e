import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../services/shared/digest.js';
import { silentLogger } from '../../services/shared/logger.js';
import { ChunkCache } from '../../services/hub/chunk-cache.js';

describe('the hub chunk cache', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'distillery-chunk-cache-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a chunk from the registry once, then from its file', async () => {
    const cache = new ChunkCache(dir, silentLogger());
    const data = Buffer.from('chunk bytes');
    let loads = 0;
    const load = async () => (loads++, data);
    expect((await cache.get(sha256Hex(data), load)).equals(data)).toBe(true);
    expect((await cache.get(sha256Hex(data), load)).equals(data)).toBe(true);
    expect(loads).toBe(1);
  });

  it('drops a file that no longer matches its hash, and never keeps bytes that do not', async () => {
    const data = Buffer.from('other bytes');
    const sha = sha256Hex(data);
    await new ChunkCache(dir, silentLogger()).get(sha, async () => data);
    await writeFile(join(dir, sha.slice(0, 2), sha), 'tampered');
    let loads = 0;
    const fresh = new ChunkCache(dir, silentLogger());
    expect((await fresh.get(sha, async () => (loads++, data))).equals(data)).toBe(true);
    expect(loads).toBe(1);

    const wrong = sha256Hex('expected');
    const served = await fresh.get(wrong, async () => Buffer.from('not it'));
    expect(served.toString()).toBe('not it');
    expect(await readdir(join(dir, wrong.slice(0, 2))).catch(() => [])).toEqual([]);
  });
});
