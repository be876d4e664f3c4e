import { openRegistry, type Registry } from '../registry/database.js';
import { registerStudent, type RegisterStudentInput } from '../registry/students.js';
import type { Logger } from '../shared/logger.js';
import type { StudentRecorder } from './distiller.js';

/** A {@link StudentRecorder} backed by a registry, with a way to close it. */
export interface RegistryStudentRecorder extends StudentRecorder {
  close(): Promise<void>;
}

/**
 * Records students in the participant's own registry: PGlite under `<dataDir>/registry`
 * unless `databaseUrl` names another database (`memory://`, PostgreSQL). It starts opening
 * at once, in the background, because a first on-disk PGlite start takes seconds to tens
 * of seconds, which then overlaps with subscribing and downloading instead of delaying the
 * first student. While the node runs, it holds the registry's directory lock: the
 * `distillery students` commands work on the same data directory when the node is stopped.
 */
export function createStudentRecorder(options: {
  dataDir: string;
  databaseUrl?: string;
  logger: Logger;
}): RegistryStudentRecorder {
  const opening: Promise<Registry> = openRegistry({
    dataDir: options.dataDir,
    ...(options.databaseUrl ? { databaseUrl: options.databaseUrl } : {}),
    logger: options.logger,
  });
  // A failure surfaces at the first registration; this keeps it from being unhandled.
  opening.catch(() => undefined);
  return {
    async register(input: RegisterStudentInput) {
      const registry = await opening;
      const student = await registerStudent(registry.prisma, input);
      options.logger.info(
        { studentId: student.id, kind: student.kind, version: student.knowledgeVersionId },
        'student registered',
      );
      return student;
    },
    async close() {
      const registry = await opening.catch(() => undefined);
      await registry?.close();
    },
  };
}
