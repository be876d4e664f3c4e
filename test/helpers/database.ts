import { randomBytes } from 'node:crypto';

import pg from 'pg';

import type { PrismaClient } from '../../services/generated/prisma/client.js';
import {
  openRegistry,
  type Registry,
  type RegistryKind,
} from '../../services/registry/database.js';
import { silentLogger, type Logger } from '../../services/shared/logger.js';

/** A database of its own for one test file, on the server DATABASE_URL names. */
export interface TestDatabase {
  url: string;
  /** Drops the database, closing any connection still open to it. */
  drop(): Promise<void>;
}

/**
 * Creates a fresh, uniquely named database (`distillery_test_<hex>`) on the PostgreSQL
 * server that DATABASE_URL names, so that test files running in parallel share nothing.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const base = process.env.DATABASE_URL;
  if (!base) throw new Error('createTestDatabase needs DATABASE_URL to name a PostgreSQL server');

  const name = `distillery_test_${randomBytes(6).toString('hex')}`;
  await withAdminClient(base, (client) => client.query(`CREATE DATABASE "${name}"`));

  const url = new URL(base);
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    url: url.toString(),
    async drop() {
      if (dropped) return;
      dropped = true;
      await withAdminClient(base, (client) =>
        client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
      );
    },
  };
}

async function withAdminClient(url: string, work: (client: pg.Client) => Promise<unknown>) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await work(client);
  } finally {
    await client.end();
  }
}

/** A registry opened for a test, with what it takes to throw it away. */
export interface TestRegistry {
  registry: Registry;
  prisma: PrismaClient;
  /** The URL it was opened with: `memory://` or the test database's. */
  databaseUrl: string;
  /** Closes the registry and drops its database. */
  cleanup(): Promise<void>;
}

/** One kind of registry the suites run against. */
export interface RegistryTarget {
  /** For test titles: "PGlite" or "PostgreSQL". */
  name: string;
  kind: RegistryKind;
  /** Opens a new, empty, migrated registry of this kind. */
  open(options?: { logger?: Logger }): Promise<TestRegistry>;
}

/**
 * The registry kinds available here: PGlite in memory always, PostgreSQL when DATABASE_URL
 * is set. Use with `describe.each(registryTargets())('… ($name)', (target) => …)`.
 */
export function registryTargets(): RegistryTarget[] {
  const targets: RegistryTarget[] = [
    {
      name: 'PGlite',
      kind: 'pglite',
      async open(options = {}) {
        const registry = await openRegistry({
          databaseUrl: 'memory://',
          logger: options.logger ?? silentLogger(),
        });
        return {
          registry,
          prisma: registry.prisma,
          databaseUrl: 'memory://',
          cleanup: () => registry.close(),
        };
      },
    },
  ];
  if (process.env.DATABASE_URL) {
    targets.push({
      name: 'PostgreSQL',
      kind: 'postgres',
      async open(options = {}) {
        const database = await createTestDatabase();
        const registry = await openRegistry({
          databaseUrl: database.url,
          logger: options.logger ?? silentLogger(),
        }).catch(async (err: unknown) => {
          await database.drop();
          throw err;
        });
        return {
          registry,
          prisma: registry.prisma,
          databaseUrl: database.url,
          async cleanup() {
            await registry.close();
            await database.drop();
          },
        };
      },
    });
  }
  return targets;
}

/** Empties the access log and its head, so that a test starts a chain from genesis. */
export async function resetAccessLog(prisma: PrismaClient): Promise<void> {
  await prisma.$executeRawUnsafe('TRUNCATE "access_log_entry", "access_chain_head"');
}

/** A database a suite opens its registry on by itself (for one it reopens, say). */
export interface DatabaseTarget {
  /** For test titles: "PGlite" or "PostgreSQL". */
  name: string;
  /** A new database: its URL and how to drop it. */
  url: () => Promise<{ url: string; drop(): Promise<void> }>;
}

/**
 * The databases to run against as URLs: PGlite in memory always, a new PostgreSQL database
 * when DATABASE_URL is set. Use with `describe.each(databaseTargets())`.
 */
export function databaseTargets(): DatabaseTarget[] {
  return [
    { name: 'PGlite', url: async () => ({ url: 'memory://', drop: async () => undefined }) },
    ...(process.env.DATABASE_URL ? [{ name: 'PostgreSQL', url: createTestDatabase }] : []),
  ];
}
