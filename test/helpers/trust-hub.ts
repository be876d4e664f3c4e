import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger } from '../../services/shared/logger.js';
import { loadEngine } from '../../services/shared/ml/engine.js';
import { issueAccessToken, type Role } from '../../services/shared/tokens/index.js';
import { loadKnowledgeProto, type KnowledgeClient } from '../../services/shared/transport/proto.js';
import { CHANNEL_OPTIONS } from '../../services/shared/transport/limits.js';
import { callHubApi, callHubApiText } from '../../services/cli/https-client.js';
import { startHub, type HubTrustOptions, type RunningHub } from '../../services/hub/hub.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { initDevelopmentPki, type PkiLayout } from '../../services/shared/pki/index.js';
import { splitFederation } from '../../services/cli/demo/split-federation.js';
import { fixtureHubOptions } from './federation.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export const ISSUER = 'https://hub.test';
export const AUDIENCE = 'distillery-hub-api';

/** A real hub (startHub) with a development PKI, over real mTLS and HTTPS. */
export interface TrustHub {
  fixture: { dir: string; pki: PkiLayout; remove(): Promise<void> };
  hub: RunningHub;
  address: string;
  baseUrl: string;
  caPem: string;
  database: TestDatabase | null;
  /** An HTTP API token of `role` signed with the consortium's token key. */
  apiToken(role: Role, subject?: string): Promise<string>;
  /** Calls the HTTPS API. */
  api<T = any>(
    method: 'GET' | 'POST',
    path: string,
    token: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }>;
  apiText(path: string, token: string): Promise<{ status: number; text: string }>;
  /** A raw gRPC client with a client certificate (PEM strings). */
  grpc(cert: { certPem: string; keyPem: string }): KnowledgeClient;
  /** The certificate files of a participant of the PKI. */
  participantCert(id: string): Promise<{ certPem: string; keyPem: string }>;
  close(): Promise<void>;
}

/**
 * Starts a hub on PostgreSQL when DATABASE_URL is set, else on embedded PGlite, with the
 * participants `enrolled` given full default grants, and publishes `versions` real teacher
 * versions (hidden layers hidden_1 and hidden_2).
 */
export async function startTrustHub(options: {
  purpose: string;
  participants: string[];
  enrolled: string[];
  versions: number;
  trust?: HubTrustOptions;
}): Promise<TrustHub> {
  const logger = silentLogger();
  const dir = await mkdtemp(join(tmpdir(), `distillery-${options.purpose}-`));
  const pki = await initDevelopmentPki(join(dir, 'pki'), { participants: options.participants });
  // The hub's rows only: participants' own rows play no part in access control.
  const split = splitFederation({
    input: 'data/lending_club.csv',
    dataset: 'lending_club',
    outDir: join(dir, 'parties'),
    seed: 5,
    participants: [],
  });
  const fixture = { dir, pki, remove: () => rm(dir, { recursive: true, force: true }) };
  // Operator and auditor client certificates, to show they open no participant call.
  const { issueParticipantFiles } = await import('../../services/shared/pki/index.js');
  await issueParticipantFiles(pki.dir, 'op-1', { role: 'operator' });
  await issueParticipantFiles(pki.dir, 'aud-1', { role: 'auditor' });
  const database = process.env.DATABASE_URL ? await createTestDatabase() : null;
  const hub = await startHub({
    ...fixtureHubOptions({ dir, pki, split }, { issuer: ISSUER, audience: AUDIENCE }),
    databaseUrl: database?.url ?? 'memory://',
    enrol: options.enrolled,
    teacher: {
      hidden: [8, 8],
      dropout: 0,
      batchSize: 256,
      learningRate: 1e-3,
      patience: 1,
      seed: 5,
    },
    logger,
    engine: await loadEngine({ logger }),
    trust: { caKey: pki.caKey, checkpointIntervalSeconds: 3600, ...options.trust },
  });
  for (let i = 0; i < options.versions; i++) {
    await hub.publisher.publish({
      stream: 'default',
      epochs: 1,
      temperature: 4,
      hiddenLayers: ['hidden_1', 'hidden_2'],
      fresh: i === 0,
      actor: 'test',
    });
  }
  const caPem = await readFile(pki.caCert, 'utf8');
  const signingKey = await readFile(pki.jwtPrivateKey, 'utf8');
  const baseUrl = `https://127.0.0.1:${hub.httpPort}`;
  const proto = loadKnowledgeProto();
  const clients: KnowledgeClient[] = [];

  return {
    fixture,
    hub,
    address: `localhost:${hub.grpcPort}`,
    baseUrl,
    caPem,
    database,
    apiToken: (role, subject) =>
      issueAccessToken({
        privateKeyPem: signingKey,
        issuer: ISSUER,
        audience: AUDIENCE,
        subject: subject ?? `${role}-1`,
        role,
      }),
    api: (method, path, token, body) =>
      callHubApi({ baseUrl, caPem, token, method, path, ...(body !== undefined ? { body } : {}) }),
    apiText: (path, token) => callHubApiText({ baseUrl, caPem, token, method: 'GET', path }),
    grpc: (cert) => {
      const client = new proto.distillery.v1.Knowledge(
        `localhost:${hub.grpcPort}`,
        credentials.createSsl(
          Buffer.from(caPem),
          Buffer.from(cert.keyPem),
          Buffer.from(cert.certPem),
        ),
        CHANNEL_OPTIONS,
      );
      clients.push(client);
      return client;
    },
    participantCert: async (id) => ({
      certPem: await readFile(pki.participant(id).cert, 'utf8'),
      keyPem: await readFile(pki.participant(id).key, 'utf8'),
    }),
    async close() {
      for (const client of clients) client.close();
      await hub.close();
      await database?.drop();
      await fixture.remove();
    },
  };
}

/** Metadata carrying `authorization: Bearer <token>` (and any extra pairs). */
export function bearer(token: string | null, extra: Record<string, string> = {}): Metadata {
  const metadata = new Metadata();
  if (token !== null) metadata.set('authorization', `Bearer ${token}`);
  for (const [key, value] of Object.entries(extra)) metadata.set(key, value);
  return metadata;
}

/** IssueToken over a raw client. */
export function issueToken(client: KnowledgeClient): Promise<string> {
  return new Promise((resolve, reject) =>
    client.IssueToken({}, { deadline: Date.now() + 10_000 }, (err, res) =>
      err || !res ? reject(err) : resolve(res.accessToken),
    ),
  );
}

/** GetManifest over a raw client; the error or the manifest JSON. */
export function getManifest(
  client: KnowledgeClient,
  versionId: string,
  metadata: Metadata,
): Promise<{ err: ServiceError | null; manifest: Buffer | null }> {
  return new Promise((resolve) =>
    client.GetManifest({ versionId }, metadata, { deadline: Date.now() + 10_000 }, (err, res) =>
      resolve({ err: err ?? null, manifest: res?.manifestJson ?? null }),
    ),
  );
}

/** Reads a server stream to its end: what arrived and the error it ended with. */
export async function drainStream<T>(
  stream: AsyncIterable<T>,
  limit = Infinity,
): Promise<{ items: T[]; err: ServiceError | null }> {
  const items: T[] = [];
  try {
    for await (const item of stream) {
      items.push(item);
      if (items.length >= limit) break;
    }
  } catch (err) {
    return { items, err: err as ServiceError };
  }
  return { items, err: null };
}
