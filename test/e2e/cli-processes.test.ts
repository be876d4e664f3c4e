import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initDevelopmentPki, pkiLayout } from '../../services/shared/pki/index.js';
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

describe('distillery processes', () => {
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
      // Its registry must be open too: a first on-disk initialisation can take longer than
      // the shutdown grace on a loaded machine, and this case is about a running node.
      /"msg":"registry opened"[\s\S]*hub unreachable; retrying|hub unreachable; retrying[\s\S]*"msg":"registry opened"/,
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

  describe('given a bad configuration, exits 1 with one line naming the problem', () => {
    const run = (args: string[]) =>
      spawnSync(process.execPath, ['bin/distillery.js', ...args], {
        encoding: 'utf8',
        env: { ...process.env, DATABASE_URL: '' },
      });

    it('a participant whose --id is not the identity in its certificate', () => {
      const pki = pkiLayout(pkiDir);
      const result = run([
        'participant',
        '--id',
        'bank-b',
        '--cert',
        pki.participant('bank-a').cert,
        '--key',
        pki.participant('bank-a').key,
        '--pki-dir',
        pkiDir,
        '--data-dir',
        parties.participantDirs['bank-a'],
      ]);
      expect(result.status).toBe(1);
      expect(result.stderr.trim().split('\n').at(-1)).toBe(
        `distillery: PKI_IDENTITY_MISMATCH: certificate ${pki.participant('bank-a').cert} is issued to "bank-a", not to "bank-b"`,
      );
    });

    it("a demo pointed at a directory of someone else's files, which it leaves alone", async () => {
      const elsewhere = join(dir, 'important');
      await mkdir(elsewhere);
      await writeFile(join(elsewhere, 'notes.txt'), 'keep me');
      const result = run(['demo', '--out', elsewhere]);
      expect(result.status).toBe(1);
      expect(result.stderr).toContain('OUTPUT_DIR_NOT_EMPTY');
      expect(await readFile(join(elsewhere, 'notes.txt'), 'utf8')).toBe('keep me');
    });

    it('a split over an earlier one, unless --force', () => {
      const args = ['split', '--input', 'data/lending_club.csv', '--out', join(dir, 'parties')];
      const refused = run(args);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toContain('already exists');
      expect(run([...args, '--participants', 'bank-a', '--seed', '2', '--force']).status).toBe(0);
    });
  });
});
