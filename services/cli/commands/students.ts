import { Command } from 'commander';
import { join, resolve } from 'node:path';
import { createLogger } from '../../shared/logger.js';
import { envOption, integerAtLeast, numberBetween } from '../options.js';
import { addDatasetOption, addSeedOption } from '../shared-options.js';

interface CommonFlags {
  dataDir: string;
  databaseUrl?: string;
}

function addRegistryOptions(command: Command): Command {
  return command
    .addOption(
      envOption(
        '--data-dir <dir>',
        "the participant's directory (its registry is <data-dir>/registry)",
        'DISTILLERY_DATA_DIR',
      ).default('participant-data'),
    )
    .addOption(
      envOption(
        '--database-url <url>',
        'the registry, if not PGlite under <data-dir>',
        'DISTILLERY_STUDENTS_DATABASE_URL',
      ),
    );
}

async function withRegistry<T>(
  flags: CommonFlags,
  work: (registry: import('../../registry/database.js').Registry) => Promise<T>,
): Promise<T> {
  const { openRegistry } = await import('../../registry/database.js');
  const registry = await openRegistry({
    dataDir: resolve(flags.dataDir),
    ...(flags.databaseUrl ? { databaseUrl: flags.databaseUrl } : {}),
  });
  try {
    return await work(registry);
  } finally {
    await registry.close();
  }
}

function listCommand(): Command {
  const command = new Command('list')
    .description("list the students in a participant's registry, newest first")
    .option('--json', 'print JSON lines instead of a table', false);
  addRegistryOptions(command);
  return command.action(async (flags: CommonFlags & { json: boolean }) => {
    const { listStudents } = await import('../../registry/students.js');
    await withRegistry(flags, async (registry) => {
      const students = await listStudents(registry.prisma);
      if (flags.json) {
        for (const s of students) process.stdout.write(`${JSON.stringify(s)}\n`);
        return;
      }
      process.stdout.write(
        'id                                    kind        version       params  AUC    parent    created\n',
      );
      for (const s of students) {
        const auc = (s.metrics as { auc?: number }).auc;
        process.stdout.write(
          [
            s.id.padEnd(37),
            s.kind.padEnd(11),
            (s.knowledgeVersionId?.slice(0, 12) ?? '-').padEnd(13),
            String(s.params).padStart(6),
            (auc === undefined ? '-' : auc.toFixed(3)).padStart(6),
            ` ${(s.parentStudentId?.slice(0, 8) ?? '-').padEnd(9)}`,
            s.createdAt.toISOString(),
          ].join(' ') + '\n',
        );
      }
    });
  });
}

interface FineTuneFlags extends CommonFlags {
  student: string;
  id: string;
  dataset: string;
  ownRows?: string;
  testRows?: string;
  epochs?: number;
  learningRate?: number;
  batchSize?: number;
  seed: number;
}

function fineTuneCommand(): Command {
  const command = new Command('fine-tune')
    .description(
      "train a registered student further on the bank's own rows, and print its test AUC next to the unchanged student's",
    )
    .requiredOption('--student <id>', 'id of the student to start from (see `students list`)')
    .addOption(
      envOption(
        '--id <identity>',
        'owner recorded for the new student',
        'DISTILLERY_PARTICIPANT_ID',
      ).default('participant'),
    )
    .addOption(
      envOption(
        '--own-rows <file>',
        'labelled rows to train on (default <data-dir>/own.csv)',
        'DISTILLERY_OWN_ROWS',
      ),
    )
    .addOption(
      envOption(
        '--test-rows <file>',
        'held-out labelled rows both students are scored on (default <data-dir>/test.csv)',
        'DISTILLERY_TEST_ROWS',
      ),
    )
    .option('--epochs <n>', 'passes over the own rows (default 20)', integerAtLeast(1))
    .option('--learning-rate <lr>', 'Adam step size (default 1e-4)', numberBetween(1e-7, 1))
    .option('--batch-size <n>', 'rows per step (default 64)', integerAtLeast(1));
  addRegistryOptions(command);
  addDatasetOption(command);
  addSeedOption(command, 'seed of shuffling');
  return command.action(async (flags: FineTuneFlags) => {
    const [{ loadEngine }, { fineTuneStudent }] = await Promise.all([
      import('../../shared/ml/engine.js'),
      import('../../participant/fine-tune.js'),
    ]);
    const logger = createLogger({ service: 'students' });
    const dataDir = resolve(flags.dataDir);
    const engine = await loadEngine({ logger });
    const result = await withRegistry(flags, (registry) =>
      fineTuneStudent({
        engine,
        db: registry.prisma,
        studentId: flags.student,
        owner: flags.id,
        dataset: flags.dataset,
        ownRows: flags.ownRows ?? join(dataDir, 'own.csv'),
        testRows: flags.testRows ?? join(dataDir, 'test.csv'),
        outputDir: join(dataDir, 'students', 'fine-tuned', `${flags.student}-${Date.now()}`),
        ...(flags.epochs ? { epochs: flags.epochs } : {}),
        ...(flags.learningRate ? { learningRate: flags.learningRate } : {}),
        ...(flags.batchSize ? { batchSize: flags.batchSize } : {}),
        seed: flags.seed,
        logger,
      }),
    );
    process.stdout.write(
      `student ${result.parent.id} (${result.parent.kind}): test AUC ${result.parent.auc.toFixed(4)}, PR AUC ${result.parent.prAuc.toFixed(4)}\n` +
        `fine-tuned ${result.fineTuned.id}: test AUC ${result.fineTuned.auc.toFixed(4)}, PR AUC ${result.fineTuned.prAuc.toFixed(4)} ` +
        `(${result.ownRows} own rows, ${result.steps} steps, ${result.testRows} test rows)\n` +
        `saved in ${result.fineTuned.modelDir}\n`,
    );
    process.stdout.write(`${JSON.stringify({ type: 'fine-tune', ...result })}\n`);
  });
}

/** `distillery students`: a participant's kept students: list them, fine-tune one. */
export function studentsCommand(): Command {
  return new Command('students')
    .description(
      "a participant's students (distilled, fine-tuned, received from the hub): list them or fine-tune one; run while the participant node is stopped (it holds the registry)",
    )
    .addCommand(listCommand())
    .addCommand(fineTuneCommand());
}
