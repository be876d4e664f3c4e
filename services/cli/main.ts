import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { isDistilleryError } from '../shared/errors.js';
import { auditCommand } from './commands/audit.js';
import { demoCommand } from './commands/demo.js';
import { hubCommand } from './commands/hub.js';
import { participantCommand } from './commands/participant.js';
import { queryCommand } from './commands/query.js';
import { pkiCommand } from './commands/pki.js';
import { grantCommand } from './commands/grant.js';
import { streamCommand } from './commands/stream.js';
import { splitCommand } from './commands/split.js';
import { studentsCommand } from './commands/students.js';

/** Builds the `distillery` command tree (exported so tests can check it against docs). */
export function buildProgram(): Command {
  return new Command('distillery')
    .description(
      'Federated knowledge distillation: share what a teacher model knows, never its data.',
    )
    .version('0.1.0')
    .showHelpAfterError()
    .addCommand(hubCommand())
    .addCommand(participantCommand())
    .addCommand(queryCommand())
    .addCommand(pkiCommand())
    .addCommand(grantCommand())
    .addCommand(streamCommand())
    .addCommand(auditCommand())
    .addCommand(demoCommand())
    .addCommand(splitCommand())
    .addCommand(studentsCommand());
}

/** Runs the CLI; errors become one clear line on standard error and exit code 1. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram().exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    // Commander printed its own parse errors already; an InvalidArgumentError thrown inside
    // an action reaches here unprinted, so it is printed like any other error.
    if (err instanceof CommanderError && !(err instanceof InvalidArgumentError)) {
      process.exit(err.exitCode);
    }
    const message = isDistilleryError(err)
      ? `${err.code}: ${err.message}`
      : err instanceof Error
        ? err.message
        : String(err);
    process.stderr.write(`distillery: ${message}\n`);
    if (process.env.DISTILLERY_DEBUG && err instanceof Error)
      process.stderr.write(`${err.stack}\n`);
    process.exit(1);
  }
}
