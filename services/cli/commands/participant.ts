import { Command } from 'commander';
import { join, resolve } from 'node:path';
import { createLogger } from '../../shared/logger.js';
import { assertValidIdentity, pkiLayout } from '../../shared/pki/index.js';
import { onShutdownSignal, tellParent } from '../lifecycle.js';
import {
  addDatasetOption,
  addHubClientOptions,
  addStudentHiddenOption,
  addSeedOption,
  addSharedDataFileOptions,
  addTlsFileOptions,
  parseVersionId,
} from '../shared-options.js';
import { envOption, integerAtLeast, numberBetween } from '../options.js';

interface ParticipantFlags {
  id: string;
  hub: string;
  serverName?: string;
  dataDir: string;
  dataset: string;
  ownRows?: string;
  transferRows?: string;
  testRows?: string;
  pkiDir: string;
  caCert?: string;
  cert?: string;
  key?: string;
  stream: string;
  studentHidden: number[];
  epochs?: number;
  alpha: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  exitAfter?: number;
  pin?: string;
  hint?: boolean;
}

/** `distillery participant`: runs a partner bank's node. */
export function participantCommand(): Command {
  const command = addHubClientOptions(
    new Command('participant').description(
      "run a partner bank's node: subscribes to the hub, downloads each knowledge version and distils a student on the bank's own rows",
    ),
  )
    .addOption(
      envOption(
        '--data-dir <dir>',
        "the bank's directory: its data files, downloaded versions and students",
        'DISTILLERY_DATA_DIR',
      ).default('participant-data'),
    )
    .addOption(
      envOption(
        '--own-rows <file>',
        "the bank's labelled rows (default <data-dir>/own.csv)",
        'DISTILLERY_OWN_ROWS',
      ),
    )
    .addOption(
      envOption('--stream <name>', 'knowledge stream to subscribe to', 'DISTILLERY_STREAM').default(
        'default',
      ),
    )
    .addOption(
      envOption(
        '--epochs <n>',
        'student training epochs (default: enough for 500 steps distilling, 150 without teacher)',
        'DISTILLERY_EPOCHS',
      ).argParser(integerAtLeast(1)),
    )
    .addOption(
      envOption('--alpha <a>', "weight of the teacher's soft targets (0-1)", 'DISTILLERY_ALPHA')
        .default(0.9)
        .argParser(numberBetween(0, 1)),
    )
    .addOption(
      envOption('--batch-size <n>', 'training batch size', 'DISTILLERY_BATCH_SIZE')
        .default(256)
        .argParser(integerAtLeast(1)),
    )
    .addOption(
      envOption('--learning-rate <lr>', 'Adam learning rate', 'DISTILLERY_LEARNING_RATE')
        .default(1e-3)
        .argParser(numberBetween(1e-6, 1)),
    )
    .addOption(
      envOption(
        '--exit-after <n>',
        'stop after distilling this many versions',
        'DISTILLERY_EXIT_AFTER',
      ).argParser(integerAtLeast(1)),
    )
    .addOption(
      envOption(
        '--pin <version-id>',
        'keep using this knowledge version: newer announcements, deprecations and rollbacks are recorded in <data-dir>/events.jsonl but not acted on',
        'DISTILLERY_PIN',
      ).argParser(parseVersionId),
    );
  command.addOption(
    envOption(
      '--hint',
      "also match the teacher's hidden-layer activations (FitNets hint loss) when the version carries them",
      'DISTILLERY_HINT',
    ),
  );
  addDatasetOption(command);
  addStudentHiddenOption(command);
  addSeedOption(command, 'seed of student initialisation and shuffling');
  addTlsFileOptions(command, {
    cert: 'client certificate (default <pki-dir>/participants/<id>.crt)',
    key: 'client private key (default <pki-dir>/participants/<id>.key)',
  });
  addSharedDataFileOptions(command, 'labelled rows to evaluate on (default <data-dir>/test.csv)');
  return command.action(async (flags: ParticipantFlags) => {
    const id = assertValidIdentity(flags.id);
    const { startParticipant } = await import('../../participant/participant.js');
    const logger = createLogger({ service: 'participant', bindings: { participant: id } });
    const dataDir = resolve(flags.dataDir);
    const pki = pkiLayout(resolve(flags.pkiDir));
    const participant = await startParticipant({
      id,
      hub: { address: flags.hub, ...(flags.serverName ? { serverName: flags.serverName } : {}) },
      tls: {
        caCert: flags.caCert ?? pki.caCert,
        cert: flags.cert ?? pki.participant(id).cert,
        key: flags.key ?? pki.participant(id).key,
      },
      stream: flags.stream,
      stateDir: dataDir,
      files: {
        dataset: flags.dataset,
        ownRows: flags.ownRows ?? join(dataDir, 'own.csv'),
        transferRows: flags.transferRows ?? join(dataDir, 'transfer.csv'),
        testRows: flags.testRows ?? join(dataDir, 'test.csv'),
      },
      student: {
        hidden: flags.studentHidden,
        ...(flags.epochs ? { epochs: flags.epochs } : {}),
        alpha: flags.alpha,
        batchSize: flags.batchSize,
        learningRate: flags.learningRate,
        seed: flags.seed,
        ...(flags.hint ? { hint: true } : {}),
      },
      ...(flags.exitAfter ? { exitAfter: flags.exitAfter } : {}),
      ...(flags.pin ? { pin: flags.pin } : {}),
      logger,
      onResult: (result) => {
        process.stdout.write(`${JSON.stringify({ type: 'student', ...result })}\n`);
        tellParent({ type: 'student', result });
      },
    });
    onShutdownSignal(logger, () => participant.stop());
    tellParent({ type: 'ready' });
    const results = await participant.done;
    // No process.exit here: on SIGTERM the signal handler finishes the shutdown; after
    // --exit-after the process ends by itself once the hub connection is closed.
    logger.info({ versions: results.length }, 'participant finished');
  });
}
