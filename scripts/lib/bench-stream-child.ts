// One process of `npm run bench:stream`, forked by scripts/bench-stream.ts with its role in
// BENCH_ROLE and its settings as JSON in BENCH_ARGS. Each role runs in a process of its own
// so that its peak RSS is its own:
//   hub        serves distillery.v1.Knowledge (registry from DATABASE_URL) over mTLS
//   tls-server sends a version's bytes, read once from the registry, over a plain mTLS socket
//   download   downloads a version as a participant does (verify, store) and reports
//   wire       receives a version's chunks and verifies them, storing nothing
//   tls-client receives the plain socket's bytes
//   fanout     holds N subscriptions and records when each has a new version's manifest
// Results and peaks go to the parent over IPC.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:tls';
import { silentLogger } from '../../services/shared/logger.js';
import { pkiLayout } from '../../services/shared/pki/index.js';
import { parseManifest } from '../../services/shared/knowledge/manifest.js';
import type { Announcement__Output, Chunk__Output } from '../../services/shared/transport/proto.js';
import { openRegistry } from '../../services/registry/database.js';
import { getVersion, readChunk } from '../../services/registry/knowledge.js';
import { Announcer } from '../../services/hub/announcer.js';
import { startKnowledgeServer } from '../../services/hub/knowledge-server.js';
import type { HubClient } from '../../services/participant/hub-client.js';
import { downloadVersion } from '../../services/participant/downloader.js';
import { LocalStore } from '../../services/participant/local-store.js';
import { hubClientFor, hubTlsPems } from '../../test/helpers/versions.js';

const role = process.env.BENCH_ROLE!;
const args = JSON.parse(process.env.BENCH_ARGS ?? '{}') as Record<string, unknown>;
const logger = silentLogger();
const send = (message: object) => process.send?.(message);

let peakRss = 0;
const sample = () => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
};
setInterval(sample, 10).unref();
process.on('message', (message: { type: string }) => {
  if (message.type === 'peak') {
    sample();
    send({ type: 'peak', peakRss });
  } else if (message.type === 'reset-peak') {
    peakRss = process.memoryUsage().rss;
    send({ type: 'reset' });
  } else if (message.type === 'exit') {
    process.exit(0);
  }
});

const pki = pkiLayout(String(args.pkiDir));

function clientFor(identity: string): Promise<HubClient> {
  return hubClientFor(pki, identity, `localhost:${String(args.port)}`);
}

async function hub() {
  const registry = await openRegistry({ databaseUrl: String(args.databaseUrl), logger });
  const server = await startKnowledgeServer({
    registry,
    announcer: new Announcer(),
    host: '127.0.0.1',
    port: 0,
    tls: await hubTlsPems(pki),
    logger,
    ...(args.chunkCacheDir ? { chunkCacheDir: String(args.chunkCacheDir) } : {}),
  });
  send({ type: 'ready', port: server.port });
}

async function tlsServer() {
  const registry = await openRegistry({ databaseUrl: String(args.databaseUrl), logger });
  const version = await getVersion(registry.prisma, String(args.versionId));
  const parts: Buffer[] = [];
  for (let i = 0; i < version.chunkCount; i++) {
    parts.push(Buffer.from((await readChunk(registry.prisma, version.id, i)).data));
  }
  await registry.close();
  const server = createServer(
    {
      ca: await readFile(pki.caCert),
      cert: await readFile(pki.hubCert),
      key: await readFile(pki.hubKey),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (socket) => {
      void (async () => {
        for (const part of parts) {
          if (!socket.write(part)) await new Promise((r) => socket.once('drain', r));
        }
        socket.end();
      })();
    },
  );
  server.listen(0, '127.0.0.1', () => {
    send({ type: 'ready', port: (server.address() as { port: number }).port });
  });
}

async function download() {
  const dir = await mkdtemp(join(tmpdir(), 'bench-stream-store-'));
  const client = await clientFor('bench');
  // The manifest and the token first, so that the timing is of the chunks alone.
  await client.getManifest(String(args.versionId));
  peakRss = process.memoryUsage().rss;
  const started = performance.now();
  const result = await downloadVersion(
    client,
    new LocalStore(dir),
    String(args.versionId),
    logger,
    {
      load: false,
    },
  );
  const ms = performance.now() - started;
  sample();
  client.close();
  await rm(dir, { recursive: true, force: true });
  send({ type: 'result', bytes: result.bytesReceived, ms, peakRss });
}

async function wire() {
  const client = await clientFor('bench');
  const manifest = parseManifest(
    String(args.versionId),
    await client.getManifest(String(args.versionId)),
  );
  peakRss = process.memoryUsage().rss;
  const started = performance.now();
  let bytes = 0;
  let index = 0;
  for await (const chunk of client.fetchChunks(
    String(args.versionId),
    0,
  ) as AsyncIterable<Chunk__Output>) {
    const actual = createHash('sha256').update(chunk.data).digest('hex');
    if (actual !== manifest.chunks[index++])
      throw new Error(`chunk ${index - 1} failed verification`);
    bytes += chunk.data.byteLength;
  }
  const ms = performance.now() - started;
  sample();
  client.close();
  send({ type: 'result', bytes, ms, peakRss });
}

async function tlsClient() {
  peakRss = process.memoryUsage().rss;
  const started = performance.now();
  const bytes = await new Promise<number>((resolve, reject) => {
    let total = 0;
    const socket = connect({
      host: '127.0.0.1',
      port: Number(args.port),
      servername: 'localhost',
      ca: readFileSyncBuffer(pki.caCert),
      cert: readFileSyncBuffer(pki.participant('bench').cert),
      key: readFileSyncBuffer(pki.participant('bench').key),
    });
    socket.on('data', (part: Buffer) => (total += part.byteLength));
    socket.on('end', () => resolve(total));
    socket.on('error', reject);
  });
  const ms = performance.now() - started;
  sample();
  send({ type: 'result', bytes, ms, peakRss });
}

async function fanout() {
  const identities = args.identities as string[];
  const clients = await Promise.all(identities.map((id) => clientFor(id)));
  const announced = new Map<string, number[]>();
  const received = new Map<string, number[]>();
  const now = () => performance.timeOrigin + performance.now();
  let opened = 0;
  const after = Number(args.afterSequence);
  for (const client of clients) {
    const stream = client.subscribe(String(args.stream), after);
    stream.on('error', () => undefined);
    stream.on('data', (a: Announcement__Output) => {
      if (Number(a.sequence) <= after + 1) {
        // The replayed event: this subscription is open.
        if (++opened === clients.length) send({ type: 'ready' });
        return;
      }
      const heard = announced.get(a.versionId) ?? [];
      heard.push(now());
      announced.set(a.versionId, heard);
      void client.getManifest(a.versionId).then((bytes) => {
        parseManifest(a.versionId, bytes);
        const times = received.get(a.versionId) ?? [];
        times.push(now());
        received.set(a.versionId, times);
        if (times.length === clients.length) {
          send({
            type: 'fanout',
            versionId: a.versionId,
            times,
            announced: announced.get(a.versionId),
          });
        }
      });
    });
  }
}

function readFileSyncBuffer(path: string): Buffer {
  // The TLS client options need the bytes at connect time.
  return readFileSync(path);
}

const roles: Record<string, () => Promise<void>> = {
  hub,
  'tls-server': tlsServer,
  download,
  wire,
  'tls-client': tlsClient,
  fanout,
};
roles[role]!().catch((err: unknown) => {
  send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  process.exit(1);
});
