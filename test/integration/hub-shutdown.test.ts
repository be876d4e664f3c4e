import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import { createLogger } from '../../services/shared/logger.js';
import { issueAccessToken } from '../../services/shared/tokens/index.js';
import { callHubApi } from '../../services/cli/https-client.js';
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
import { until } from '../helpers/wait.js';

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

describe('a hub closed during a publication', () => {
  let fixture: FederationFixture;

  beforeAll(async () => {
    fixture = await createFederationFixture('hub-shutdown', 11);
  });

  afterAll(async () => {
    await fixture?.remove();
  });

  /** A hub whose teacher trains until it is cancelled, logging every epoch into `lines`. */
  const hubOptions = async () => {
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
    return { lines, logger, options };
  };

  it('cancels the training, stores nothing, closes the registry last, and reopens intact', async () => {
    const { lines, logger, options } = await hubOptions();
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
    await until(
      () => lines.some((l) => l.msg === 'teacher epoch'),
      60_000,
      'the first teacher epoch',
    );

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

  it('answers an HTTPS publish cut short by the close with 503 HUB_SHUTTING_DOWN', async () => {
    const { lines, options } = await hubOptions();
    const hub = await startHub(options);
    const token = await issueAccessToken({
      privateKeyPem: await readFile(fixture.pki.jwtPrivateKey, 'utf8'),
      issuer: 'i',
      audience: 'a',
      subject: 'ops',
      role: 'operator',
    });
    const answer = callHubApi<{ error: { code: string } }>({
      baseUrl: `https://127.0.0.1:${hub.httpPort}`,
      caPem: await readFile(fixture.pki.caCert, 'utf8'),
      token,
      method: 'POST',
      path: '/v1/streams/default/versions',
      body: { epochs: 1000, fresh: true, hiddenLayers: ['hidden_1'] },
    });
    await until(
      () => lines.some((l) => l.msg === 'teacher epoch'),
      60_000,
      'the first teacher epoch',
    );
    await hub.close();
    const res = await answer;
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('HUB_SHUTTING_DOWN');
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  }, 180_000);
});
