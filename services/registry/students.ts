import { randomUUID } from 'node:crypto';
import type { Prisma, Student } from '../generated/prisma/client.js';
import { fail } from '../shared/errors.js';
import type { RegistryDb } from './database.js';

export type { Student } from '../generated/prisma/client.js';

/** How a student came to be. */
export type StudentKind = 'distilled' | 'fine-tuned' | 'own-only' | 'hub';

const KINDS: readonly StudentKind[] = ['distilled', 'fine-tuned', 'own-only', 'hub'];

/** The shape of a student, as recorded. */
export interface StudentArchitecture {
  inputDim: number;
  hidden: number[];
  outputs: number;
  format: 'tfjs-layers';
}

/** What {@link registerStudent} records. */
export interface RegisterStudentInput {
  /** Default a new random UUID. */
  id?: string;
  knowledgeVersionId?: string | null;
  owner: string;
  kind: StudentKind;
  parentStudentId?: string | null;
  architecture: StudentArchitecture;
  params: number;
  metrics: Record<string, unknown>;
  engine: string;
  /** Directory of model.json and weights.bin, when on disk. */
  path?: string | null;
  /** The files themselves, when the registry keeps them. */
  files?: { modelJson: string; weights: Uint8Array };
}

/**
 * Records a trained student.
 *
 * @throws REQUEST_INVALID for an unknown kind, a negative size, or a parent that is not
 *   registered.
 */
export async function registerStudent(
  db: RegistryDb,
  input: RegisterStudentInput,
): Promise<Student> {
  if (!KINDS.includes(input.kind)) {
    throw fail('REQUEST_INVALID', {
      detail: `student kind "${input.kind}" is not one of ${KINDS.join(', ')}`,
    });
  }
  if (!(Number.isInteger(input.params) && input.params > 0)) {
    throw fail('REQUEST_INVALID', {
      detail: `student params must be positive, got ${input.params}`,
    });
  }
  if (input.parentStudentId) {
    const parent = await db.student.findUnique({
      where: { id: input.parentStudentId },
      select: { id: true },
    });
    if (!parent) {
      throw fail('REQUEST_INVALID', {
        detail: `parent student ${input.parentStudentId} is not registered`,
      });
    }
  }
  return db.student.create({
    data: {
      id: input.id ?? randomUUID(),
      knowledgeVersionId: input.knowledgeVersionId ?? null,
      owner: input.owner,
      kind: input.kind,
      parentStudentId: input.parentStudentId ?? null,
      architecture: input.architecture as unknown as Prisma.InputJsonValue,
      params: input.params,
      metrics: input.metrics as Prisma.InputJsonValue,
      engine: input.engine,
      path: input.path ?? null,
      ...(input.files
        ? {
            modelJson: input.files.modelJson,
            weights: Buffer.from(input.files.weights) as unknown as Uint8Array<ArrayBuffer>,
          }
        : {}),
    },
  });
}

/** The student with this id, or null. */
export async function getStudent(db: RegistryDb, id: string): Promise<Student | null> {
  return db.student.findUnique({ where: { id } });
}

/** Filters of {@link listStudents}. */
export interface ListStudentsFilter {
  owner?: string;
  knowledgeVersionId?: string;
  kind?: StudentKind;
}

/**
 * Students, newest first, without their stored files (use {@link getStudent} for those).
 */
export async function listStudents(
  db: RegistryDb,
  filter: ListStudentsFilter = {},
): Promise<Omit<Student, 'modelJson' | 'weights'>[]> {
  return db.student.findMany({
    where: {
      ...(filter.owner ? { owner: filter.owner } : {}),
      ...(filter.knowledgeVersionId ? { knowledgeVersionId: filter.knowledgeVersionId } : {}),
      ...(filter.kind ? { kind: filter.kind } : {}),
    },
    omit: { modelJson: true, weights: true },
    orderBy: [{ createdAt: 'desc' }, { id: 'asc' }],
  });
}
