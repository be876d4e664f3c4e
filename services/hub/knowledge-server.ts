import { Server as GrpcServer } from '@grpc/grpc-js';
import type { Logger } from '../shared/logger.js';
import { CHANNEL_OPTIONS } from '../shared/transport/limits.js';
import { loadKnowledgeProto } from '../shared/transport/proto.js';
import type { Registry } from '../registry/database.js';
import { appendAccess } from '../registry/access-log.js';
import type { Announcer } from './announcer.js';
import { createKnowledgeService } from './knowledge-service.js';
import { listenMtls, type MtlsListener } from './mtls-listener.js';
import { createRefusalRecorder } from './refusal-recorder.js';

/** Options of {@link startKnowledgeServer}. */
export interface KnowledgeServerOptions {
  registry: Registry;
  announcer: Announcer;
  host: string;
  port: number;
  tls: { caPem: string; certPem: string; keyPem: string };
  logger: Logger;
}

/**
 * Serves `distillery.v1.Knowledge` over mutual TLS. Handshakes that fail certificate
 * verification are written to the access log as `handshake` denials, with the identity
 * the client claimed (unverified) and OpenSSL's reason.
 */
export async function startKnowledgeServer(options: KnowledgeServerOptions): Promise<MtlsListener> {
  const { registry, logger } = options;
  const grpcServer = new GrpcServer(CHANNEL_OPTIONS);
  grpcServer.addService(
    loadKnowledgeProto().distillery.v1.Knowledge.service,
    createKnowledgeService({
      registry,
      announcer: options.announcer,
      logger: logger.child({ component: 'grpc' }),
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
  const listener = await listenMtls({
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
  return {
    port: listener.port,
    async close(graceMs) {
      await listener.close(graceMs);
      await refusals.close();
    },
  };
}
