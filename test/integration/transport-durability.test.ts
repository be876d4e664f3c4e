import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../../services/shared/logger.js';
import { initDevelopmentPki, type PkiLayout } from '../../services/shared/pki/index.js';
import type { Announcement__Output } from '../../services/shared/transport/proto.js';
import { openRegistry, type Registry } from '../../services/registry/database.js';
import { enrolParticipant } from '../../services/registry/participants.js';
import { ensureDefaultGrant } from '../../services/registry/grants.js';
import { ensureStream } from '../../services/registry/knowledge.js';
import { deprecateVersion, rollbackStream } from '../../services/registry/stream-events.js';
import { Announcer } from '../../services/hub/announcer.js';
import { generateHubSigningKey } from '../../services/shared/tokens/key-store.js';
import { startKnowledgeServer } from '../../services/hub/knowledge-server.js';
import type { MtlsListener } from '../../services/hub/mtls-listener.js';
import { LocalStore } from '../../services/participant/local-store.js';
import { followStream } from '../../services/participant/stream-follower.js';
import { databaseTargets } from '../helpers/database.js';
import {
  buildVersionOf,
  hubClientFor,
  hubTlsPems,
  publishBuilt,
  stateTensors,
  type BuiltVersion,
} from '../helpers/versions.js';
import { until } from '../helpers/wait.js';

const logger = process.env.TEST_LOG ? createLogger({ service: 'test' }) : silentLogger();

/** A TCP port free now, so that a restarted server can listen where the first one did. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

const targets = databaseTargets();

describe.each(targets)('durable stream events ($name registry)', (target) => {
  let dir: string;
  let pki: PkiLayout;
  let database: { url: string; drop(): Promise<void> };
  let registry: Registry;
  let port: number;
  let tokenKey: Awaited<ReturnType<typeof generateHubSigningKey>>;

  const startServer = async (pollMs?: number, on: Registry = registry): Promise<MtlsListener> =>
    startKnowledgeServer({
      registry: on,
      announcer: new Announcer(),
      host: '127.0.0.1',
      port,
      tls: await hubTlsPems(pki),
      logger,
      // One token key across restarts, as a hub keeps its key in its state directory.
      trust: { tokenKey },
      ...(pollMs ? { pollMs } : {}),
    });

  const version = (stream: string, parent: BuiltVersion | null, fill: number) =>
    buildVersionOf(stream, parent?.id ?? null, stateTensors(50, fill), 4096);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'distillery-durable-'));
    pki = await initDevelopmentPki(join(dir, 'pki'), { participants: ['bank-a'] });
    database = await target.url();
    registry = await openRegistry({ databaseUrl: database.url, logger });
    await enrolParticipant(registry.prisma, { id: 'bank-a' });
    for (const stream of ['restart', 'replicas']) {
      await ensureStream(registry.prisma, stream);
      await ensureDefaultGrant(registry.prisma, 'bank-a', stream, { actor: 'test' });
    }
    port = await freePort();
    tokenKey = await generateHubSigningKey();
  });

  afterAll(async () => {
    await registry?.close();
    await database?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('delivers every event published while the hub was down, in order, exactly once', async () => {
    const v1 = version('restart', null, 1);
    await publishBuilt(registry.prisma, v1);
    let server = await startServer();
    const store = new LocalStore(join(dir, 'follower'));
    const client = await hubClientFor(pki, 'bank-a', `localhost:${port}`);
    const seen: Announcement__Output[] = [];
    const follower = followStream({
      client,
      store,
      stream: 'restart',
      logger,
      backoffMs: { initial: 50, max: 400 },
      onEvent: async (event) => {
        seen.push(event);
        return { action: 'recorded', activeVersionId: event.currentVersionId };
      },
    });
    await until(() => seen.length === 1, 20_000, 'the first event');

    // The hub goes away; while it is down a version is published, another published and
    // deprecated, and the stream rolled back: four events the participant has not seen.
    await server.close(0);
    const v2 = version('restart', v1, 2);
    const v3 = version('restart', v2, 3);
    await publishBuilt(registry.prisma, v2);
    await publishBuilt(registry.prisma, v3);
    await deprecateVersion(registry.prisma, { versionId: v3.id, actor: 'ops', reason: 'drift' });
    await rollbackStream(registry.prisma, { stream: 'restart', versionId: v1.id, actor: 'ops' });
    // Long enough for the participant to have failed to reconnect at least once.
    await new Promise((r) => setTimeout(r, 600));

    server = await startServer();
    await until(() => seen.length >= 5, 20_000, 'the events published while away');
    // One more, live, after the reconnection.
    const v4 = version('restart', v1, 4);
    await publishBuilt(registry.prisma, v4);
    await until(() => seen.length >= 6, 20_000, 'the live event');
    await follower.stop();
    client.close();
    await server.close(0);

    expect(seen.map((e) => [Number(e.sequence), e.event, e.versionId, e.currentVersionId])).toEqual(
      [
        [1, 'published', v1.id, v1.id],
        [2, 'published', v2.id, v2.id],
        [3, 'published', v3.id, v3.id],
        [4, 'deprecated', v3.id, v2.id],
        [5, 'rolled_back', v1.id, v1.id],
        [6, 'published', v4.id, v4.id],
      ],
    );
    expect(seen[3]!.reason).toBe('drift');
    const recorded = await store.readEvents();
    expect(recorded.map((e) => e.sequence)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await store.readState('restart')).toMatchObject({
      lastSequence: 6,
      activeVersionId: v4.id,
    });

    // A node restarted later resumes after the last event it handled: nothing is repeated.
    const again: Announcement__Output[] = [];
    server = await startServer();
    const client2 = await hubClientFor(pki, 'bank-a', `localhost:${port}`);
    const resumed = followStream({
      client: client2,
      store,
      stream: 'restart',
      logger,
      onEvent: async (event) => {
        again.push(event);
        return { action: 'recorded', stop: true };
      },
    });
    const v5 = version('restart', v4, 5);
    // Give the subscription time to open and replay (nothing) before the next version.
    await new Promise((r) => setTimeout(r, 500));
    await publishBuilt(registry.prisma, v5);
    await resumed.done;
    client2.close();
    await server.close(0);
    expect(again.map((e) => Number(e.sequence))).toEqual([7]);
  });

  it("wakes every subscriber at once through the registry's NOTIFY, whoever publishes", async () => {
    // The hub would poll only once an hour. On PostgreSQL the versions are published over
    // a second registry connection, as another hub replica would; on PGlite, by the same
    // process without telling the hub.
    const replicaB =
      target.name === 'PostgreSQL'
        ? await openRegistry({ databaseUrl: database.url, logger })
        : registry;
    const serverA = await startServer(3_600_000);
    const clients = await Promise.all(
      [0, 1, 2].map(() => hubClientFor(pki, 'bank-a', `localhost:${port}`)),
    );
    const seen: string[][] = [[], [], []];
    const followers = clients.map((client, i) =>
      followStream({
        client,
        store: new LocalStore(join(dir, `replicas-${i}`)),
        stream: 'replicas',
        logger,
        onEvent: async (event) => {
          seen[i]!.push(event.versionId);
          return { action: 'recorded' };
        },
      }),
    );
    const v1 = version('replicas', null, 11);
    await publishBuilt(replicaB.prisma, v1);
    await until(() => seen.every((s) => s.length === 1), 10_000, 'the first NOTIFY');
    const v2 = version('replicas', v1, 12);
    await publishBuilt(replicaB.prisma, v2);
    await until(() => seen.every((s) => s.length === 2), 10_000, 'the second NOTIFY');
    for (const follower of followers) await follower.stop();
    for (const client of clients) client.close();
    await serverA.close(0);
    if (replicaB !== registry) await replicaB.close();
    expect(seen).toEqual([0, 1, 2].map(() => [v1.id, v2.id]));
  });
});
