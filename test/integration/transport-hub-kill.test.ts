import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/shared/logger.js';
import { openRegistry } from '../../services/registry/database.js';
import { ensureStream } from '../../services/registry/knowledge.js';
import { downloadVersion } from '../../services/participant/downloader.js';
import { LocalStore } from '../../services/participant/local-store.js';
import { followStream } from '../../services/participant/stream-follower.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { createFederationFixture, type FederationFixture } from '../helpers/federation.js';
import { buildVersionOf, hubClientFor, publishBuilt, stateTensors } from '../helpers/versions.js';
import { until } from '../helpers/wait.js';

const logger = silentLogger();

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

/**
 * A hub killed with SIGKILL part-way through sending a version, and started again: the
 * participant's download resumes from its last verified chunk and ends byte-identical, and
 * its subscription picks up what was published while the hub was dead. The registry is the
 * PostgreSQL server DATABASE_URL names, or else PGlite in the hub's data directory.
 */
describe('a hub process killed in the middle of a download', () => {
  let fixture: FederationFixture;
  let database: TestDatabase | undefined;
  let registryArgs: { databaseUrl?: string; dataDir?: string };
  let port: number;
  let hub: ChildProcess | undefined;
  let hubLog = '';

  /** Starts `distillery hub` and resolves once it is ready. */
  const startHubProcess = async () => {
    const child = spawn(
      process.execPath,
      [
        'bin/distillery.js',
        'hub',
        '--data-dir',
        fixture.split.hubDir,
        '--pki-dir',
        fixture.pki.dir,
        '--grpc-port',
        String(port),
        '--http-port',
        '0',
        '--enrol',
        'bank-a',
        ...(database ? ['--database-url', database.url] : []),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DATABASE_URL: '' } },
    );
    hub = child;
    let log = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`hub not ready:\n${log}`)), 120_000);
      child.stderr!.on('data', (part: Buffer) => {
        log += part.toString();
        hubLog += part.toString();
        if (/"msg":"hub ready"/.test(log)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`hub exited with ${code}:\n${log}`));
      });
    });
    return child;
  };

  const killHub = async (signal: NodeJS.Signals) => {
    const child = hub;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  };

  const withRegistry = async <T>(
    work: (r: Awaited<ReturnType<typeof openRegistry>>) => Promise<T>,
  ) => {
    const registry = await openRegistry({ ...registryArgs, logger });
    try {
      return await work(registry);
    } finally {
      await registry.close();
    }
  };

  beforeAll(async () => {
    fixture = await createFederationFixture('hub-kill', 6);
    database = process.env.DATABASE_URL ? await createTestDatabase() : undefined;
    registryArgs = database ? { databaseUrl: database.url } : { dataDir: fixture.split.hubDir };
    port = await freePort();
  }, 120_000);

  afterAll(async () => {
    await killHub('SIGKILL');
    await database?.drop();
    await fixture?.remove();
  });

  it('resumes from the last verified chunk after a restart, byte for byte, and misses no event', async () => {
    // 12.6 MiB in 128 KiB chunks.
    const big = buildVersionOf('default', null, stateTensors(50_000, 3), 128 * 1024);
    await withRegistry(async (registry) => {
      await ensureStream(registry.prisma, 'default');
      await publishBuilt(registry.prisma, big);
    });
    await startHubProcess();

    // A participant with a small flow-control window, so that the hub is still sending
    // when it is killed rather than done with a version buffered at the participant.
    const address = `localhost:${port}`;
    const client = await hubClientFor(fixture.pki, 'bank-a', address, {
      'grpc-node.flow_control_window': 256 * 1024,
    });
    const store = new LocalStore(join(fixture.dir, 'bank-a'));
    const events: string[] = [];
    const follower = followStream({
      client,
      store,
      stream: 'default',
      logger,
      backoffMs: { initial: 100, max: 1_000 },
      onEvent: async (event) => {
        events.push(`${event.sequence}:${event.event}:${event.versionId}`);
        return { action: 'recorded' };
      },
    });
    await until(() => events.length === 1, 30_000, 'the first announcement');

    let stored = 0;
    let killed: Promise<void> | undefined;
    const interrupted = await downloadVersion(client, store, big.id, logger, {
      load: false,
      onChunk: () => {
        stored++;
        if (stored === 30) killed = killHub('SIGKILL');
      },
    }).catch((err: unknown) => err);
    await killed;
    expect(interrupted).toMatchObject({ code: 14 }); // UNAVAILABLE: the connection dropped
    const total = big.manifest.chunks.length;
    expect(stored).toBeGreaterThanOrEqual(30);
    expect(stored).toBeLessThan(total);

    // Published while the hub is dead, straight into its registry.
    const next = buildVersionOf('default', big.id, stateTensors(50, 4), 4096);
    await withRegistry((registry) => publishBuilt(registry.prisma, next));

    await startHubProcess();
    // As the participant node does: retry while the channel reconnects to the new hub.
    let resumed: Awaited<ReturnType<typeof downloadVersion>> | undefined;
    for (let attempt = 0; !resumed; attempt++) {
      resumed = await downloadVersion(client, store, big.id, logger).catch(async (err) => {
        if ((err as { code?: number }).code !== 14 || attempt > 50) throw err;
        await new Promise((r) => setTimeout(r, 200));
        return undefined;
      });
    }
    expect(resumed.chunksHeld).toBe(stored);
    expect(resumed.chunksFetched).toBe(total - stored);
    expect(Buffer.from(resumed.blob).equals(big.blob)).toBe(true);

    await until(() => events.length === 2, 30_000, 'the announcement made while the hub was dead');
    await follower.stop();
    client.close();
    await killHub('SIGTERM');
    expect(events).toEqual([`1:published:${big.id}`, `2:published:${next.id}`]);
    expect((await store.readEvents()).map((e) => e.sequence)).toEqual([1, 2]);
  }, 300_000);
});
