import { InvalidArgumentError, type Command } from 'commander';
import { envOption, integerAtLeast, parseAddress, parseWidths } from './options.js';

/**
 * Options that several commands take with the same meaning and environment variable, so
 * that `--dataset` or `DISTILLERY_PKI_DIR` means one thing everywhere.
 */

/** `--dataset`: the schema of the data files. */
export function addDatasetOption(command: Command): Command {
  return command.addOption(
    envOption(
      '--dataset <name>',
      'schema of the data files: lending_club or credit_data',
      'DISTILLERY_DATASET',
    ).default('lending_club'),
  );
}

/** `--seed`, described for the command that takes it. */
export function addSeedOption(command: Command, what: string): Command {
  return command.addOption(
    envOption('--seed <n>', what, 'DISTILLERY_SEED').default(0).argParser(integerAtLeast(0)),
  );
}

/**
 * `--pki-dir`, `--ca-cert`, `--cert` and `--key`: the consortium CA and this process's own
 * certificate and key. The defaults are the paths `distillery pki init` writes.
 */
export function addTlsFileOptions(command: Command, own: { cert: string; key: string }): Command {
  return command
    .addOption(
      envOption(
        '--pki-dir <dir>',
        'directory written by `distillery pki init`',
        'DISTILLERY_PKI_DIR',
      ).default('pki'),
    )
    .addOption(
      envOption(
        '--ca-cert <file>',
        'consortium CA certificate (default <pki-dir>/ca.crt)',
        'DISTILLERY_CA_CERT',
      ),
    )
    .addOption(envOption('--cert <file>', own.cert, 'DISTILLERY_CERT'))
    .addOption(envOption('--key <file>', own.key, 'DISTILLERY_KEY'));
}

/** `--transfer-rows` and `--test-rows`, files inside the party's data directory. */
export function addSharedDataFileOptions(command: Command, testRows: string): Command {
  return command
    .addOption(
      envOption(
        '--transfer-rows <file>',
        'the consortium transfer set (default <data-dir>/transfer.csv)',
        'DISTILLERY_TRANSFER_ROWS',
      ),
    )
    .addOption(envOption('--test-rows <file>', testRows, 'DISTILLERY_TEST_ROWS'));
}

/** `--student-hidden`: widths of the student's hidden layers. */
export function addStudentHiddenOption(command: Command): Command {
  return command.addOption(
    envOption(
      '--student-hidden <widths>',
      'student hidden layer widths',
      'DISTILLERY_STUDENT_HIDDEN',
    )
      .default([16])
      .argParser(parseWidths),
  );
}

/**
 * `--id`, `--hub` and `--server-name`: who this participant is and which hub it connects to,
 * for the commands that run as a partner bank against the hub.
 */
export function addHubClientOptions(command: Command): Command {
  return command
    .addOption(
      envOption(
        '--id <identity>',
        "this participant's identity, as in its certificate",
        'DISTILLERY_PARTICIPANT_ID',
      ).makeOptionMandatory(),
    )
    .addOption(
      envOption('--hub <host:port>', "the hub's gRPC address", 'DISTILLERY_HUB')
        .default('127.0.0.1:7443')
        .argParser(parseAddress),
    )
    .addOption(
      envOption(
        '--server-name <name>',
        "name to check the hub's certificate against (default: the host)",
        'DISTILLERY_HUB_SERVER_NAME',
      ),
    );
}

/** Parses a knowledge version id: 64 lowercase hex digits. */
export function parseVersionId(value: string): string {
  if (!/^[0-9a-f]{64}$/.test(value)) {
    throw new InvalidArgumentError('a version id is 64 lowercase hex digits');
  }
  return value;
}
