import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initDevelopmentPki } from '../../services/shared/pki/index.js';
import { splitFederation } from '../../services/cli/demo/split-federation.js';

/** Runs `distillery <args>` until `ready` matches its log, then SIGTERMs it. */
function runUntil(args: string[], ready: RegExp, timeoutMs = 120_000) {
  const child = spawn(process.execPath, ['bin/distillery.js', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DATABASE_URL: '' },
  });
  let log = '';
  return new Promise<{ code: number | null; signal: string | null; log: string }>(
    (resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`no match for ${ready} in time; log:\n${log}`));
      }, timeoutMs);
      let signalled = false;
      child.stderr.on('data', (part: Buffer) => {
        log += part.toString();
        if (!signalled && ready.test(log)) {
          signalled = true;
          child.kill('SIGTERM');
        }
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, log });
      });
    },
  );
}

describe('services on SIGTERM', () => {
  let dir: string;
  let pkiDir: string;
  let parties: ReturnType<typeof splitFederation>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'distillery-shutdown-'));
    pkiDir = (await initDevelopmentPki(join(dir, 'pki'), { participants: ['bank-a'] })).dir;
    parties = splitFederation({
      input: 'data/lending_club.csv',
      dataset: 'lending_club',
      outDir: join(dir, 'parties'),
      seed: 2,
      participants: ['bank-a'],
    });
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a participant waiting for an unreachable hub stops cleanly with exit code 0', async () => {
    const result = await runUntil(
      [
        'participant',
        '--id',
        'bank-a',
        '--hub',
        '127.0.0.1:1',
        '--pki-dir',
        pkiDir,
        '--data-dir',
        parties.participantDirs['bank-a'],
      ],
      /hub unreachable; retrying/,
    );
    expect(result.code, result.log).toBe(0);
    expect(result.log).toContain('"msg":"stopped"');
  });

  it('a serving hub stops cleanly with exit code 0', async () => {
    const result = await runUntil(
      [
        'hub',
        '--data-dir',
        parties.hubDir,
        '--pki-dir',
        pkiDir,
        '--grpc-port',
        '0',
        '--http-port',
        '0',
        '--enrol',
        'bank-a',
      ],
      /"msg":"hub ready"/,
    );
    expect(result.code, result.log).toBe(0);
    expect(result.log).toContain('"msg":"stopped"');
  }, 180_000);

  it('a hub given a data file that does not exist exits 1 with a message naming it', async () => {
    const child = spawn(
      process.execPath,
      [
        'bin/distillery.js',
        'hub',
        '--data-dir',
        join(dir, 'nowhere'),
        '--pki-dir',
        pkiDir,
        '--grpc-port',
        '0',
        '--http-port',
        '0',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DATABASE_URL: '' } },
    );
    let stderr = '';
    child.stderr.on('data', (part: Buffer) => (stderr += part.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toContain(
      `distillery: DATA_FILE_MISSING: data file not found: ${join(dir, 'nowhere', 'private.csv')}`,
    );
  }, 180_000);
});
