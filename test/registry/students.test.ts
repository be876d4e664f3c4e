import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getStudent, listStudents, registerStudent } from '../../services/registry/students.js';
import { hasCode } from '../../services/shared/errors.js';
import { registryTargets, type TestRegistry } from '../helpers/database.js';

const architecture = { inputDim: 30, hidden: [16], outputs: 2, format: 'tfjs-layers' as const };

describe.each(registryTargets())('students ($name)', (target) => {
  let db: TestRegistry;
  beforeAll(async () => {
    db = await target.open();
  });
  afterAll(async () => {
    await db?.cleanup();
  });

  it('registers a distilled student and a fine-tuned child, and lists them newest first', async () => {
    const parent = await registerStudent(db.prisma, {
      knowledgeVersionId: 'a'.repeat(64),
      owner: 'bank-a',
      kind: 'distilled',
      architecture,
      params: 530,
      metrics: { auc: 0.81, prAuc: 0.4 },
      engine: 'wasm',
      path: '/data/students/x',
    });
    expect(parent).toMatchObject({
      owner: 'bank-a',
      kind: 'distilled',
      params: 530,
      engine: 'wasm',
    });
    expect(parent.metrics).toEqual({ auc: 0.81, prAuc: 0.4 });
    const child = await registerStudent(db.prisma, {
      owner: 'bank-a',
      kind: 'fine-tuned',
      parentStudentId: parent.id,
      knowledgeVersionId: parent.knowledgeVersionId,
      architecture,
      params: 530,
      metrics: { auc: 0.82 },
      engine: 'wasm',
    });
    const listed = await listStudents(db.prisma, { owner: 'bank-a' });
    expect(listed.map((s) => s.id).sort()).toEqual([child.id, parent.id].sort());
    expect(listed[0].createdAt.getTime()).toBeGreaterThanOrEqual(listed[1].createdAt.getTime());
    expect(listed).toHaveLength(2);
    expect(listed.find((s) => s.id === child.id)?.parentStudentId).toBe(parent.id);
    expect(await listStudents(db.prisma, { kind: 'fine-tuned' })).toHaveLength(1);
  });

  it('keeps the files of a hub student in the registry, byte for byte', async () => {
    const weights = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) % 256);
    const stored = await registerStudent(db.prisma, {
      owner: 'hub',
      kind: 'hub',
      architecture,
      params: 530,
      metrics: {},
      engine: 'wasm',
      files: { modelJson: '{"modelTopology":{}}', weights },
    });
    const read = await getStudent(db.prisma, stored.id);
    expect(read?.modelJson).toBe('{"modelTopology":{}}');
    expect(Array.from(read?.weights ?? [])).toEqual(Array.from(weights));
    const listed = await listStudents(db.prisma, { kind: 'hub' });
    expect(listed[0]).not.toHaveProperty('weights');
  });

  it('refuses an unknown kind and a parent that is not registered', async () => {
    const base = { owner: 'bank-b', architecture, params: 10, metrics: {}, engine: 'cpu' };
    await expect(registerStudent(db.prisma, { ...base, kind: 'magic' as 'hub' })).rejects.toSatisfy(
      (err) => hasCode(err, 'REQUEST_INVALID'),
    );
    await expect(
      registerStudent(db.prisma, { ...base, kind: 'fine-tuned', parentStudentId: 'nope' }),
    ).rejects.toSatisfy((err) => hasCode(err, 'REQUEST_INVALID'));
  });
});
