import { mkdtemp, readFile, rm, writeFile, mkdir, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openRegistry } from '../../services/registry/database.js';
import {
  applyMigrations,
  MIGRATIONS_DIR,
  readMigrations,
} from '../../services/registry/migrate.js';
import { sha256Hex } from '../../services/shared/digest.js';
import { hasCode } from '../../services/shared/errors.js';
import { createTestDatabase, registryTargets, type TestRegistry } from '../helpers/database.js';

interface MigrationRow {
  id: string;
  checksum: string;
  finished_at: Date | null;
  migration_name: string;
  logs: string | null;
  rolled_back_at: Date | null;
  started_at: Date;
  applied_steps_count: number;
}

const selectMigrations = `SELECT "id", "checksum", "finished_at", "migration_name", "logs", "rolled_back_at",
  "started_at", "applied_steps_count" FROM "_prisma_migrations" ORDER BY "migration_name"`;

describe('readMigrations', () => {
  it('finds the committed migrations beside the schema, whatever the working directory', async () => {
    const migrations = await readMigrations();
    expect(MIGRATIONS_DIR).toMatch(/prisma[\\/]migrations[\\/]?$/);
    expect(migrations.length).toBeGreaterThan(0);
    expect(migrations.map((m) => m.name)).toEqual([...migrations.map((m) => m.name)].sort());
    const first = migrations[0];
    const bytes = await readFile(join(MIGRATIONS_DIR, first.name, 'migration.sql'));
    expect(first.checksum).toBe(sha256Hex(bytes));
  });

  it('ships the lock file Prisma checks before deploying', async () => {
    const lock = await readFile(join(MIGRATIONS_DIR, 'migration_lock.toml'), 'utf8');
    expect(lock).toMatch(/^provider = "postgresql"$/m);
  });
});

describe.each(registryTargets())('registry migrations ($name)', (target) => {
  let db: TestRegistry;
  let tempDir: string;

  beforeAll(async () => {
    db = await target.open();
    tempDir = await mkdtemp(join(tmpdir(), 'distillery-migrations-'));
  });
  afterAll(async () => {
    await db?.cleanup();
    await rm(tempDir, { recursive: true, force: true });
  });

  it('applies every committed migration at open and records each as the Prisma CLI does', async () => {
    const files = await readMigrations();
    expect(db.registry.migrations.applied).toEqual(files.map((f) => f.name));

    const rows = await db.prisma.$queryRawUnsafe<MigrationRow[]>(selectMigrations);
    expect(rows.map((r) => r.migration_name)).toEqual(files.map((f) => f.name));
    rows.forEach((row, i) => {
      expect(row.id).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      );
      expect(row.checksum).toBe(files[i].checksum);
      expect(row.logs).toBeNull();
      expect(row.rolled_back_at).toBeNull();
      expect(row.applied_steps_count).toBe(1);
      expect(row.finished_at).toBeInstanceOf(Date);
      expect(row.finished_at!.getTime()).toBeGreaterThanOrEqual(row.started_at.getTime());
    });
  });

  it('applies nothing when run again', async () => {
    const before = await db.prisma.$queryRawUnsafe<MigrationRow[]>(selectMigrations);
    const report = await applyMigrations(db.prisma);
    const after = await db.prisma.$queryRawUnsafe<MigrationRow[]>(selectMigrations);
    expect(report.applied).toEqual([]);
    expect(report.alreadyApplied).toEqual(before.map((r) => r.migration_name));
    expect(after).toEqual(before);
  });

  it.runIf(target.kind === 'postgres')(
    'applies nothing when a second registry opens the same database',
    async () => {
      const second = await openRegistry({ databaseUrl: db.databaseUrl });
      try {
        expect(second.migrations.applied).toEqual([]);
        expect(second.migrations.alreadyApplied).toEqual(db.registry.migrations.applied);
      } finally {
        await second.close();
      }
    },
  );

  it('creates _prisma_migrations with the columns and types of Prisma’s schema engine', async () => {
    const columns = await db.prisma.$queryRawUnsafe<
      { name: string; type: string; nullable: string; length: number | null }[]
    >(
      `SELECT column_name::text AS name, data_type::text AS type, is_nullable::text AS nullable,
              character_maximum_length::int AS length
         FROM information_schema.columns WHERE table_name = '_prisma_migrations'
        ORDER BY ordinal_position`,
    );
    expect(columns).toEqual([
      { name: 'id', type: 'character varying', nullable: 'NO', length: 36 },
      { name: 'checksum', type: 'character varying', nullable: 'NO', length: 64 },
      { name: 'finished_at', type: 'timestamp with time zone', nullable: 'YES', length: null },
      { name: 'migration_name', type: 'character varying', nullable: 'NO', length: 255 },
      { name: 'logs', type: 'text', nullable: 'YES', length: null },
      { name: 'rolled_back_at', type: 'timestamp with time zone', nullable: 'YES', length: null },
      { name: 'started_at', type: 'timestamp with time zone', nullable: 'NO', length: null },
      { name: 'applied_steps_count', type: 'integer', nullable: 'NO', length: null },
    ]);
  });

  it('applies a new migration of several statements, and a failing one not at all', async () => {
    const dir = join(tempDir, 'migrations');
    await cp(MIGRATIONS_DIR, dir, { recursive: true });
    await mkdir(join(dir, '29990101000000_extra'));
    await writeFile(
      join(dir, '29990101000000_extra', 'migration.sql'),
      '-- CreateTable\nCREATE TABLE "extra" ("id" TEXT NOT NULL, "note" TEXT DEFAULT \'a;b\');\n\n' +
        '-- CreateIndex\nCREATE INDEX "extra_note_idx" ON "extra"("note");\n',
    );
    const report = await applyMigrations(db.prisma, { migrationsDir: dir });
    expect(report.applied).toEqual(['29990101000000_extra']);
    await db.prisma.$executeRawUnsafe(`INSERT INTO "extra" ("id") VALUES ('x')`);

    await mkdir(join(dir, '29990102000000_broken'));
    await writeFile(
      join(dir, '29990102000000_broken', 'migration.sql'),
      'CREATE TABLE "half_done" ("id" TEXT);\nALTER TABLE "no_such_table" ADD COLUMN "x" TEXT;\n',
    );
    const err = await applyMigrations(db.prisma, { migrationsDir: dir }).catch((e: unknown) => e);
    expect(hasCode(err, 'REGISTRY_MIGRATION_FAILED')).toBe(true);
    expect((err as Error).message).toContain('29990102000000_broken');

    const names = await db.prisma.$queryRawUnsafe<{ migration_name: string }[]>(
      `SELECT "migration_name" FROM "_prisma_migrations" WHERE "migration_name" LIKE '2999%'`,
    );
    expect(names.map((n) => n.migration_name)).toEqual(['29990101000000_extra']);
    const leftovers = await db.prisma.$queryRawUnsafe<{ present: boolean }[]>(
      `SELECT to_regclass('half_done') IS NOT NULL AS present`,
    );
    expect(leftovers[0].present).toBe(false);
  });

  it('refuses to go on past a migration recorded as started but never finished', async () => {
    const dir = join(tempDir, 'unfinished');
    await cp(MIGRATIONS_DIR, dir, { recursive: true });
    await mkdir(join(dir, '29990201000000_unfinished'));
    await writeFile(join(dir, '29990201000000_unfinished', 'migration.sql'), 'SELECT 1;\n');
    await db.prisma.$executeRawUnsafe(
      `INSERT INTO "_prisma_migrations" ("id", "checksum", "migration_name")
       VALUES ('00000000-0000-4000-8000-000000000000', 'x', '29990201000000_unfinished')`,
    );
    const err = await applyMigrations(db.prisma, { migrationsDir: dir }).catch((e: unknown) => e);
    expect(hasCode(err, 'REGISTRY_MIGRATION_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/29990201000000_unfinished.*migrate resolve/);
  });
});

describe.runIf(process.env.DATABASE_URL)(
  'registry migrations on PostgreSQL, two hubs at once',
  () => {
    it('applies each migration exactly once when two registries open a new database together', async () => {
      const database = await createTestDatabase();
      try {
        const [a, b] = await Promise.all([
          openRegistry({ databaseUrl: database.url }),
          openRegistry({ databaseUrl: database.url }),
        ]);
        const files = await readMigrations();
        const applied = [...a.migrations.applied, ...b.migrations.applied].sort();
        expect(applied).toEqual(files.map((f) => f.name));

        const rows = await a.prisma.$queryRawUnsafe<{ migration_name: string }[]>(
          `SELECT "migration_name" FROM "_prisma_migrations" ORDER BY 1`,
        );
        expect(rows.map((r) => r.migration_name)).toEqual(files.map((f) => f.name));
        await Promise.all([a.close(), b.close()]);
      } finally {
        await database.drop();
      }
    });
  },
);
