import { credentials, status as GrpcStatus } from '@grpc/grpc-js';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/shared/logger.js';
import { hasCode } from '../../services/shared/errors.js';
import {
  createCertificateAuthority,
  initDevelopmentPki,
  issueClientCertificate,
  type PkiLayout,
} from '../../services/shared/pki/index.js';
import { loadKnowledgeProto } from '../../services/shared/transport/proto.js';
import { CHANNEL_OPTIONS } from '../../services/shared/transport/limits.js';
import { openRegistry, type Registry } from '../../services/registry/database.js';
import { queryAccessLog } from '../../services/registry/access-log.js';
import { enrolParticipant } from '../../services/registry/participants.js';
import { ensureDefaultGrant } from '../../services/registry/grants.js';
import { ensureStream } from '../../services/registry/knowledge.js';
import { Announcer } from '../../services/hub/announcer.js';
import { startKnowledgeServer } from '../../services/hub/knowledge-server.js';
import { MAX_OPEN_CALLS } from '../../services/hub/knowledge-service.js';
import type { MtlsListener } from '../../services/hub/mtls-listener.js';
import type { HubClient } from '../../services/participant/hub-client.js';
import { downloadVersion } from '../../services/participant/downloader.js';
import { LocalStore } from '../../services/participant/local-store.js';
import { databaseTargets } from '../helpers/database.js';
import {
  buildVersionOf,
  hubClientFor,
  hubTlsPems,
  publishBuilt,
  stateTensors,
  type BuiltVersion,
} from '../helpers/versions.js';

const logger = silentLogger();

/** Reads a server stream to its end; the error it ended with, or undefined. */
async function errorOfStream(stream: AsyncIterable<unknown>): Promise<unknown> {
  try {
    for await (const _ of stream) void _;
  } catch (err) {
    return err;
  }
  return undefined;
}

/** Registries to run against: PGlite always, PostgreSQL when DATABASE_URL names one. */
const targets = databaseTargets();

/** A synthetic version: logits and one hidden layer of `rows` rows, cut into chunks of `chunkBytes`. */
function buildVersion(
  stream: string,
  parentId: string | null,
  rows: number,
  chunkBytes: number,
  fill: number,
): BuiltVersion {
  return buildVersionOf(stream, parentId, stateTensors(rows, fill), chunkBytes, 'float32', rows);
}

describe.each(targets)('knowledge transport over mTLS gRPC ($name registry)', (target) => {
  let dir: string;
  let pki: PkiLayout;
  let database: { url: string; drop(): Promise<void> };
  let registry: Registry;
  let announcer: Announcer;
  let server: MtlsListener;
  let address: string;
  let v1: ReturnType<typeof buildVersion>;

  const clientFor = (identity: string): Promise<HubClient> => hubClientFor(pki, identity, address);

  const publish = async (version: ReturnType<typeof buildVersion>) => {
    const stored = await publishBuilt(registry.prisma, version);
    announcer.announce({ stream: 'default', sequence: stored.sequence });
    return stored;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'distillery-transport-'));
    pki = await initDevelopmentPki(join(dir, 'pki'), {
      participants: ['bank-a', 'bank-b', 'bank-c'],
    });
    database = await target.url();
    registry = await openRegistry({ databaseUrl: database.url, logger });
    await enrolParticipant(registry.prisma, { id: 'bank-a' });
    await enrolParticipant(registry.prisma, { id: 'bank-b' });
    await ensureStream(registry.prisma, 'default');
    for (const id of ['bank-a', 'bank-b']) {
      await ensureDefaultGrant(registry.prisma, id, 'default', { actor: 'test' });
    }
    announcer = new Announcer();
    server = await startKnowledgeServer({
      registry,
      announcer,
      host: '127.0.0.1',
      port: 0,
      tls: await hubTlsPems(pki),
      logger,
    });
    address = `localhost:${server.port}`;
    // 3.5 MB of tensors in 512 KiB chunks: several chunks, none near the 4 MiB limit.
    v1 = buildVersion('default', null, 13_000, 512 * 1024, 1);
    await publish(v1);
  });

  afterAll(async () => {
    await server?.close(500);
    await registry?.close();
    await database?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('announces published versions to a subscriber, then new ones as they are published', async () => {
    const client = await clientFor('bank-a');
    const stream = client.subscribe('default', 0);
    const received: string[] = [];
    const iterator = (stream as AsyncIterable<{ versionId: string; sequence: string }>)[
      Symbol.asyncIterator
    ]();

    const first = await iterator.next();
    received.push(first.value.versionId);
    const v2 = buildVersion('default', v1.id, 100, 512 * 1024, 2);
    await publish(v2);
    const second = await iterator.next();
    received.push(second.value.versionId);
    stream.cancel();
    client.close();

    expect(received).toEqual([v1.id, v2.id]);
    expect(second.value.sequence).toBe('2');
  });

  it('answers NOT_FOUND to a subscription of a stream the hub does not have, creating none', async () => {
    const client = await clientFor('bank-a');
    const stream = client.subscribe('made-up-stream', 0);
    const error = await errorOfStream(stream);
    client.close();
    expect(error).toMatchObject({ code: GrpcStatus.NOT_FOUND });
    const made = await registry.prisma.knowledgeStream.findUnique({
      where: { name: 'made-up-stream' },
    });
    expect(made).toBeNull();
  });

  it('resumes a subscription after the last sequence it saw', async () => {
    const client = await clientFor('bank-b');
    const stream = client.subscribe('default', 1);
    const iterator = (stream as AsyncIterable<{ sequence: string }>)[Symbol.asyncIterator]();
    const next = await iterator.next();
    stream.cancel();
    client.close();
    expect(next.value.sequence).toBe('2');
  });

  it('downloads a version in verified chunks and records each access with the certificate identity', async () => {
    const client = await clientFor('bank-a');
    const store = new LocalStore(join(dir, 'bank-a-full'));
    const downloaded = await downloadVersion(client, store, v1.id, logger);
    client.close();

    expect(downloaded.manifest.chunks).toHaveLength(v1.packed.chunks.length);
    expect(v1.packed.chunks.length).toBeGreaterThan(4);
    expect(
      Buffer.from(downloaded.blob).equals(Buffer.concat(v1.packed.chunks.map((c) => c.data))),
    ).toBe(true);

    const log = await queryAccessLog(registry.prisma, {
      actor: 'bank-a',
      resource: `version:${v1.id}`,
    });
    expect(log.entries.map((e) => `${e.action}/${e.outcome}`)).toEqual(
      expect.arrayContaining(['manifest/allowed', 'download/allowed']),
    );
  });

  it('resumes an interrupted download after the last verified chunk, byte for byte', async () => {
    const store = new LocalStore(join(dir, 'bank-b-resume'));
    const whole = Buffer.concat(v1.packed.chunks.map((c) => c.data));
    // Two verified chunks held, and a third cut short, as a crash mid-write leaves it.
    const [c0, c1, c2] = v1.packed.chunks;
    await store.writeChunk(c0!.sha256, c0!.data);
    await store.writeChunk(c1!.sha256, c1!.data);
    await mkdir(dirname(store.chunkPath(c2!.sha256)), { recursive: true });
    await writeFile(store.chunkPath(c2!.sha256), c2!.data.subarray(0, 1000));

    const client = await clientFor('bank-b');
    const downloaded = await downloadVersion(client, store, v1.id, logger);
    client.close();
    // The short third chunk passed for held, failed verification and was fetched again.
    expect(downloaded.chunksHeld).toBe(3);
    expect(downloaded.bytesReceived).toBe(
      whole.byteLength - c0!.data.byteLength - c1!.data.byteLength,
    );
    expect(Buffer.from(downloaded.blob).equals(whole)).toBe(true);
  });

  it('rejects a chunk whose bytes do not match the manifest and keeps no corrupt chunk', async () => {
    const bad = buildVersion('default', null, 3000, 8 * 1024, 7);
    await publish(bad);
    await registry.prisma.$executeRawUnsafe(
      `UPDATE "chunk_blob" SET "data" = decode('00ff00ff', 'hex')
       WHERE "sha256" = (SELECT "sha256" FROM "version_chunk" WHERE "version_id" = $1 AND "index" = 1)`,
      bad.id,
    );
    const store = new LocalStore(join(dir, 'bank-a-bad'));
    const client = await clientFor('bank-a');
    const error = await downloadVersion(client, store, bad.id, logger).catch((e: unknown) => e);
    client.close();
    expect(hasCode(error, 'CHUNK_HASH_MISMATCH')).toBe(true);
    expect(store.hasChunk(bad.manifest.chunks[1]!)).toBe(false);
    expect(store.hasChunk(bad.manifest.chunks[0]!)).toBe(true);
  });

  it('answers NOT_FOUND naming an unknown version, and INVALID_ARGUMENT for a malformed id', async () => {
    const client = await clientFor('bank-a');
    const unknown = 'c'.repeat(64);
    const notFound = await client
      .getManifest(unknown)
      .catch((e: { code: number; details: string }) => e);
    const malformed = await client
      .getManifest('not-a-version')
      .catch((e: { code: number; details: string }) => e);
    client.close();
    expect(notFound).toMatchObject({ code: GrpcStatus.NOT_FOUND });
    expect((notFound as { details: string }).details).toContain(unknown);
    expect(malformed).toMatchObject({ code: GrpcStatus.INVALID_ARGUMENT });
    const log = await queryAccessLog(registry.prisma, { actor: 'bank-a', outcome: 'error' });
    expect(log.entries.some((e) => e.resource === `version:${unknown}`)).toBe(true);
  });

  it('answers OUT_OF_RANGE for a chunk index past the end', async () => {
    const client = await clientFor('bank-a');
    const stream = client.fetchChunks(v1.id, 10_000);
    const error = await errorOfStream(stream);
    client.close();
    expect(error).toMatchObject({ code: GrpcStatus.OUT_OF_RANGE });
  });

  it(`refuses a participant more than ${MAX_OPEN_CALLS.subscriptions} open subscriptions`, async () => {
    const client = await clientFor('bank-b');
    const streams = Array.from({ length: MAX_OPEN_CALLS.subscriptions }, () =>
      client.subscribe('default', 0),
    );
    // Each is open once its backlog arrives.
    await Promise.all(
      streams.map((s) => (s as AsyncIterable<unknown>)[Symbol.asyncIterator]().next()),
    );
    const extra = client.subscribe('default', 0);
    const error = await errorOfStream(extra);
    for (const s of streams) s.cancel();
    client.close();
    expect(error).toMatchObject({ code: GrpcStatus.RESOURCE_EXHAUSTED });
  });

  it('refuses a participant with a valid certificate that is not enrolled, and logs it', async () => {
    const client = await clientFor('bank-c');
    const error = await client.getManifest(v1.id).catch((e: unknown) => e);
    client.close();
    expect(error).toMatchObject({ code: GrpcStatus.PERMISSION_DENIED });
    const log = await queryAccessLog(registry.prisma, { actor: 'bank-c', outcome: 'denied' });
    expect(log.entries).toHaveLength(1);
    expect(log.entries[0].reason).toBe('not enrolled');
  });

  describe('refused at the TLS handshake, each refusal logged', () => {
    const attempt = async (channel: ReturnType<typeof credentials.createSsl>) => {
      const stub = new (loadKnowledgeProto().distillery.v1.Knowledge)(
        address,
        channel,
        CHANNEL_OPTIONS,
      );
      const result = await new Promise<{ code: number; served: boolean }>((resolve) => {
        stub.GetManifest({ versionId: v1.id }, { deadline: Date.now() + 5000 }, (err, res) =>
          resolve({ code: err?.code ?? 0, served: Boolean(res) }),
        );
      });
      stub.close();
      return result;
    };
    const handshakeDenials = async () =>
      (
        await queryAccessLog(registry.prisma, {
          action: 'handshake',
          outcome: 'denied',
          limit: 1000,
        })
      ).entries;
    // grpc-js may retry a refused channel in the background for a moment after it is
    // closed, so a test looks for its own refusal among the new entries, not at the last.
    const newDenials = async (before: number) => (await handshakeDenials()).slice(before);

    it('refuses a client without a certificate', async () => {
      const before = (await handshakeDenials()).length;
      const result = await attempt(credentials.createSsl(await readFile(pki.caCert)));
      expect(result.served).toBe(false);
      expect(result.code).toBe(GrpcStatus.UNAVAILABLE);
      expect(await newDenials(before)).toContainEqual(
        expect.objectContaining({ actor: 'anonymous', reason: 'NO_CLIENT_CERTIFICATE' }),
      );
    });

    it('refuses a certificate from another CA, even one naming an enrolled participant', async () => {
      const rogueCa = await createCertificateAuthority({ commonName: 'Rogue CA' });
      const rogue = await issueClientCertificate(rogueCa, { identity: 'bank-a' });
      const before = (await handshakeDenials()).length;
      const result = await attempt(
        credentials.createSsl(
          await readFile(pki.caCert),
          Buffer.from(rogue.keyPem),
          Buffer.from(rogue.certPem),
        ),
      );
      expect(result.served).toBe(false);
      const mine = (await newDenials(before)).filter((e) => e.actor === 'unverified:bank-a');
      expect(mine.length).toBeGreaterThanOrEqual(1);
      expect(mine[0].reason).toMatch(/UNABLE_TO_(GET_ISSUER_CERT|VERIFY_LEAF_SIGNATURE)/);
    });

    it('refuses an expired certificate from the right CA', async () => {
      const ca = {
        certPem: await readFile(pki.caCert, 'utf8'),
        keyPem: await readFile(pki.caKey, 'utf8'),
      };
      const expired = await issueClientCertificate(ca, {
        identity: 'bank-b',
        notBefore: new Date(Date.now() - 10 * 86_400_000),
        notAfter: new Date(Date.now() - 86_400_000),
      });
      const before = (await handshakeDenials()).length;
      const result = await attempt(
        credentials.createSsl(
          await readFile(pki.caCert),
          Buffer.from(expired.keyPem),
          Buffer.from(expired.certPem),
        ),
      );
      expect(result.served).toBe(false);
      expect(await newDenials(before)).toContainEqual(
        expect.objectContaining({ actor: 'unverified:bank-b', reason: 'CERT_HAS_EXPIRED' }),
      );
    });
  });
});
