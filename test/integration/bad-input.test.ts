import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/shared/logger.js';
import { hasCode, type ErrorCode } from '../../services/shared/errors.js';
import { loadEngine, type Engine } from '../../services/shared/ml/engine.js';
import { startHub, type HubOptions } from '../../services/hub/hub.js';
import { listVersions } from '../../services/registry/knowledge.js';
import {
  createFederationFixture,
  fixtureHubOptions,
  type FederationFixture,
} from '../helpers/federation.js';

const logger = silentLogger();

describe('a hub given bad input data', () => {
  let fixture: FederationFixture;
  let engine: Engine;
  let privatePath: string;
  let goodCsv: string;
  let options: HubOptions;

  beforeAll(async () => {
    fixture = await createFederationFixture('bad-input', 5);
    const split = fixture.split;
    privatePath = join(split.hubDir, 'private.csv');
    goodCsv = await readFile(privatePath, 'utf8');
    engine = await loadEngine({ logger });
    options = {
      // An on-disk embedded registry: what is stored must survive the failed starts.
      ...fixtureHubOptions(fixture, { privateRows: privatePath, testRows: false }),
      enrol: ['bank-a'],
      teacher: {
        hidden: [16],
        dropout: 0,
        batchSize: 256,
        learningRate: 1e-3,
        patience: 1,
        seed: 5,
      },
      logger,
      engine,
    };
    const hub = await startHub(options);
    await hub.publisher.publish({
      stream: 'default',
      epochs: 1,
      temperature: 4,
      hiddenLayers: ['hidden_1'],
      actor: 't',
    });
    await hub.close();
  }, 300_000);

  afterAll(async () => {
    await fixture?.remove();
  });

  const startWith = async (csv: string) => {
    await writeFile(privatePath, csv);
    return startHub(options).then(
      async (hub) => {
        await hub.close();
        return null;
      },
      (err: unknown) => err,
    );
  };

  it('refuses to start on a CSV lacking a column, naming it', async () => {
    const lines = goodCsv.split('\n');
    const header = lines[0].split(',');
    const drop = header.findIndex((name) => name.replace(/"/g, '') === 'int_rate');
    expect(drop).toBeGreaterThanOrEqual(0);
    const cut = lines
      .map((l) =>
        l
          .split(',')
          .filter((_, i) => i !== drop)
          .join(','),
      )
      .join('\n');
    const err = await startWith(cut);
    expect(hasCode(err, 'DATA_MISSING_COLUMN')).toBe(true);
    expect((err as Error).message).toContain('int_rate');
  });

  it('refuses to start on a non-numeric value, naming row and column', async () => {
    const lines = goodCsv.split('\n');
    lines[2] = lines[2].replace(/^[^,]+/, '"lots"');
    const err = await startWith(lines.join('\n'));
    expect(hasCode(err, 'DATA_NOT_NUMERIC')).toBe(true);
    expect((err as Error).message).toMatch(/row 2.*funded_amnt/);
  });

  it('refuses to start on a value that parses but cannot be scaled, naming the column', async () => {
    const lines = goodCsv.split('\n');
    const header = lines[0].split(',').map((name) => name.replace(/"/g, ''));
    const column = header.indexOf('annual_inc');
    const cells = lines[5].split(',');
    cells[column] = '1e300';
    lines[5] = cells.join(',');
    const err = await startWith(lines.join('\n'));
    expect(hasCode(err, 'DATA_MALFORMED')).toBe(true);
    expect((err as Error).message).toContain('"annual_inc"');
  });

  it('refuses to start on an empty file', async () => {
    const err = await startWith('');
    expect(hasCode(err, 'DATA_EMPTY_FILE')).toBe(true);
  });

  it('refuses a publish naming an unknown layer before training, leaving the teacher as it was', async () => {
    await writeFile(privatePath, goodCsv);
    const hub = await startHub(options);
    try {
      const refused = await hub.publisher
        .publish({
          stream: 'default',
          epochs: 3,
          temperature: 4,
          hiddenLayers: ['nope'],
          actor: 't',
        })
        .catch((e: unknown) => e);
      expect(hasCode(refused, 'REQUEST_INVALID')).toBe(true);
      const next = await hub.publisher.publish({
        stream: 'default',
        epochs: 1,
        temperature: 2,
        hiddenLayers: ['hidden_1'],
        actor: 't',
      });
      // One epoch at the first publish, one now: the refused request trained nothing.
      expect(next.teacher.epochsTrained).toBe(1 + next.teacher.epochsRun);
      expect(next.version.sequence).toBe(2);
    } finally {
      await hub.close();
    }
  });

  it('refuses, before training, a publish no participant could use or that names no open stream', async () => {
    await writeFile(privatePath, goodCsv);
    const hub = await startHub(options);
    try {
      const base = { stream: 'default', epochs: 3, temperature: 4, actor: 't' };
      const cases: [Parameters<typeof hub.publisher.publish>[0], ErrorCode, RegExp][] = [
        [{ ...base, temperature: 1e-300, hiddenLayers: [] }, 'REQUEST_INVALID', /temperature/],
        [{ ...base, temperature: 101, hiddenLayers: [] }, 'REQUEST_INVALID', /temperature/],
        [{ ...base, temperature: NaN, hiddenLayers: [] }, 'REQUEST_INVALID', /temperature/],
        [
          { ...base, hiddenLayers: ['hidden_1', 'hidden_1'] },
          'REQUEST_INVALID',
          /"hidden_1" twice/,
        ],
        [{ ...base, stream: 'nostream', hiddenLayers: [] }, 'STREAM_NOT_FOUND', /"nostream"/],
      ];
      for (const [request, code, message] of cases) {
        const refused = await hub.publisher.publish(request).catch((e: unknown) => e);
        expect(hasCode(refused, code), String(refused)).toBe(true);
        expect((refused as Error).message).toMatch(message);
      }
      const streams = await hub.registry.prisma.knowledgeStream.findMany();
      expect(streams.map((s) => s.name)).toEqual(['default']);
    } finally {
      await hub.close();
    }
  });

  it('keeps every stored version through the failed starts', async () => {
    const err = await startWith(goodCsv);
    expect(err).toBeNull();
    const { openRegistry } = await import('../../services/registry/database.js');
    const registry = await openRegistry({ dataDir: options.stateDir, logger });
    const versions = await listVersions(registry.prisma, 'default', {});
    await registry.close();
    expect(versions).toHaveLength(2);
  });
});
