import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { PrismaClient } from '../generated/prisma/client.js';
import { sha256Hex } from '../shared/digest.js';
import { fail, isDistilleryError } from '../shared/errors.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { splitSqlScript } from './sql-script.js';

/** The committed migrations, found from this file so that the working directory does not matter. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../prisma/migrations/', import.meta.url));

// The key Prisma's schema engine passes to pg_advisory_lock around `migrate deploy`. Taking
// the same key makes a hub starting up and an operator's CLI run exclude each other too.
const PRISMA_MIGRATE_LOCK = 72707369;

// Index builds on a large registry can take minutes; the interactive transaction must not
// be cut short by Prisma's 5 s default. Waiting for another hub's lock counts here too.
const MIGRATION_TIMEOUT_MS = 15 * 60_000;

// The table exactly as Prisma's schema engine creates it for PostgreSQL.
const CREATE_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

/** One committed migration: its folder name, its SQL and the checksum Prisma records for it. */
export interface MigrationFile {
  name: string;
  sql: string;
  checksum: string;
}

/** Options of {@link applyMigrations}. */
export interface ApplyMigrationsOptions {
  /** Folder holding `<timestamp>_<name>/migration.sql`; default {@link MIGRATIONS_DIR}. */
  migrationsDir?: string;
  /** Default: a silent logger. */
  logger?: Logger;
}

/** What {@link applyMigrations} did. */
export interface MigrationReport {
  /** Names of the migrations applied by this call, in order; empty when none was pending. */
  applied: string[];
  /** Names already recorded as applied before this call. */
  alreadyApplied: string[];
}

interface MigrationRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

/**
 * Reads the committed migrations in the order Prisma applies them (folder name order).
 *
 * @param migrationsDir default {@link MIGRATIONS_DIR}
 */
export async function readMigrations(migrationsDir = MIGRATIONS_DIR): Promise<MigrationFile[]> {
  const entries = await readdir(migrationsDir, { withFileTypes: true }).catch((err: unknown) => {
    throw fail(
      'REGISTRY_MIGRATION_FAILED',
      { name: '(all)', detail: `cannot read ${migrationsDir}` },
      { cause: err },
    );
  });

  const names = entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();

  const migrations: MigrationFile[] = [];
  for (const name of names) {
    // Prisma skips folders without a script the same way.
    const sql = await readFile(join(migrationsDir, name, 'migration.sql'), 'utf8').catch(
      () => null,
    );
    if (sql === null) continue;
    migrations.push({ name, sql, checksum: sha256Hex(sql) });
  }
  return migrations;
}

/**
 * Applies every committed migration not yet recorded in `_prisma_migrations`, each in its
 * own transaction together with its record, exactly as `prisma migrate deploy` records it.
 *
 * Safe to call from several processes at once: each migration runs under Prisma's migrate
 * advisory lock, and whether it is pending is decided again once the lock is held. A
 * migration that fails is rolled back whole and is not recorded, so the database stays at
 * the previous migration and the error names the one that failed.
 */
export async function applyMigrations(
  prisma: PrismaClient,
  options: ApplyMigrationsOptions = {},
): Promise<MigrationReport> {
  const logger = options.logger ?? silentLogger();
  const migrations = await readMigrations(options.migrationsDir);
  const report: MigrationReport = { applied: [], alreadyApplied: [] };
  if (migrations.length === 0) return report;

  for (const migration of migrations) {
    const started = performance.now();
    const outcome = await applyOne(prisma, migration, logger);
    if (outcome === 'skipped') {
      report.alreadyApplied.push(migration.name);
      continue;
    }
    report.applied.push(migration.name);
    logger.info(
      { migration: migration.name, durationMs: Math.round(performance.now() - started) },
      'registry migration applied',
    );
  }

  await warnAboutUnknownMigrations(prisma, migrations, logger);
  return report;
}

async function applyOne(
  prisma: PrismaClient,
  migration: MigrationFile,
  logger: Logger,
): Promise<'applied' | 'skipped'> {
  const statements = splitSqlScript(migration.sql);

  try {
    return await prisma.$transaction(
      async (tx) => {
        // Transaction-scoped, so it is released with the connection whatever happens.
        await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${PRISMA_MIGRATE_LOCK})`);
        await tx.$executeRawUnsafe(CREATE_MIGRATIONS_TABLE);

        const rows = await tx.$queryRawUnsafe<MigrationRow[]>(
          `SELECT "migration_name", "checksum", "finished_at", "rolled_back_at"
             FROM "_prisma_migrations" WHERE "migration_name" = $1 AND "rolled_back_at" IS NULL`,
          migration.name,
        );
        if (rows.some((row) => row.finished_at === null)) {
          throw fail('REGISTRY_MIGRATION_FAILED', {
            name: migration.name,
            detail:
              'it is recorded as started but not finished; inspect the database, then run `prisma migrate resolve`',
          });
        }
        if (rows.length > 0) {
          if (rows[0].checksum !== migration.checksum) {
            logger.warn(
              { migration: migration.name, recorded: rows[0].checksum, actual: migration.checksum },
              'registry migration changed after it was applied',
            );
          }
          return 'skipped';
        }

        const id = randomUUID();
        await tx.$executeRawUnsafe(
          `INSERT INTO "_prisma_migrations" ("id", "checksum", "migration_name", "started_at", "applied_steps_count")
           VALUES ($1, $2, $3, now(), 0)`,
          id,
          migration.checksum,
          migration.name,
        );
        for (const statement of statements) await tx.$executeRawUnsafe(statement);
        // clock_timestamp(), not now(): now() is frozen at the start of the transaction.
        await tx.$executeRawUnsafe(
          `UPDATE "_prisma_migrations" SET "finished_at" = clock_timestamp(), "applied_steps_count" = 1
            WHERE "id" = $1`,
          id,
        );
        return 'applied';
      },
      { maxWait: 60_000, timeout: MIGRATION_TIMEOUT_MS },
    );
  } catch (err) {
    if (isDistilleryError(err)) throw err;
    throw fail(
      'REGISTRY_MIGRATION_FAILED',
      { name: migration.name, detail: err instanceof Error ? err.message : String(err) },
      { cause: err },
    );
  }
}

// A database migrated by a newer release holds migrations this one does not know. Prisma's
// CLI warns and goes on; so does the hub, since refusing would block a rollback of the code.
async function warnAboutUnknownMigrations(
  prisma: PrismaClient,
  migrations: MigrationFile[],
  logger: Logger,
): Promise<void> {
  const known = new Set(migrations.map((migration) => migration.name));
  const rows = await prisma.$queryRawUnsafe<{ migration_name: string }[]>(
    `SELECT "migration_name" FROM "_prisma_migrations" WHERE "rolled_back_at" IS NULL`,
  );
  const unknown = rows.map((row) => row.migration_name).filter((name) => !known.has(name));
  if (unknown.length > 0) {
    logger.warn({ migrations: unknown }, 'registry holds migrations this release does not know');
  }
}
