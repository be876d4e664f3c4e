import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/shared/logger.js';
import { loadEngine } from '../../services/shared/ml/engine.js';
import { parseManifest } from '../../services/shared/knowledge/manifest.js';
import { unpackArtefact, unpackTensor } from '../../services/shared/knowledge/tensor-pack.js';
import { openRegistry, type Registry } from '../../services/registry/database.js';
import { ensureStream, getVersion, readChunk } from '../../services/registry/knowledge.js';
import { Announcer } from '../../services/hub/announcer.js';
import { loadHubData } from '../../services/hub/hub-data.js';
import { KnowledgePublisher } from '../../services/hub/publisher.js';
import {
  createFederationFixture,
  splitHubFiles,
  type FederationFixture,
} from '../helpers/federation.js';

const logger = silentLogger();

describe('a publisher with an artefact hook and an encoding', () => {
  let fixture: FederationFixture;
  let registry: Registry;

  beforeAll(async () => {
    fixture = await createFederationFixture('transport-artefacts', 7);
    registry = await openRegistry({ databaseUrl: 'memory://', logger });
    // Opened as a hub opens its streams at start; a publisher creates none.
    await ensureStream(registry.prisma, 'default');
  }, 120_000);

  afterAll(async () => {
    await registry?.close();
    await fixture?.remove();
  });

  it("ships the hook's artefacts byte for byte beside int8 states, the hook seeing the trained teacher", async () => {
    const seen: number[] = [];
    const publisher = new KnowledgePublisher({
      registry,
      announcer: new Announcer(),
      engine: await loadEngine({ logger }),
      data: loadHubData(splitHubFiles(fixture.split, { testRows: false }), 7, logger),
      stateDir: join(fixture.dir, 'hub'),
      teacher: {
        hidden: [8],
        dropout: 0,
        batchSize: 256,
        learningRate: 1e-3,
        patience: 2,
        seed: 7,
      },
      logger,
      encoding: 'int8',
      artefacts: async ({ teacher, data }) => {
        seen.push(teacher.getWeights().length, data.transfer.rows);
        return [
          { name: 'student/model.json', kind: 'artefact', bytes: Buffer.from('{"format":"x"}') },
          { name: 'student/weights.bin', kind: 'artefact', bytes: new Uint8Array([1, 2, 3, 250]) },
        ];
      },
    });
    const result = await publisher.publish({
      stream: 'default',
      epochs: 1,
      temperature: 4,
      hiddenLayers: ['hidden_1'],
      actor: 'test',
    });
    publisher.dispose();

    const stored = await getVersion(registry.prisma, result.version.id);
    const manifest = parseManifest(stored.id, stored.manifestJson);
    const parts: Buffer[] = [];
    for (let i = 0; i < stored.chunkCount; i++) {
      parts.push((await readChunk(registry.prisma, stored.id, i)).data);
    }
    const blob = Buffer.concat(parts);

    expect(seen[0]).toBeGreaterThan(0);
    expect(manifest.tensors.map((t) => [t.name, t.kind, t.dtype])).toEqual([
      ['logits', 'logits', 'int8'],
      ['probabilities', 'probabilities', 'int8'],
      ['hidden.hidden_1', 'hidden', 'int8'],
      ['student/model.json', 'artefact', 'uint8'],
      ['student/weights.bin', 'artefact', 'uint8'],
    ]);
    expect(Buffer.from(unpackArtefact(manifest, blob, 'student/weights.bin'))).toEqual(
      Buffer.from([1, 2, 3, 250]),
    );
    expect(Buffer.from(unpackArtefact(manifest, blob, 'student/model.json')).toString()).toBe(
      '{"format":"x"}',
    );
    const probabilities = unpackTensor(manifest, blob, 'probabilities');
    expect(probabilities).toHaveLength(seen[1]! * 2);
    // Decoded int8 probabilities of each row still sum to about one (the blob is a Buffer
    // here, whose slices share memory: decoding must copy).
    for (let row = 0; row < 50; row++) {
      expect(probabilities[2 * row]! + probabilities[2 * row + 1]!).toBeCloseTo(1, 1);
    }
  }, 300_000);
});
