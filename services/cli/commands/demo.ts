import { Command } from 'commander';
import { addStudentHiddenOption } from '../shared-options.js';
import { envOption, integerAtLeast, numberBetween, parseList } from '../options.js';
import { TEMPERATURE_RANGE } from '../../shared/knowledge/temperature.js';

interface DemoFlags {
  out: string;
  input: string;
  dataset: string;
  seed: number;
  teacherEpochs: number;
  moreTeacherEpochs: number;
  temperature: number;
  temperature2: number;
  studentEpochs?: number;
  studentHidden: number[];
  participants: string[];
}

/** `distillery demo`: a whole federation on this machine. */
export function demoCommand(): Command {
  const command = new Command('demo')
    .description(
      'run a complete federation on this machine: PKI, hub, two banks, two knowledge versions, an auditor',
    )
    .addOption(
      envOption('--out <dir>', 'output directory (emptied first)', 'DISTILLERY_DEMO_OUT').default(
        'out/demo',
      ),
    )
    .addOption(
      envOption(
        '--input <file>',
        'labelled CSV to build the federation from',
        'DISTILLERY_DEMO_INPUT',
      ).default('data/lending_club.csv'),
    )
    .addOption(
      envOption(
        '--dataset <name>',
        'schema of the input: lending_club or credit_data',
        'DISTILLERY_DATASET',
      ).default('lending_club'),
    )
    .addOption(
      envOption('--seed <n>', 'seed of the split and of every model', 'DISTILLERY_SEED')
        .default(0)
        .argParser(integerAtLeast(0)),
    )
    .addOption(
      envOption(
        '--teacher-epochs <n>',
        'teacher epochs (at most, early stopping) for version 1',
        'DISTILLERY_DEMO_TEACHER_EPOCHS',
      )
        .default(40)
        .argParser(integerAtLeast(1)),
    )
    .addOption(
      envOption(
        '--more-teacher-epochs <n>',
        'further teacher epochs for version 2',
        'DISTILLERY_DEMO_MORE_TEACHER_EPOCHS',
      )
        .default(40)
        .argParser(integerAtLeast(1)),
    )
    .addOption(
      envOption('--temperature <t>', 'softmax temperature of version 1', 'DISTILLERY_TEMPERATURE')
        .default(4)
        .argParser(numberBetween(TEMPERATURE_RANGE.min, TEMPERATURE_RANGE.max)),
    )
    .addOption(
      envOption(
        '--temperature-2 <t>',
        'softmax temperature of version 2',
        'DISTILLERY_TEMPERATURE_2',
      )
        .default(2)
        .argParser(numberBetween(TEMPERATURE_RANGE.min, TEMPERATURE_RANGE.max)),
    )
    .addOption(
      envOption(
        '--student-epochs <n>',
        'student epochs (default: a step budget, see distillery participant --help)',
        'DISTILLERY_DEMO_STUDENT_EPOCHS',
      ).argParser(integerAtLeast(1)),
    )
    .addOption(
      envOption('--participants <ids>', 'participant identities', 'DISTILLERY_PARTICIPANTS')
        .default(['bank-a', 'bank-b'])
        .argParser(parseList),
    );
  addStudentHiddenOption(command);
  return command.action(async (flags: DemoFlags) => {
    const { runDemo } = await import('../demo/run-demo.js');
    await runDemo({
      outDir: flags.out,
      input: flags.input,
      dataset: flags.dataset,
      seed: flags.seed,
      teacherEpochs: [flags.teacherEpochs, flags.moreTeacherEpochs],
      temperatures: [flags.temperature, flags.temperature2],
      ...(flags.studentEpochs ? { studentEpochs: flags.studentEpochs } : {}),
      studentHidden: flags.studentHidden,
      participants: flags.participants,
    });
  });
}
