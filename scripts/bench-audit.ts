// `npm run bench:audit`: the cost of the hash-chained access log at scale. On PGlite (on
// disk) and on PostgreSQL (when DATABASE_URL names a server), it fills a log of one million
// entries with batched multi-row inserts that compute the chain, then measures
//   - appends per second through the real append path (appendAccess: head lock, hash,
//     insert, head update, one transaction each), against plain single-row inserts into a
//     table of the same shape without the chain, as the reference;
//   - auditor query latency, p50 and p95, for the filters the HTTP API offers;
//   - a full verification of the chain (recomputing every hash).
// Writes out/bench/audit.json and prints a table. A benchmark, not a test: nothing is asserted.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { quantile } from 'simple-statistics';
import { openRegistry, type Registry } from '../services/registry/database.js';
import {
  appendAccess,
  GENESIS_HASH,
  hashAccessEntry,
  queryAccessLog,
  verifyAccessChain,
  type AccessLogQuery,
} from '../services/registry/access-log.js';
import { silentLogger } from '../services/shared/logger.js';

const TOTAL = Number(process.env.BENCH_AUDIT_ENTRIES ?? 1_000_000);
const BATCH = 5_000;
const APPENDS = Number(process.env.BENCH_AUDIT_APPENDS ?? 2_000);
const QUERY_RUNS = 40;
const ACTORS = Array.from({ length: 50 }, (_, i) => `bank-${String(i).padStart(2, '0')}`);
const ACTIONS = ['subscribe', 'manifest', 'download', 'token.issue', 'handshake', 'audit.query'];
const VERSIONS = Array.from(
  { length: 200 },
  (_, i) => `version:${i.toString(16).padStart(64, '0')}`,
);
const START = Date.UTC(2026, 10, 1);
const SPAN_MS = 30 * 86_400_000;

interface Result {
  registry: string;
  entries: number;
  populateSeconds: number;
  appendsPerSecond: number;
  plainInsertsPerSecond: number;
  chainCost: number;
  queries: Record<string, { p50Ms: number; p95Ms: number; rows: number }>;
  verifySeconds: number;
  verifyOk: boolean;
}

function row(i: number) {
  return {
    sequence: String(i),
    at: new Date(START + Math.floor((i / TOTAL) * SPAN_MS)).toISOString(),
    actor: ACTORS[i % ACTORS.length]!,
    action: ACTIONS[i % ACTIONS.length]!,
    resource: VERSIONS[(i * 7) % VERSIONS.length]!,
    outcome: i % 97 === 0 ? 'denied' : 'allowed',
    reason: i % 97 === 0 ? 'holds no grant' : null,
    detail: { fromIndex: i % 13 },
    peerAddress: `ipv4:10.0.${i % 250}.${i % 200}:4${i % 1000}`,
  };
}

const quote = (v: string | null) => (v === null ? 'NULL' : `'${v.replace(/'/g, "''")}'`);

/** Fills the log with TOTAL entries, chained, in multi-row INSERTs of BATCH rows. */
async function populate(registry: Registry): Promise<number> {
  const started = performance.now();
  const prisma = registry.prisma;
  let prev = GENESIS_HASH;
  for (let from = 1; from <= TOTAL; from += BATCH) {
    const values: string[] = [];
    for (let i = from; i < Math.min(from + BATCH, TOTAL + 1); i++) {
      const fields = { ...row(i), prevHash: prev };
      const hash = hashAccessEntry(fields);
      values.push(
        `(${i}, ${quote(fields.at)}, ${quote(fields.actor)}, ${quote(fields.action)}, ${quote(fields.resource)}, ${quote(fields.outcome)}, ${quote(fields.reason)}, ${quote(JSON.stringify(fields.detail))}::jsonb, ${quote(fields.peerAddress)}, ${quote(prev)}, ${quote(hash)})`,
      );
      prev = hash;
    }
    await prisma.$executeRawUnsafe(
      `INSERT INTO "access_log_entry" ("sequence","at","actor","action","resource","outcome","reason","detail","peer_address","prev_hash","hash") VALUES ${values.join(',')}`,
    );
    if ((from - 1) % 100_000 === 0)
      process.stderr.write(`  ${registry.kind}: ${from - 1} entries\n`);
  }
  await prisma.$executeRawUnsafe(
    `INSERT INTO "access_chain_head" ("id","sequence","hash") VALUES (1, ${TOTAL}, ${quote(prev)})`,
  );
  await prisma.$executeRawUnsafe('ANALYZE "access_log_entry"');
  return (performance.now() - started) / 1000;
}

async function appendRate(registry: Registry): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < APPENDS; i++) {
    await appendAccess(registry.prisma, {
      actor: ACTORS[i % ACTORS.length]!,
      action: 'download',
      resource: VERSIONS[i % VERSIONS.length]!,
      outcome: 'allowed',
      detail: { fromIndex: 0, chunks: 4 },
      peerAddress: 'ipv4:10.0.0.1:40000',
    });
  }
  return APPENDS / ((performance.now() - started) / 1000);
}

/** The reference: one-row inserts, one transaction each, into a table without the chain. */
async function plainRate(registry: Registry): Promise<number> {
  const prisma = registry.prisma;
  await prisma.$executeRawUnsafe(
    'CREATE TABLE "bench_plain" (id BIGSERIAL PRIMARY KEY, at TIMESTAMP(3) NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, resource TEXT NOT NULL, outcome TEXT NOT NULL, detail JSONB, peer_address TEXT)',
  );
  const started = performance.now();
  for (let i = 0; i < APPENDS; i++) {
    await prisma.$transaction([
      prisma.$executeRaw`INSERT INTO "bench_plain" (at, actor, action, resource, outcome, detail, peer_address)
        VALUES (${new Date()}, ${ACTORS[i % ACTORS.length]!}, 'download', ${VERSIONS[i % VERSIONS.length]!}, 'allowed', ${JSON.stringify({ fromIndex: 0, chunks: 4 })}::jsonb, 'ipv4:10.0.0.1:40000')`,
    ]);
  }
  const rate = APPENDS / ((performance.now() - started) / 1000);
  await prisma.$executeRawUnsafe('DROP TABLE "bench_plain"');
  return rate;
}

async function queryLatencies(registry: Registry): Promise<Result['queries']> {
  const prisma = registry.prisma;
  const mid = new Date(START + SPAN_MS / 2);
  // The cursor of a page deep in one participant's history, as an auditor paging on reaches.
  // (With a small log, as far as the pages go.)
  let cursor: string | undefined;
  for (let i = 0; i < 10; i++) {
    const page = await queryAccessLog(prisma, {
      actor: 'bank-07',
      limit: 1000,
      ...(cursor ? { cursor } : {}),
    });
    if (!page.nextCursor) break;
    cursor = page.nextCursor;
  }
  const cases: Record<string, (run: number) => AccessLogQuery> = {
    'by participant': (r) => ({ actor: ACTORS[r % ACTORS.length]! }),
    'by action + outcome': (r) => ({ action: ACTIONS[r % ACTIONS.length]!, outcome: 'denied' }),
    'by resource': (r) => ({ resource: VERSIONS[(r * 13) % VERSIONS.length]! }),
    'time range (1 h)': (r) => ({
      from: new Date(mid.getTime() + r * 3_600_000),
      to: new Date(mid.getTime() + (r + 1) * 3_600_000),
    }),
    'participant + time range': (r) => ({
      actor: ACTORS[r % ACTORS.length]!,
      from: mid,
      to: new Date(mid.getTime() + 86_400_000),
    }),
    'cursor page 11 of a participant': () => ({ actor: 'bank-07', ...(cursor ? { cursor } : {}) }),
    'rare: denied by participant': (r) => ({
      actor: ACTORS[r % ACTORS.length]!,
      outcome: 'denied',
    }),
  };
  const out: Result['queries'] = {};
  for (const [name, make] of Object.entries(cases)) {
    await queryAccessLog(prisma, { ...make(0), limit: 100 }); // warm
    const times: number[] = [];
    let rows = 0;
    for (let r = 0; r < QUERY_RUNS; r++) {
      const started = performance.now();
      const page = await queryAccessLog(prisma, { ...make(r), limit: 100 });
      times.push(performance.now() - started);
      rows += page.entries.length;
    }
    out[name] = {
      p50Ms: round(quantile(times, 0.5)),
      p95Ms: round(quantile(times, 0.95)),
      rows: Math.round(rows / QUERY_RUNS),
    };
  }
  return out;
}

const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

async function bench(
  name: string,
  open: () => Promise<{ registry: Registry; done(): Promise<void> }>,
): Promise<Result> {
  process.stderr.write(`${name}: populating ${TOTAL} entries\n`);
  const { registry, done } = await open();
  try {
    const populateSeconds = await populate(registry);
    process.stderr.write(`${name}: appends\n`);
    const appendsPerSecond = await appendRate(registry);
    const plainInsertsPerSecond = await plainRate(registry);
    process.stderr.write(`${name}: queries\n`);
    const queries = await queryLatencies(registry);
    process.stderr.write(`${name}: verifying the chain\n`);
    const started = performance.now();
    const verified = await verifyAccessChain(registry.prisma);
    const verifySeconds = (performance.now() - started) / 1000;
    return {
      registry: name,
      entries: TOTAL + APPENDS,
      populateSeconds: round(populateSeconds, 1),
      appendsPerSecond: round(appendsPerSecond, 0),
      plainInsertsPerSecond: round(plainInsertsPerSecond, 0),
      chainCost: round(plainInsertsPerSecond / appendsPerSecond, 2),
      queries,
      verifySeconds: round(verifySeconds, 1),
      verifyOk: verified.ok,
    };
  } finally {
    await done();
  }
}

async function main() {
  const logger = silentLogger();
  const results: Result[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'distillery-bench-audit-'));
  results.push(
    await bench('PGlite', async () => {
      const registry = await openRegistry({ dataDir: dir, logger });
      return {
        registry,
        done: async () => {
          await registry.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    }),
  );
  const base = process.env.DATABASE_URL;
  if (base) {
    results.push(
      await bench('PostgreSQL', async () => {
        const name = `distillery_bench_${randomBytes(4).toString('hex')}`;
        const admin = new pg.Client({ connectionString: base });
        await admin.connect();
        await admin.query(`CREATE DATABASE "${name}"`);
        await admin.end();
        const url = new URL(base);
        url.pathname = `/${name}`;
        const registry = await openRegistry({ databaseUrl: url.toString(), logger });
        return {
          registry,
          async done() {
            await registry.close();
            const drop = new pg.Client({ connectionString: base });
            await drop.connect();
            await drop.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
            await drop.end();
          },
        };
      }),
    );
  } else {
    process.stderr.write('DATABASE_URL is not set: PostgreSQL skipped\n');
  }

  await mkdir('out/bench', { recursive: true });
  const report = {
    benchmark: 'audit',
    at: new Date().toISOString(),
    entries: TOTAL,
    appendsMeasured: APPENDS,
    queryRuns: QUERY_RUNS,
    pageSize: 100,
    results,
  };
  await writeFile('out/bench/audit.json', `${JSON.stringify(report, null, 2)}\n`);

  for (const r of results) {
    console.log(
      `\n${r.registry}: ${r.entries.toLocaleString('en')} entries (filled in ${r.populateSeconds} s)`,
    );
    console.log(`  appends/s with the chain   ${r.appendsPerSecond}`);
    console.log(
      `  plain inserts/s (reference) ${r.plainInsertsPerSecond}   -> chain costs ${r.chainCost}x`,
    );
    console.log(
      `  full chain verification    ${r.verifySeconds} s (${r.verifyOk ? 'intact' : 'BROKEN'})`,
    );
    console.log(
      `  ${'auditor query (100 per page)'.padEnd(34)} ${'p50 ms'.padStart(8)} ${'p95 ms'.padStart(8)} ${'rows'.padStart(5)}`,
    );
    for (const [name, q] of Object.entries(r.queries)) {
      console.log(
        `  ${name.padEnd(34)} ${String(q.p50Ms).padStart(8)} ${String(q.p95Ms).padStart(8)} ${String(q.rows).padStart(5)}`,
      );
    }
  }
  console.log('\nwritten out/bench/audit.json');
}

await main();
