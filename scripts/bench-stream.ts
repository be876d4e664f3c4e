// `npm run bench:stream`: how fast and how lean knowledge versions travel.
//   - Download throughput of one version (BENCH_STREAM_MIB, default 256 MiB) over mTLS gRPC
//     on loopback, as a participant downloads it (verify every chunk, store it) and as bare
//     chunks verified on arrival, next to a plain Node TLS socket (same certificates) sending
//     the same bytes in the same run; the ratio gRPC / TLS is the figure to push up.
//   - Peak RSS of the hub and of the participant, each a process of its own, while a 64 MiB
//     and a 256 MiB version download: flat when memory does not grow with the version.
//   - Chunk size: the same download of a 64 MiB version cut into 256 KiB, 1 MiB, 2 MiB and
//     3.9 MiB chunks.
//   - Fan-out: time from a version's publication (committed to the registry by another
//     process, as another hub replica would) until each of N subscribers (N = 10, 100, 500,
//     each its own participant identity and connection) has its manifest; p50, p99, max.
// The registry is PostgreSQL: DATABASE_URL names the server; the bench makes and drops a
// database of its own. Writes out/bench/stream.json and prints a table. Not a test.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { quantile } from 'simple-statistics';
import { silentLogger } from '../services/shared/logger.js';
import { initDevelopmentPki } from '../services/shared/pki/index.js';
import { DEFAULT_CHUNK_BYTES, MAX_CHUNK_BYTES } from '../services/shared/transport/limits.js';
import { openRegistry, type Registry } from '../services/registry/database.js';
import { enrolParticipant } from '../services/registry/participants.js';
import { ensureDefaultGrant } from '../services/registry/grants.js';
import { ensureStream } from '../services/registry/knowledge.js';
import { buildVersionOf, publishBuilt } from '../test/helpers/versions.js';

const MIB = 1024 * 1024;
const SIZE_MIB = Number(process.env.BENCH_STREAM_MIB ?? 256);
const FANOUT = (process.env.BENCH_STREAM_FANOUT ?? '10,100,500').split(',').map(Number);
const FANOUT_ROUNDS = Number(process.env.BENCH_STREAM_ROUNDS ?? 3);
const CHUNK_SIZES = [256 * 1024, MIB, 2 * MIB, MAX_CHUNK_BYTES];
const CHILD = fileURLToPath(new URL('./lib/bench-stream-child.ts', import.meta.url));
const logger = silentLogger();

interface Child {
  process: ChildProcess;
  next(type: string): Promise<Record<string, unknown>>;
  ask(type: string, reply: string): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** Forks one bench role and routes its IPC messages. */
function spawnRole(role: string, args: Record<string, unknown>): Child {
  const child = fork(CHILD, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, BENCH_ROLE: role, BENCH_ARGS: JSON.stringify(args) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const queue: Record<string, unknown>[] = [];
  const waiters: { type: string; resolve: (m: Record<string, unknown>) => void }[] = [];
  let failure: Error | undefined;
  child.on('message', (message: Record<string, unknown>) => {
    if (message.type === 'error') {
      failure = new Error(`${role} failed: ${String(message.message)}`);
      for (const w of waiters.splice(0)) w.resolve(message);
      return;
    }
    const waiter = waiters.findIndex((w) => w.type === message.type);
    if (waiter >= 0) waiters.splice(waiter, 1)[0]!.resolve(message);
    else queue.push(message);
  });
  const next = (type: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      if (failure) return reject(failure);
      const queued = queue.findIndex((m) => m.type === type);
      if (queued >= 0) return resolve(queue.splice(queued, 1)[0]!);
      waiters.push({
        type,
        resolve: (m) => (m.type === 'error' ? reject(failure) : resolve(m)),
      });
    });
  return {
    process: child,
    next,
    ask: (type, reply) => {
      const answer = next(reply);
      child.send({ type });
      return answer;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A version of `mib` MiB of incompressible float32 hidden states, plus logits. */
function makeVersion(stream: string, parent: string | null, mib: number, chunkBytes: number) {
  const width = 1024;
  const rows = Math.floor((mib * MIB) / (width * 4));
  const hidden = new Float32Array(rows * width);
  const bytes = new Uint8Array(hidden.buffer);
  for (let o = 0; o < bytes.byteLength; o += 65_536) {
    bytes.set(randomBytes(Math.min(65_536, bytes.byteLength - o)), o);
  }
  // Keep the values finite: clear the exponent's top bit of every float.
  for (let i = 3; i < bytes.byteLength; i += 4) bytes[i] = bytes[i]! & 0xbf;
  return buildVersionOf(
    stream,
    parent,
    [
      { name: 'logits', kind: 'logits', shape: [rows, 2], values: new Float32Array(rows * 2) },
      { name: 'hidden.wide', kind: 'hidden', layer: 'wide', shape: [rows, width], values: hidden },
    ],
    chunkBytes,
  );
}

const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

async function main() {
  const base = process.env.DATABASE_URL;
  if (!base) {
    console.error('bench:stream needs DATABASE_URL to name a PostgreSQL server');
    process.exit(1);
  }
  const dbName = `distillery_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${dbName}"`);
  const url = new URL(base);
  url.pathname = `/${dbName}`;
  const databaseUrl = url.toString();
  const dir = await mkdtemp(join(tmpdir(), 'bench-stream-'));
  const children: Child[] = [];
  let registry: Registry | undefined;
  try {
    const maxFanout = Math.max(...FANOUT);
    const fanIds = Array.from({ length: maxFanout }, (_, i) => `fan-${String(i).padStart(3, '0')}`);
    console.error(`making a PKI for ${fanIds.length + 1} participants…`);
    const pki = await initDevelopmentPki(join(dir, 'pki'), { participants: ['bench', ...fanIds] });
    registry = await openRegistry({ databaseUrl, logger });
    for (const stream of ['bench', 'fanout']) await ensureStream(registry.prisma, stream);
    for (const id of ['bench', ...fanIds]) {
      await enrolParticipant(registry.prisma, { id });
      for (const stream of ['bench', 'fanout']) {
        await ensureDefaultGrant(registry.prisma, id, stream, { actor: 'bench' });
      }
    }

    // ---- versions
    const versions: { label: string; mib: number; chunkBytes: number; id: string }[] = [];
    const publish = async (label: string, mib: number, chunkBytes: number) => {
      const started = performance.now();
      const v = makeVersion('bench', null, mib, chunkBytes);
      await publishBuilt(registry!.prisma, v);
      versions.push({ label, mib, chunkBytes, id: v.id });
      console.error(`published ${label} in ${Math.round(performance.now() - started)} ms`);
      return v.id;
    };
    const big = await publish(`${SIZE_MIB} MiB / 1 MiB chunks`, SIZE_MIB, DEFAULT_CHUNK_BYTES);
    const small = await publish('64 MiB / 1 MiB chunks', 64, DEFAULT_CHUNK_BYTES);
    const sweep: Record<number, string> = { [DEFAULT_CHUNK_BYTES]: small };
    for (const size of CHUNK_SIZES) {
      if (size !== DEFAULT_CHUNK_BYTES) {
        sweep[size] = await publish(`64 MiB / ${round(size / MIB, 2)} MiB chunks`, 64, size);
      }
    }

    // Two hubs on the registry: one reading every chunk from PostgreSQL, one serving chunks
    // from its local chunk cache (filled by the first download), as a hub does by default.
    const hub = spawnRole('hub', { databaseUrl, pkiDir: pki.dir });
    const cachedHub = spawnRole('hub', {
      databaseUrl,
      pkiDir: pki.dir,
      chunkCacheDir: join(dir, 'chunk-cache'),
    });
    children.push(hub, cachedHub);
    const { port } = (await hub.next('ready')) as { port: number };
    const { port: cachedPort } = (await cachedHub.next('ready')) as { port: number };

    const run = async (role: string, versionId: string, on = port) => {
      const server = on === cachedPort ? cachedHub : hub;
      await server.ask('reset-peak', 'reset');
      const child = spawnRole(role, { pkiDir: pki.dir, port: on, versionId });
      const result = (await child.next('result')) as { bytes: number; ms: number; peakRss: number };
      await child.stop();
      const hubPeak = ((await server.ask('peak', 'peak')) as { peakRss: number }).peakRss;
      return { ...result, mbps: mbps(result.bytes, result.ms), hubPeakRss: hubPeak };
    };

    // ---- throughput against plain TLS, alternating, best of three each
    const best = async (
      label: string,
      once: () => Promise<Awaited<ReturnType<typeof run>>>,
      times = 3,
    ) => {
      const runs = [];
      for (let i = 0; i < times; i++) runs.push(await once());
      const top = runs.reduce((a, b) => (b.mbps > a.mbps ? b : a));
      console.error(`${label}: ${runs.map((r) => round(r.mbps)).join(', ')} MB/s`);
      return { ...top, runsMbps: runs.map((r) => round(r.mbps)) };
    };
    const tlsServer = spawnRole('tls-server', { databaseUrl, pkiDir: pki.dir, versionId: big });
    children.push(tlsServer);
    const { port: tlsPort } = (await tlsServer.next('ready')) as { port: number };
    const grpcDownload = await best(
      'gRPC download (verify + store), chunks from the registry',
      () => run('download', big),
      2,
    );
    const grpcWire = await best(
      'gRPC chunks (verify only), chunks from the registry',
      () => run('wire', big),
      2,
    );
    const cacheFill = await run('wire', big, cachedPort);
    console.error(`cache fill: ${round(cacheFill.mbps)} MB/s`);
    const cachedDownload = await best('gRPC download (verify + store), chunk cache', () =>
      run('download', big, cachedPort),
    );
    const cachedWire = await best('gRPC chunks (verify only), chunk cache', () =>
      run('wire', big, cachedPort),
    );
    const tls = await best('plain TLS socket', () => run('tls-client', big, tlsPort));
    await tlsServer.stop();

    // ---- memory against version size
    await run('wire', small, cachedPort);
    const small64 = await run('download', small, cachedPort);
    const memory = [
      { mib: 64, hubPeakRss: small64.hubPeakRss, participantPeakRss: small64.peakRss },
      {
        mib: SIZE_MIB,
        hubPeakRss: cachedDownload.hubPeakRss,
        participantPeakRss: cachedDownload.peakRss,
      },
    ];
    const small64Registry = await run('download', small);
    const memoryRegistry = [
      {
        mib: 64,
        hubPeakRss: small64Registry.hubPeakRss,
        participantPeakRss: small64Registry.peakRss,
      },
      {
        mib: SIZE_MIB,
        hubPeakRss: grpcDownload.hubPeakRss,
        participantPeakRss: grpcDownload.peakRss,
      },
    ];

    // ---- chunk size
    const chunkSizes = [];
    for (const size of CHUNK_SIZES) {
      const fromRegistry = await run('wire', sweep[size]!);
      await run('wire', sweep[size]!, cachedPort);
      const cached = await run('wire', sweep[size]!, cachedPort);
      chunkSizes.push({
        chunkBytes: size,
        registryMBps: round(fromRegistry.mbps),
        cachedMBps: round(cached.mbps),
      });
      console.error(
        `chunk size ${size}: ${round(fromRegistry.mbps)} MB/s from the registry, ${round(cached.mbps)} MB/s cached`,
      );
    }

    // ---- fan-out
    const fanout = [];
    let fanSequence = 0;
    const fanVersion = async () => {
      const v = buildVersionOf(
        'fanout',
        null,
        [
          {
            name: 'logits',
            kind: 'logits',
            shape: [1000, 2],
            values: new Float32Array(2000).fill(fanSequence),
          },
        ],
        DEFAULT_CHUNK_BYTES,
      );
      fanSequence++;
      return v;
    };
    // One event for every subscription to replay, which tells it is open.
    await publishBuilt(registry.prisma, await fanVersion());
    for (const n of FANOUT) {
      const subscribers = spawnRole('fanout', {
        pkiDir: pki.dir,
        port,
        stream: 'fanout',
        identities: fanIds.slice(0, n),
        afterSequence: fanSequence - 1,
      });
      children.push(subscribers);
      await subscribers.next('ready');
      await hub.ask('reset-peak', 'reset');
      const latencies: number[] = [];
      const heard: number[] = [];
      for (let r = 0; r < FANOUT_ROUNDS; r++) {
        const v = await fanVersion();
        await publishBuilt(registry.prisma, v);
        const publishedAt = performance.timeOrigin + performance.now();
        const done = (await subscribers.next('fanout')) as { times: number[]; announced: number[] };
        latencies.push(...done.times.map((t) => t - publishedAt));
        heard.push(...done.announced.map((t) => t - publishedAt));
        await new Promise((res) => setTimeout(res, 200));
      }
      const hubPeak = ((await hub.ask('peak', 'peak')) as { peakRss: number }).peakRss;
      await subscribers.stop();
      // The next round replays from the newest event.
      await publishBuilt(registry.prisma, await fanVersion());
      const row = {
        subscribers: n,
        rounds: FANOUT_ROUNDS,
        p50Ms: round(quantile(latencies, 0.5)),
        p99Ms: round(quantile(latencies, 0.99)),
        maxMs: round(Math.max(...latencies)),
        announcedP50Ms: round(quantile(heard, 0.5)),
        announcedP99Ms: round(quantile(heard, 0.99)),
        hubPeakRssMiB: round(hubPeak / MIB),
      };
      fanout.push(row);
      console.error(`fan-out ${n}: p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms, max ${row.maxMs} ms`);
    }

    const result = {
      at: new Date().toISOString(),
      registry: 'postgresql',
      machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
      versionMiB: SIZE_MIB,
      chunkBytes: DEFAULT_CHUNK_BYTES,
      throughput: {
        tlsMBps: round(tls.mbps),
        cached: {
          downloadMBps: round(cachedDownload.mbps),
          wireMBps: round(cachedWire.mbps),
          ratioDownload: round(cachedDownload.mbps / tls.mbps, 3),
          ratioWire: round(cachedWire.mbps / tls.mbps, 3),
          cacheFillMBps: round(cacheFill.mbps),
        },
        registry: {
          downloadMBps: round(grpcDownload.mbps),
          wireMBps: round(grpcWire.mbps),
          ratioDownload: round(grpcDownload.mbps / tls.mbps, 3),
          ratioWire: round(grpcWire.mbps / tls.mbps, 3),
        },
        runs: {
          cachedDownload: cachedDownload.runsMbps,
          cachedWire: cachedWire.runsMbps,
          registryDownload: grpcDownload.runsMbps,
          registryWire: grpcWire.runsMbps,
          tls: tls.runsMbps,
        },
      },
      memory: memory.map((m) => ({
        versionMiB: m.mib,
        hubPeakRssMiB: round(m.hubPeakRss / MIB),
        participantPeakRssMiB: round(m.participantPeakRss / MIB),
      })),
      memoryRegistryReads: memoryRegistry.map((m) => ({
        versionMiB: m.mib,
        hubPeakRssMiB: round(m.hubPeakRss / MIB),
        participantPeakRssMiB: round(m.participantPeakRss / MIB),
      })),
      chunkSizes,
      fanout,
    };
    await mkdir('out/bench', { recursive: true });
    await writeFile('out/bench/stream.json', `${JSON.stringify(result, null, 2)}\n`);

    const t = result.throughput;
    const pad = (v: unknown, n: number) => String(v).padStart(n);
    console.log(
      `\nbench:stream — ${SIZE_MIB} MiB version, registry PostgreSQL, ${result.machine.cpus} CPUs\n`,
    );
    console.log('throughput                                            MB/s   vs TLS');
    console.log(
      `  gRPC download (verify + store), chunk cache   ${pad(t.cached.downloadMBps, 8)}   ${t.cached.ratioDownload}`,
    );
    console.log(
      `  gRPC chunks (verify only), chunk cache        ${pad(t.cached.wireMBps, 8)}   ${t.cached.ratioWire}`,
    );
    console.log(
      `  gRPC download (verify + store), registry      ${pad(t.registry.downloadMBps, 8)}   ${t.registry.ratioDownload}`,
    );
    console.log(
      `  gRPC chunks (verify only), registry           ${pad(t.registry.wireMBps, 8)}   ${t.registry.ratioWire}`,
    );
    console.log(`  plain TLS socket, same bytes                  ${pad(t.tlsMBps, 8)}   1`);
    console.log('\npeak RSS (MiB)              hub   participant   (chunk cache | registry reads)');
    result.memory.forEach((m, i) => {
      const r = result.memoryRegistryReads[i]!;
      console.log(
        `  ${pad(m.versionMiB, 4)} MiB version ${pad(m.hubPeakRssMiB, 10)} ${pad(m.participantPeakRssMiB, 13)}   | ${r.hubPeakRssMiB} ${r.participantPeakRssMiB}`,
      );
    });
    console.log('\nchunk size (64 MiB, verify only)   registry MB/s   cached MB/s');
    for (const c of chunkSizes) {
      console.log(
        `  ${pad(round(c.chunkBytes / MIB, 2), 6)} MiB ${pad(c.registryMBps, 27)} ${pad(c.cachedMBps, 13)}`,
      );
    }
    console.log(
      '\nfan-out (publish -> manifest held)   p50 ms   p99 ms   max ms   announced p50/p99 ms',
    );
    for (const f of fanout) {
      console.log(
        `  ${pad(f.subscribers, 4)} subscribers ${pad(f.p50Ms, 23)} ${pad(f.p99Ms, 8)} ${pad(f.maxMs, 8)}   ${f.announcedP50Ms} / ${f.announcedP99Ms}`,
      );
    }
    console.log('\nwritten to out/bench/stream.json');
  } finally {
    for (const child of children) await child.stop();
    await registry?.close();
    await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await admin.end();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
