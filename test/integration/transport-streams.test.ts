import { credentials, status as GrpcStatus } from '@grpc/grpc-js';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/shared/logger.js';
import { initDevelopmentPki, type PkiLayout } from '../../services/shared/pki/index.js';
import { loadKnowledgeProto } from '../../services/shared/transport/proto.js';
import { CHANNEL_OPTIONS, MAX_MESSAGE_BYTES } from '../../services/shared/transport/limits.js';
import { unpackTensor } from '../../services/shared/knowledge/tensor-pack.js';
import { openRegistry, type Registry } from '../../services/registry/database.js';
import { enrolParticipant } from '../../services/registry/participants.js';
import { ensureDefaultGrant } from '../../services/registry/grants.js';
import { ensureStream } from '../../services/registry/knowledge.js';
import { Announcer } from '../../services/hub/announcer.js';
import { READ_AHEAD } from '../../services/hub/chunk-sender.js';
import { startKnowledgeServer } from '../../services/hub/knowledge-server.js';
import type { MtlsListener } from '../../services/hub/mtls-listener.js';
import { downloadVersion } from '../../services/participant/downloader.js';
import { LocalStore } from '../../services/participant/local-store.js';
import { databaseTargets } from '../helpers/database.js';
import {
  buildVersionOf,
  hubClientFor,
  hubTlsPems,
  publishBuilt,
  stateTensors,
} from '../helpers/versions.js';

const logger = silentLogger();

const targets = databaseTargets();

async function drain(stream: AsyncIterable<unknown>): Promise<unknown> {
  try {
    for await (const _ of stream) void _;
  } catch (err) {
    return err;
  }
  return undefined;
}

describe.each(targets)(
  'knowledge streams: deltas, selection, cancellation, limits ($name)',
  (target) => {
    let dir: string;
    let pki: PkiLayout;
    let database: { url: string; drop(): Promise<void> };
    let registry: Registry;
    let server: MtlsListener;
    let address: string;
    /** Chunk reads by the hub, in order, with the time they finished. */
    const reads: { versionId: string; index: number; at: number }[] = [];

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'distillery-streams-'));
      pki = await initDevelopmentPki(join(dir, 'pki'), { participants: ['bank-a'] });
      database = await target.url();
      registry = await openRegistry({ databaseUrl: database.url, logger });
      await enrolParticipant(registry.prisma, { id: 'bank-a' });
      await ensureStream(registry.prisma, 'default');
      await ensureDefaultGrant(registry.prisma, 'bank-a', 'default', { actor: 'test' });
      server = await startKnowledgeServer({
        registry,
        announcer: new Announcer(),
        host: '127.0.0.1',
        port: 0,
        tls: await hubTlsPems(pki),
        logger,
        onChunkRead: (versionId, index) => reads.push({ versionId, index, at: performance.now() }),
      });
      address = `localhost:${server.port}`;
    });

    afterAll(async () => {
      await server?.close(500);
      await registry?.close();
      await database?.drop();
      await rm(dir, { recursive: true, force: true });
    });

    it('sends a participant holding version N only the tensors that changed in N+1', async () => {
      // Same hidden activations in both versions, different logits.
      const v1 = buildVersionOf('default', null, stateTensors(4000, 1, 9), 64 * 1024);
      const v2 = buildVersionOf('default', v1.id, stateTensors(4000, 2, 9), 64 * 1024);
      await publishBuilt(registry.prisma, v1);
      const stored = await publishBuilt(registry.prisma, v2);
      const logits = v2.manifest.tensors.find((t) => t.name === 'logits')!;
      const hidden = v2.manifest.tensors.find((t) => t.name === 'hidden.hidden_2')!;
      // The registry stored only v2's new chunks.
      expect(stored.newChunks).toBe(logits.chunkCount);
      expect(hidden.chunkCount).toBeGreaterThan(10);

      const store = new LocalStore(join(dir, 'delta'));
      const client = await hubClientFor(pki, 'bank-a', address);
      const first = await downloadVersion(client, store, v1.id, logger);
      expect(first.bytesReceived).toBe(v1.manifest.totalBytes);

      const readsBefore = reads.length;
      const second = await downloadVersion(client, store, v2.id, logger);
      client.close();
      expect(second.bytesReceived).toBe(logits.byteLength);
      expect(second.chunksFetched).toBe(logits.chunkCount);
      expect(second.chunksHeld).toBe(hidden.chunkCount);
      // The hub read (and so sent) the logits' chunks and nothing else.
      expect(reads.slice(readsBefore).map((r) => r.index)).toEqual(
        Array.from({ length: logits.chunkCount! }, (_, i) => logits.firstChunk! + i),
      );
      expect(Buffer.from(second.blob).equals(v2.blob)).toBe(true);
      expect(Array.from(unpackTensor(second.manifest, second.blob, 'logits').slice(0, 2))).toEqual([
        2, 2.000999927520752,
      ]);
    });

    it('streams only the tensors a request names, and refuses a name the version lacks', async () => {
      const v = buildVersionOf('default', null, stateTensors(1000, 5), 16 * 1024);
      await publishBuilt(registry.prisma, v);
      const client = await hubClientFor(pki, 'bank-a', address);
      const indices: number[] = [];
      for await (const chunk of client.fetchChunks(v.id, { tensors: ['logits'] }) as AsyncIterable<{
        index: number;
      }>) {
        indices.push(chunk.index);
      }
      const logits = v.manifest.tensors.find((t) => t.name === 'logits')!;
      expect(indices).toEqual(
        Array.from({ length: logits.chunkCount! }, (_, i) => logits.firstChunk! + i),
      );
      const unknown = await drain(client.fetchChunks(v.id, { tensors: ['hidden.nowhere'] }));
      client.close();
      expect(unknown).toMatchObject({ code: GrpcStatus.INVALID_ARGUMENT });
      expect((unknown as Error).message).toContain('hidden.nowhere');
    });

    /**
     * A client with grpc-js's default 64 KiB flow-control window, so that the 12.5 MiB test
     * versions below fill it (and the sockets' buffers) long before the hub has read every
     * chunk: the hub is held up by backpressure when the client goes.
     */
    const smallWindowClient = () =>
      hubClientFor(pki, 'bank-a', address, { 'grpc-node.flow_control_window': 64 * 1024 });

    it('stops reading chunks at once when the participant cancels a download', async () => {
      const v = buildVersionOf('default', null, stateTensors(49_000, 7), 128 * 1024);
      await publishBuilt(registry.prisma, v);
      const client = await smallWindowClient();
      const stream = client.fetchChunks(v.id, 0);
      stream.on('error', () => undefined);
      let received = 0;
      await new Promise<void>((resolve) => {
        stream.on('data', () => {
          received++;
          if (received === 3) {
            stream.pause();
            resolve();
          }
        });
      });
      // Let the hub fill the window and block on backpressure.
      await new Promise((r) => setTimeout(r, 1500));
      const mine = () => reads.filter((r) => r.versionId === v.id);
      const beforeCancel = mine().length;
      stream.cancel();
      await new Promise((r) => setTimeout(r, 1500));
      const afterCancel = mine().length - beforeCancel;
      client.close();
      expect(beforeCancel).toBeLessThan(v.manifest.chunks.length);
      expect(afterCancel).toBeLessThanOrEqual(READ_AHEAD);
    });

    it('stops reading chunks when the participant disconnects mid-download', async () => {
      const v = buildVersionOf('default', null, stateTensors(49_000, 8), 128 * 1024);
      await publishBuilt(registry.prisma, v);
      const client = await smallWindowClient();
      const stream = client.fetchChunks(v.id, 0);
      stream.on('error', () => undefined);
      await new Promise<void>((resolve) => stream.once('data', () => (stream.pause(), resolve())));
      await new Promise((r) => setTimeout(r, 1500));
      const mine = () => reads.filter((r) => r.versionId === v.id).length;
      const before = mine();
      client.close();
      stream.cancel();
      await new Promise((r) => setTimeout(r, 1500));
      expect(before).toBeLessThan(v.manifest.chunks.length);
      expect(mine() - before).toBeLessThanOrEqual(READ_AHEAD);
    });

    it('fails a message over the size limit with RESOURCE_EXHAUSTED, on either side', async () => {
      const v = buildVersionOf('default', null, stateTensors(10, 1), 1024);
      await publishBuilt(registry.prisma, v);
      const huge = ['x'.repeat(MAX_MESSAGE_BYTES + 1)];

      // The participant's own limit stops it sending.
      const client = await hubClientFor(pki, 'bank-a', address);
      const own = await drain(client.fetchChunks(v.id, { tensors: huge }));
      client.close();
      expect(own).toMatchObject({ code: GrpcStatus.RESOURCE_EXHAUSTED });
      expect((own as Error).message).toMatch(/larger than/);

      // A client without that limit meets the hub's.
      const unlimited = new (loadKnowledgeProto().distillery.v1.Knowledge)(
        address,
        credentials.createSsl(
          await readFile(pki.caCert),
          await readFile(pki.participant('bank-a').key),
          await readFile(pki.participant('bank-a').cert),
        ),
        { ...CHANNEL_OPTIONS, 'grpc.max_send_message_length': -1 },
      );
      const hub = await drain(unlimited.FetchChunks({ versionId: v.id, tensors: huge }));
      unlimited.close();
      expect(hub).toMatchObject({ code: GrpcStatus.RESOURCE_EXHAUSTED });
      expect((hub as Error).message).toMatch(/larger than max/);
    });
  },
);
