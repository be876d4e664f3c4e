import type { Logger } from '../shared/logger.js';
import { loadEngine, type Engine } from '../shared/ml/engine.js';
import { createTokenVerifier } from '../shared/tokens/index.js';
import { openRegistry, type Registry } from '../registry/database.js';
import { enrolParticipant } from '../registry/participants.js';
import { ensureStream } from '../registry/knowledge.js';
import { Announcer } from './announcer.js';
import { buildHttpApi, type HttpApi } from './http-api.js';
import { startKnowledgeServer } from './knowledge-server.js';
import { loadHubData, type HubDataFiles } from './hub-data.js';
import { KnowledgePublisher, type TeacherSettings } from './publisher.js';
import { readRequiredFile } from '../shared/config-file.js';

/** Everything a hub needs to start. Paths are the hub operator's own files. */
export interface HubOptions {
  /** The hub's state directory: embedded registry and saved teacher. */
  stateDir: string;
  files: HubDataFiles;
  /** PostgreSQL URL; absent means the embedded PGlite registry under `stateDir`. */
  databaseUrl?: string;
  grpc: { host: string; port: number };
  http: { host: string; port: number };
  tls: { caCert: string; cert: string; key: string };
  tokens: { publicKey: string; issuer: string; audience: string };
  /** Streams that exist from the start, so participants can subscribe before the first
   * version; default `['default']`. Participants cannot create streams. */
  streams?: string[];
  /** Participants enrolled at start (idempotent). */
  enrol: string[];
  teacher: TeacherSettings;
  logger: Logger;
  /** Engine to train with; default: the best that loads. */
  engine?: Engine;
}

/** A started hub. */
export interface RunningHub {
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly registry: Registry;
  readonly publisher: KnowledgePublisher;
  readonly http: HttpApi;
  /** Stops accepting, lets open calls end, closes the registry. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Starts a hub: loads and checks its data, opens the registry (applying migrations),
 * serves `distillery.v1.Knowledge` over mTLS and the operator/auditor API over HTTPS.
 */
export async function startHub(options: HubOptions): Promise<RunningHub> {
  const { logger } = options;
  const [caPem, certPem, keyPem, publicKeyPem] = await Promise.all([
    readRequiredFile(options.tls.caCert, 'CA certificate'),
    readRequiredFile(options.tls.cert, 'hub certificate'),
    readRequiredFile(options.tls.key, 'hub private key'),
    readRequiredFile(options.tokens.publicKey, 'token verification key'),
  ]);
  // The data files first: a bad one stops the hub before it opens the registry or a port.
  const data = loadHubData(options.files, options.teacher.seed, logger);
  const engine = options.engine ?? (await loadEngine({ logger }));
  const registry = await openRegistry({
    ...(options.databaseUrl ? { databaseUrl: options.databaseUrl } : {}),
    dataDir: options.stateDir,
    logger,
  });

  const cleanups: (() => Promise<void>)[] = [() => registry.close()];
  const closeAll = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((err: unknown) => logger.error({ err }, 'shutdown step failed'));
    }
  };

  try {
    for (const id of options.enrol) await enrolParticipant(registry.prisma, { id });
    for (const name of options.streams ?? ['default']) await ensureStream(registry.prisma, name);

    const announcer = new Announcer();
    const publisher = new KnowledgePublisher({
      registry,
      announcer,
      engine,
      data,
      stateDir: options.stateDir,
      teacher: options.teacher,
      logger,
    });
    await publisher.restoreTeacher();
    cleanups.push(async () => publisher.dispose());

    const listener = await startKnowledgeServer({
      registry,
      announcer,
      host: options.grpc.host,
      port: options.grpc.port,
      tls: { caPem, certPem, keyPem },
      logger,
    });
    cleanups.push(() => listener.close());

    const verifier = createTokenVerifier({
      publicKeyPem,
      issuer: options.tokens.issuer,
      audience: options.tokens.audience,
    });
    const http = await buildHttpApi({
      registry,
      publisher,
      verifier,
      logger,
      engine: engine.name,
      https: { key: keyPem, cert: certPem },
    });
    await http.listen({ host: options.http.host, port: options.http.port });
    cleanups.push(() => http.close());
    const address = http.server.address();
    const httpPort = typeof address === 'object' && address ? address.port : options.http.port;
    logger.info(
      { grpcPort: listener.port, httpPort, engine: engine.name, registry: registry.kind },
      'hub ready',
    );

    return {
      grpcPort: listener.port,
      httpPort,
      registry,
      publisher,
      http,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
