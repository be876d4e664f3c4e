import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type RunningHub } from '../../services/hub/hub.js';
import { createHubStudentHook } from '../../services/hub/hub-student.js';
import type { StudentResult } from '../../services/participant/distiller.js';
import { startParticipant } from '../../services/participant/participant.js';
import { openRegistry } from '../../services/registry/database.js';
import { listStudents, type Student } from '../../services/registry/students.js';
import { silentLogger } from '../../services/shared/logger.js';
import { loadEngine } from '../../services/shared/ml/engine.js';
import { loadModel } from '../../services/shared/ml/model-io.js';
import {
  createFederationFixture,
  fixtureHubOptions,
  fixtureParticipantOptions,
  type FederationFixture,
} from '../helpers/federation.js';

const logger = silentLogger();

describe('a student distilled by the hub travels inside the version', () => {
  let fixture: FederationFixture;
  let hub: RunningHub;
  let result: StudentResult;
  let hubRecords: Omit<Student, 'modelJson' | 'weights'>[];
  let bankRecords: Omit<Student, 'modelJson' | 'weights'>[];

  beforeAll(async () => {
    fixture = await createFederationFixture('hub-student', 4);
    const { dir } = fixture;
    const engine = await loadEngine({ logger });
    hub = await startHub({
      ...fixtureHubOptions(fixture),
      databaseUrl: 'memory://',
      enrol: ['bank-a'],
      teacher: {
        hidden: [32, 32],
        dropout: 0.1,
        batchSize: 128,
        learningRate: 1e-3,
        patience: 2,
        seed: 4,
      },
      artefacts: createHubStudentHook({ hidden: [8], seed: 4, epochs: 4 }),
      logger,
      engine,
    });
    await hub.publisher.publish({
      stream: 'default',
      epochs: 3,
      temperature: 4,
      hiddenLayers: ['hidden_2'],
      actor: 'test',
    });
    hubRecords = await listStudents(hub.registry.prisma);

    const stateDir = join(dir, 'bank-a-state');
    const participant = await startParticipant({
      ...fixtureParticipantOptions(fixture, 'bank-a', `localhost:${hub.grpcPort}`),
      student: { hidden: [8], epochs: 2, alpha: 0.9, batchSize: 256, learningRate: 1e-3, seed: 4 },
      exitAfter: 1,
      logger,
      engine,
      onResult: (r) => (result = r),
    });
    await participant.done;
    // The node has closed its registry; open it as the `distillery students` commands do.
    const registry = await openRegistry({ dataDir: stateDir, logger });
    bankRecords = await listStudents(registry.prisma);
    await registry.close();
  }, 600_000);

  afterAll(async () => {
    await hub?.close();
    await fixture?.remove();
  });

  it('records the hub student in the hub registry, with its files', () => {
    expect(hubRecords).toHaveLength(1);
    expect(hubRecords[0]).toMatchObject({ owner: 'hub', kind: 'hub', params: expect.any(Number) });
    expect((hubRecords[0].metrics as { validationAuc: number }).validationAuc).toBeGreaterThan(0.5);
  });

  it('lets the bank score, save and register the hub student next to its own', async () => {
    expect(result.hubStudent).toBeDefined();
    const hubStudent = result.hubStudent!;
    expect(hubStudent.params).toBe(hubRecords[0].params);
    expect(hubStudent.auc).toBeGreaterThan(0.5);
    expect(existsSync(join(hubStudent.modelDir, 'model.json'))).toBe(true);
    const model = await loadModel(await loadEngine({ logger }), hubStudent.modelDir);
    expect(model.countParams()).toBe(hubStudent.params);
    model.dispose();

    const kinds = bankRecords.map((s) => s.kind).sort();
    expect(kinds).toEqual(['distilled', 'hub']);
    for (const record of bankRecords) {
      expect(record.owner).toBe('bank-a');
      expect(record.knowledgeVersionId).toBe(result.versionId);
    }
    expect(bankRecords.find((s) => s.kind === 'distilled')?.id).toBe(result.studentId);
    expect(bankRecords.find((s) => s.kind === 'hub')?.id).toBe(hubStudent.studentId);
  });
});
