import { Command } from 'commander';
import { join, resolve } from 'node:path';
import { createLogger } from '../../shared/logger.js';
import { hasCode } from '../../shared/errors.js';
import { TEMPERATURE_RANGE } from '../../shared/knowledge/temperature.js';
import { pkiLayout } from '../../shared/pki/index.js';
import { onShutdownSignal, tellParent } from '../lifecycle.js';
import {
  addDatasetOption,
  addSeedOption,
  addSharedDataFileOptions,
  addTlsFileOptions,
} from '../shared-options.js';
import {
  envOption,
  integerAtLeast,
  numberBetween,
  parseList,
  parsePort,
  parseWidths,
} from '../options.js';

interface HubFlags {
  dataDir: string;
  dataset: string;
  privateRows?: string;
  transferRows?: string;
  testRows?: string;
  databaseUrl?: string;
  grpcHost: string;
  grpcPort: number;
  httpHost: string;
  httpPort: number;
  pkiDir: string;
  caCert?: string;
  cert?: string;
  key?: string;
  tokenPublicKey?: string;
  tokenIssuer: string;
  tokenAudience: string;
  enrol: string[];
  teacherHidden: number[];
  seed: number;
  publishOnStart: boolean;
  stream: string;
  epochs: number;
  temperature: number;
  encoding: 'float32' | 'float16' | 'int8';
  hubStudent?: number[];
  certificateAdmission: 'first-use' | 'registered';
  caKey?: string;
  checkpointInterval: number;
}

/** `distillery hub`: runs the teacher owner's hub. */
export function hubCommand(): Command {
  const command = new Command('hub')
    .description(
      "run the teacher owner's hub: trains the teacher on private rows, serves its knowledge over mTLS gRPC and the operator/auditor API over HTTPS",
    )
    .addOption(
      envOption(
        '--data-dir <dir>',
        "the hub's directory: its data files and its state",
        'DISTILLERY_DATA_DIR',
      ).default('hub-data'),
    )
    .addOption(
      envOption(
        '--private-rows <file>',
        'labelled private rows (default <data-dir>/private.csv)',
        'DISTILLERY_PRIVATE_ROWS',
      ),
    )
    .addOption(
      envOption(
        '--database-url <url>',
        'PostgreSQL registry; default: embedded PGlite under <data-dir>/registry',
        'DATABASE_URL',
      ),
    )
    .addOption(
      envOption(
        '--grpc-host <host>',
        'address the gRPC listener binds',
        'DISTILLERY_GRPC_HOST',
      ).default('127.0.0.1'),
    )
    .addOption(
      envOption('--grpc-port <port>', 'gRPC port (0: any free port)', 'DISTILLERY_GRPC_PORT')
        .default(7443)
        .argParser(parsePort),
    )
    .addOption(
      envOption(
        '--http-host <host>',
        'address the HTTPS API binds',
        'DISTILLERY_HTTP_HOST',
      ).default('127.0.0.1'),
    )
    .addOption(
      envOption('--http-port <port>', 'HTTPS API port (0: any free port)', 'DISTILLERY_HTTP_PORT')
        .default(8443)
        .argParser(parsePort),
    )
    .addOption(
      envOption(
        '--token-public-key <file>',
        'key that verifies API tokens (default <pki-dir>/jwt/signing.pub.pem)',
        'DISTILLERY_TOKEN_PUBLIC_KEY',
      ),
    )
    .addOption(
      envOption(
        '--token-issuer <iss>',
        'required `iss` of API tokens',
        'DISTILLERY_TOKEN_ISSUER',
      ).default('distillery-consortium'),
    )
    .addOption(
      envOption(
        '--token-audience <aud>',
        'required `aud` of API tokens',
        'DISTILLERY_TOKEN_AUDIENCE',
      ).default('distillery-hub'),
    )
    .addOption(
      envOption(
        '--enrol <ids>',
        'participants to enrol at start, comma-separated',
        'DISTILLERY_ENROL',
      )
        .default([])
        .argParser(parseList),
    )
    .addOption(
      envOption(
        '--teacher-hidden <widths>',
        'teacher hidden layer widths',
        'DISTILLERY_TEACHER_HIDDEN',
      )
        .default([256, 256])
        .argParser(parseWidths),
    )
    .addOption(
      envOption(
        '--publish-on-start',
        'train and publish a first version when the stream has none',
        'DISTILLERY_PUBLISH_ON_START',
      ).default(false),
    )
    .addOption(
      envOption(
        '--stream <name>',
        'knowledge stream the hub opens at start and --publish-on-start publishes to',
        'DISTILLERY_STREAM',
      ).default('default'),
    )
    .addOption(
      envOption('--epochs <n>', 'teacher epochs for --publish-on-start', 'DISTILLERY_EPOCHS')
        .default(30)
        .argParser(integerAtLeast(1)),
    )
    .addOption(
      envOption(
        '--temperature <t>',
        'softmax temperature for --publish-on-start',
        'DISTILLERY_TEMPERATURE',
      )
        .default(4)
        .argParser(numberBetween(TEMPERATURE_RANGE.min, TEMPERATURE_RANGE.max)),
    )
    .addOption(
      envOption(
        '--encoding <dtype>',
        'encoding of published teacher states: float32, float16 (half the bytes) or int8 (a quarter, per-tensor scale)',
        'DISTILLERY_ENCODING',
      )
        .choices(['float32', 'float16', 'int8'])
        .default('float32'),
    );
  addDatasetOption(command);
  addSeedOption(command, 'seed of the teacher initialisation and validation split');
  addTlsFileOptions(command, {
    cert: 'hub server certificate (default <pki-dir>/hub.crt)',
    key: 'hub private key (default <pki-dir>/hub.key)',
  });
  addSharedDataFileOptions(
    command,
    "labelled test rows for the teacher's test AUC (default <data-dir>/test.csv, if present)",
  );
  command
    .addOption(
      envOption(
        '--certificate-admission <mode>',
        'client certificates of enrolled participants the hub has not recorded: first-use records a CA-verified one on its first call; registered refuses it until an operator registers it',
        'DISTILLERY_CERTIFICATE_ADMISSION',
      )
        .choices(['first-use', 'registered'])
        .default('first-use'),
    )
    .addOption(
      envOption(
        '--ca-key <file>',
        'CA private key; with it, operators approve enrolment requests over the HTTP API',
        'DISTILLERY_CA_KEY',
      ),
    )
    .addOption(
      envOption(
        '--checkpoint-interval <seconds>',
        'how often the hub signs the access log head (also on request)',
        'DISTILLERY_CHECKPOINT_INTERVAL',
      )
        .default(60)
        .argParser(integerAtLeast(1)),
    );
  command.addOption(
    envOption(
      '--hub-student <widths>',
      'also distil a student of these hidden widths on the hub (e.g. 16) and ship it in every version as artefacts student/model.json + student/weights.bin',
      'DISTILLERY_HUB_STUDENT',
    ).argParser(parseWidths),
  );
  return command.action(async (flags: HubFlags) => {
    // Loaded here, not at the top, so that `--help` does not start the training engine.
    const { startHub } = await import('../../hub/hub.js');
    const { createHubStudentHook } = await import('../../hub/hub-student.js');
    const { latestVersion } = await import('../../registry/knowledge.js');
    const logger = createLogger({ service: 'hub' });
    const dataDir = resolve(flags.dataDir);
    const pki = pkiLayout(resolve(flags.pkiDir));
    const hub = await startHub({
      stateDir: dataDir,
      files: {
        dataset: flags.dataset,
        privateRows: flags.privateRows ?? join(dataDir, 'private.csv'),
        transferRows: flags.transferRows ?? join(dataDir, 'transfer.csv'),
        testRows: flags.testRows ?? join(dataDir, 'test.csv'),
      },
      ...(flags.databaseUrl ? { databaseUrl: flags.databaseUrl } : {}),
      grpc: { host: flags.grpcHost, port: flags.grpcPort },
      http: { host: flags.httpHost, port: flags.httpPort },
      tls: {
        caCert: flags.caCert ?? pki.caCert,
        cert: flags.cert ?? pki.hubCert,
        key: flags.key ?? pki.hubKey,
      },
      tokens: {
        publicKey: flags.tokenPublicKey ?? pki.jwtPublicKey,
        issuer: flags.tokenIssuer,
        audience: flags.tokenAudience,
      },
      enrol: flags.enrol,
      streams: [flags.stream],
      encoding: flags.encoding,
      ...(flags.hubStudent
        ? { artefacts: createHubStudentHook({ hidden: flags.hubStudent, seed: flags.seed }) }
        : {}),
      teacher: {
        hidden: flags.teacherHidden,
        dropout: 0.3,
        batchSize: 128,
        learningRate: 1e-3,
        patience: 8,
        seed: flags.seed,
      },
      trust: {
        admission: flags.certificateAdmission,
        checkpointIntervalSeconds: flags.checkpointInterval,
        ...(flags.caKey ? { caKey: flags.caKey } : {}),
      },
      logger,
    });
    onShutdownSignal(logger, () => hub.close());

    if (flags.publishOnStart && !(await latestVersion(hub.registry.prisma, flags.stream))) {
      const published = await hub.publisher
        .publish({
          stream: flags.stream,
          epochs: flags.epochs,
          temperature: flags.temperature,
          hiddenLayers: [`hidden_${flags.teacherHidden.length}`],
          actor: 'hub',
        })
        .then(
          () => true,
          (err: unknown) => {
            // A signal during the first publication cancels it; the shutdown handler exits.
            if (hasCode(err, 'HUB_SHUTTING_DOWN')) return false;
            throw err;
          },
        );
      if (!published) return;
    }
    tellParent({ type: 'ready', grpcPort: hub.grpcPort, httpPort: hub.httpPort });
  });
}
