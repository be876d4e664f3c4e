import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import { lockDirectory } from '../../services/registry/directory-lock.js';

describe('lockDirectory', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'distillery-lock-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a second holder while the first holds the lock, naming the holder', async () => {
    const first = await lockDirectory(join(dir, 'registry'));
    const second = await lockDirectory(join(dir, 'registry')).catch((e: unknown) => e);
    expect(hasCode(second, 'REGISTRY_LOCKED')).toBe(true);
    expect((second as Error).message).toContain(`pid ${process.pid}`);
    await first.release();
  });

  it('can be taken again once released', async () => {
    const first = await lockDirectory(join(dir, 'registry'));
    await first.release();
    expect(existsSync(join(dir, 'registry.lock'))).toBe(false);
    const again = await lockDirectory(join(dir, 'registry'));
    await again.release();
  });

  it('takes over a lock left by a process that no longer runs', async () => {
    // The pid of a process that has just exited is free (reuse within the test is unlikely).
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    }).stdout;
    await writeFile(join(dir, 'registry.lock'), gone);
    const lock = await lockDirectory(join(dir, 'registry'));
    await lock.release();
  });
});
