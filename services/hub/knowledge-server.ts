import { Server as GrpcServer } from '@grpc/grpc-js';
import type { Logger } from '../shared/logger.js';
import { CHANNEL_OPTIONS } from '../shared/transport/limits.js';
import { loadKnowledgeProto } from '../shared/transport/proto.js';
import type { Registry } from '../registry/database.js';
import { appendAccess } from '../registry/access-log.js';
import type { Announcer } from './announcer.js';
import { createKnowledgeService } from './knowledge-service.js';
import { ChunkCache } from './chunk-cache.js';
import { listenMtls, type MtlsListener } from './mtls-listener.js';
import { createRefusalRecorder } from './refusal-recorder.js';
import { generateHubSigningKey } from '../shared/tokens/key-store.js';
import type { TrustSettings } from './call-authority.js';
import { CertificateRevocations } from './revocations.js';
import type { QueryBackend } from './query-service.js';

/** Options of {@link startKnowledgeServer}. */
export interface KnowledgeServerOptions {
  registry: Registry;
  announcer: Announcer;
  host: string;
  port: number;
  tls: { caPem: string; certPem: string; keyPem: string };
  logger: Logger;
  /** Called each time a chunk is read from the registry for a download (metrics, tests). */
  onChunkRead?: (versionId: string, index: number) => void;
  /** How often subscriptions re-read the registry in case a notification was lost. */
  pollMs?: number;
  /** Directory of the hub's local chunk copies (see ChunkCache); none: every read is the registry's. */
  chunkCacheDir?: string;
  /**
   * Participant tokens, certificate admission and revocations (see call-authority.ts).
   * Default: a token key made for this process, issuer `distillery-hub`, certificates
   * admitted on first use, revocations of this process only.
   */
  trust?: Partial<TrustSettings>;
  /** Query mode's teacher access (services/hub/query-service.ts); Query is refused without. */
  query?: QueryBackend;
}

/**
 * Serves `distillery.v1.Knowledge` over mutual TLS. Handshakes that fail certificate
 * verification are written to the access log as `handshake` denials, with the identity
 * the client claimed (unverified) and OpenSSL's reason.
 */
export async function startKnowledgeServer(options: KnowledgeServerOptions): Promise<MtlsListener> {
  const { registry, logger } = options;
  // Wake-ups from the registry: NOTIFYs of other replicas' publications, and a slow poll.
  await options.announcer.attach(registry, logger, options.pollMs);
  const trust: TrustSettings = {
    tokenKey: options.trust?.tokenKey ?? (await generateHubSigningKey()),
    issuer: options.trust?.issuer ?? 'distillery-hub',
    admission: options.trust?.admission ?? 'first-use',
    revocations: options.trust?.revocations ?? new CertificateRevocations(),
    ...(options.trust?.tokenTtlSeconds ? { tokenTtlSeconds: options.trust.tokenTtlSeconds } : {}),
  };
  const grpcServer = new GrpcServer(CHANNEL_OPTIONS);
  grpcServer.addService(
    loadKnowledgeProto().distillery.v1.Knowledge.service,
    createKnowledgeService({
      registry,
      announcer: options.announcer,
      logger: logger.child({ component: 'grpc' }),
      trust,
      ...(options.onChunkRead ? { onChunkRead: options.onChunkRead } : {}),
      ...(options.chunkCacheDir
        ? { chunkCache: new ChunkCache(options.chunkCacheDir, logger) }
        : {}),
      ...(options.query ? { query: options.query } : {}),
    }),
  );
  const refusals = createRefusalRecorder({
    logger,
    write: async (entry) => {
      await appendAccess(registry.prisma, {
        ...entry,
        action: 'handshake',
        resource: 'grpc',
        outcome: 'denied',
      });
    },
  });
  let listener: MtlsListener;
  try {
    listener = await listenMtls({
      host: options.host,
      port: options.port,
      caPem: options.tls.caPem,
      certPem: options.tls.certPem,
      keyPem: options.tls.keyPem,
      grpcServer,
      logger,
      onRefused: async (refusal) => {
        logger.info({ ...refusal }, 'TLS handshake refused');
        await refusals.record(refusal);
      },
    });
  } catch (err) {
    await options.announcer.detach();
    throw err;
  }
  return {
    port: listener.port,
    async close(graceMs) {
      await options.announcer.detach();
      await listener.close(graceMs);
      await refusals.close();
    },
  };
}
