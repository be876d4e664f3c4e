// SIGTERM stops a participant process promptly while it trains a student: it exits 0 within
// the shutdown grace and lets go of its data directory's locks.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/shared/logger.js';
import { loadEngine } from '../../services/shared/ml/engine.js';
import { startHub, type RunningHub } from '../../services/hub/hub.js';
import { LocalStore } from '../../services/participant/local-store.js';
import {
  createFederationFixture,
  fixtureHubOptions,
  type FederationFixture,
} from '../helpers/federation.js';

const logger = silentLogger();

describe('a participant process told to stop while it trains', () => {
  let fixture: FederationFixture;
  let hub: RunningHub;

  beforeAll(async () => {
    fixture = await createFederationFixture('participant-shutdown', 7, ['bank-a']);
    const engine = await loadEngine({ logger });
    hub = await startHub({
      ...fixtureHubOptions(fixture),
      databaseUrl: 'memory://',
      enrol: ['bank-a'],
      teacher: {
        hidden: [16],
        dropout: 0,
        batchSize: 256,
        learningRate: 1e-3,
        patience: 2,
        seed: 7,
      },
      logger,
      engine,
    });
    await hub.publisher.publish({
      stream: 'default',
      epochs: 1,
      temperature: 4,
      hiddenLayers: ['hidden_1'],
      actor: 'ops',
    });
  }, 300_000);

  afterAll(async () => {
    await hub?.close();
    await fixture?.remove();
  });

  it('exits 0 with "stopped", releases its locks, and handles the event again at the next start', async () => {
    const dataDir = fixture.split.participantDirs['bank-a']!;
    // Far more epochs than the 15 s grace allows: only stopping training ends it in time.
    const child = spawn(
      process.execPath,
      [
        'bin/distillery.js',
        'participant',
        '--id',
        'bank-a',
        '--hub',
        `localhost:${hub.grpcPort}`,
        '--pki-dir',
        fixture.pki.dir,
        '--data-dir',
        dataDir,
        '--student-hidden',
        '8',
        '--epochs',
        '100000',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DATABASE_URL: '' } },
    );
    let log = '';
    let signalled = false;
    // Its registry must be open too: a first on-disk initialisation can take longer than the
    // grace on a loaded machine, and this case is about training.
    const training =
      /"msg":"registry opened"[\s\S]*"msg":"training epoch"|"msg":"training epoch"[\s\S]*"msg":"registry opened"/;
    const exited = new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the participant did not exit; log:\n${log}`));
      }, 240_000);
      child.stderr.on('data', (part: Buffer) => {
        log += part.toString();
        if (!signalled && training.test(log)) {
          signalled = true;
          child.kill('SIGTERM');
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    const code = await exited;
    expect(signalled, log).toBe(true);
    expect(code, log).toBe(0);
    expect(log).toContain('"msg":"stopped"');
    expect(log).not.toContain('shutdown took too long');
    expect(log).not.toContain('"msg":"student distilled"');
    expect(existsSync(join(dataDir, 'registry.lock'))).toBe(false);
    expect(existsSync(join(dataDir, 'participant.lock'))).toBe(false);
    // The event was not handled: the next start distils the version.
    expect(await new LocalStore(dataDir).readEvents()).toEqual([]);
  }, 300_000);
});
