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
import { KnowledgePublisher, type ArtefactHook, type TeacherSettings } from './publisher.js';
import { createHubQueryBackend } from './query-service.js';
import type { StateDtype } from '../shared/knowledge/encoding.js';
import { readRequiredFile } from '../shared/config-file.js';
import { join } from 'node:path';
import { loadOrCreateHubSigningKey } from '../shared/tokens/key-store.js';
import { startChainSigning } from '../registry/chain-signing.js';
import { ensureDefaultGrant } from '../registry/grants.js';
import type { CertificateAdmission } from './call-authority.js';
import { CertificateRevocations } from './revocations.js';

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
  /** Encoding of published teacher states (float32, float16, int8); default float32. */
  encoding?: StateDtype;
  /** Artefacts shipped inside every version (see {@link ArtefactHook}). */
  artefacts?: ArtefactHook;
  logger: Logger;
  /** Engine to train with; default: the best that loads. */
  engine?: Engine;
  /** Enrolment, certificates, participant tokens and the signed audit chain (docs/trust.md). */
  trust?: HubTrustOptions;
}

/** Trust settings of a hub; every one optional. */
export interface HubTrustOptions {
  /**
   * How an unrecorded client certificate of an enrolled participant is treated: recorded on
   * first use (default), or refused until registered.
   */
  admission?: CertificateAdmission;
  /** CA private key; with it, operators approve enrolment requests over HTTP. */
  caKey?: string;
  /** Interval of automatic chain-head signatures; default 60 s. */
  checkpointIntervalSeconds?: number;
  /** Lifetime of participant tokens; default 300 s. */
  tokenTtlSeconds?: number;
}

/** A started hub. */
export interface RunningHub {
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly registry: Registry;
  readonly publisher: KnowledgePublisher;
  readonly http: HttpApi;
  /**
   * Cancels a publication in progress (nothing of it is stored), stops accepting, lets open
   * calls end, closes the registry. Safe to call twice.
   */
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
    const streams = options.streams ?? ['default'];
    for (const id of options.enrol) await enrolParticipant(registry.prisma, { id });
    for (const name of streams) await ensureStream(registry.prisma, name);
    // Participants named at start get a full grant on each start-up stream, once: a quick
    // federation works without an operator, and a grant revoked later stays revoked.
    for (const id of options.enrol) {
      for (const name of streams) {
        await ensureDefaultGrant(registry.prisma, id, name, { actor: 'hub:enrol' });
      }
    }

    const trustDir = join(options.stateDir, 'trust');
    const tokenKey = await loadOrCreateHubSigningKey(join(trustDir, 'participant-token.key'));
    const auditKey = await loadOrCreateHubSigningKey(join(trustDir, 'audit-signing.key'));
    const caKeyPem = options.trust?.caKey
      ? await readRequiredFile(options.trust.caKey, 'CA private key')
      : undefined;
    const revocations = new CertificateRevocations();
    const stopSigning = startChainSigning(
      registry.prisma,
      auditKey,
      options.tokens.issuer,
      (options.trust?.checkpointIntervalSeconds ?? 60) * 1000,
      logger,
    );
    cleanups.push(stopSigning);

    const announcer = new Announcer();
    const publisher = new KnowledgePublisher({
      registry,
      announcer,
      engine,
      data,
      stateDir: options.stateDir,
      teacher: options.teacher,
      logger,
      ...(options.encoding ? { encoding: options.encoding } : {}),
      ...(options.artefacts ? { artefacts: options.artefacts } : {}),
    });
    await publisher.restoreTeacher();
    cleanups.push(async () => publisher.dispose());
    const queryBackend = createHubQueryBackend({
      engine,
      data,
      teacher: () => publisher.currentTeacher(),
      seed: options.teacher.seed,
      logger: logger.child({ component: 'query' }),
    });
    cleanups.push(async () => queryBackend.dispose());

    const listener = await startKnowledgeServer({
      registry,
      announcer,
      host: options.grpc.host,
      port: options.grpc.port,
      tls: { caPem, certPem, keyPem },
      logger,
      chunkCacheDir: join(options.stateDir, 'chunk-cache'),
      query: queryBackend,
      trust: {
        tokenKey,
        issuer: options.tokens.issuer,
        admission: options.trust?.admission ?? 'first-use',
        revocations,
        ...(options.trust?.tokenTtlSeconds
          ? { tokenTtlSeconds: options.trust.tokenTtlSeconds }
          : {}),
      },
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
      trust: {
        caCertPem: caPem,
        ...(caKeyPem ? { caKeyPem } : {}),
        auditKey,
        issuer: options.tokens.issuer,
        revocations,
      },
    });
    await http.listen({ host: options.http.host, port: options.http.port });
    cleanups.push(() => http.close());
    // Runs first on close: the publication in progress is cancelled, so that the HTTP server,
    // which waits for its request, closes well within the shutdown grace, and nothing writes
    // to the registry once it is closed.
    cleanups.push(() => publisher.stop());
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
