import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import { createLogger } from '../../services/shared/logger.js';
import { loadEngine } from '../../services/shared/ml/engine.js';
import { startHub } from '../../services/hub/hub.js';
import { openRegistry } from '../../services/registry/database.js';
import { verifyAccessChain } from '../../services/registry/access-log.js';
import { listVersions } from '../../services/registry/knowledge.js';
import {
  createFederationFixture,
  fixtureHubOptions,
  type FederationFixture,
} from '../helpers/federation.js';

/** A hub's log lines, parsed, as they are written. */
function logSink() {
  const lines: { level: number; msg: string; err?: { message?: string } }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
        lines.push(JSON.parse(line) as (typeof lines)[number]);
      }
      done();
    },
  });
  return { lines, stream };
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('a hub closed during a publication', () => {
  let fixture: FederationFixture;

  beforeAll(async () => {
    fixture = await createFederationFixture('hub-shutdown', 11);
  });

  afterAll(async () => {
    await fixture?.remove();
  });

  it('cancels the training, stores nothing, closes the registry last, and reopens intact', async () => {
    const { lines, stream } = logSink();
    const logger = createLogger({ service: 'hub', level: 'debug', destination: stream });
    const engine = await loadEngine({ logger });
    // The embedded registry on disk, as in the report: it refuses every call once closed.
    const options = {
      ...fixtureHubOptions(fixture),
      enrol: ['bank-a'],
      // A patience no run reaches: training goes on until it is cancelled.
      teacher: {
        hidden: [32],
        dropout: 0,
        batchSize: 64,
        learningRate: 1e-3,
        patience: 10_000,
        seed: 11,
      },
      logger,
      engine,
    };
    const hub = await startHub(options);
    const publishing = hub.publisher
      .publish({
        stream: 'default',
        epochs: 1000,
        temperature: 4,
        hiddenLayers: ['hidden_1'],
        fresh: true,
        actor: 't',
      })
      .then(
        () => 'published',
        (err: unknown) => err,
      );
    await until(() => lines.some((l) => l.msg === 'teacher epoch'), 'the first teacher epoch');

    await hub.close();
    const outcome = await publishing;
    expect(hasCode(outcome, 'HUB_SHUTTING_DOWN'), String(outcome)).toBe(true);
    // A publication asked for after the close is refused the same way, not run on a closed
    // registry.
    const late = await hub.publisher
      .publish({ stream: 'default', epochs: 1, temperature: 4, hiddenLayers: [], actor: 't' })
      .catch((err: unknown) => err);
    expect(hasCode(late, 'HUB_SHUTTING_DOWN'), String(late)).toBe(true);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    expect(lines.filter((l) => /closed/i.test(l.err?.message ?? ''))).toEqual([]);
    expect(lines.map((l) => l.msg)).not.toContain('knowledge version published');

    const registry = await openRegistry({ dataDir: options.stateDir, logger });
    try {
      expect(await listVersions(registry.prisma, 'default', {})).toHaveLength(0);
      expect((await verifyAccessChain(registry.prisma)).ok).toBe(true);
    } finally {
      await registry.close();
    }
  }, 180_000);
});
