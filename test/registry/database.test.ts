import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { describePostgresUrl, openRegistry } from '../../services/registry/database.js';
import { readMigrations } from '../../services/registry/migrate.js';
import { hasCode } from '../../services/shared/errors.js';
import { createTestDatabase } from '../helpers/database.js';

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => null,
    (err: unknown) => err,
  );
}

describe('openRegistry, choosing and reaching the database', () => {
  it('answers REGISTRY_UNAVAILABLE naming the host, never the password', async () => {
    const err = await errorOf(
      openRegistry({ databaseUrl: 'postgresql://hub:s3cret-pw@127.0.0.1:1/registry' }),
    );
    expect(hasCode(err, 'REGISTRY_UNAVAILABLE')).toBe(true);
    const message = (err as Error).message;
    expect(message).toContain('127.0.0.1:1/registry');
    expect(message).not.toContain('s3cret-pw');
  });

  it('refuses a URL of another scheme without echoing the rest of it', async () => {
    const err = await errorOf(openRegistry({ databaseUrl: 'mysql://root:pw@db/x' }));
    expect(hasCode(err, 'CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toContain('"mysql"');
    expect((err as Error).message).not.toContain('pw');
  });

  it('needs a URL or a data directory', async () => {
    expect(hasCode(await errorOf(openRegistry({})), 'CONFIG_INVALID')).toBe(true);
  });

  it('describes a PostgreSQL URL without its password or parameters', () => {
    expect(
      describePostgresUrl('postgres://u:p%40ss@db.bank.example:6432/reg?sslmode=require'),
    ).toBe('u@db.bank.example:6432/reg');
    expect(describePostgresUrl('postgresql://db')).toBe('db:5432/(default)');
  });
});

describe('openRegistry with PGlite on disk', () => {
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'distillery-registry-'));
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('creates <dataDir>/registry, keeps data across opens and migrates only the first time', async () => {
    const first = await openRegistry({ dataDir });
    expect(first).toMatchObject({ kind: 'pglite', location: join(dataDir, 'registry') });
    expect(existsSync(join(dataDir, 'registry'))).toBe(true);
    expect(first.migrations.applied).toEqual((await readMigrations()).map((m) => m.name));
    await first.prisma.participant.create({ data: { id: 'bank-a' } });
    await first.close();
    await first.close();

    const second = await openRegistry({ dataDir });
    expect(second.migrations.applied).toEqual([]);
    expect(await second.prisma.participant.count()).toBe(1);
    await second.close();
  }, 180_000);
});

describe.runIf(process.env.DATABASE_URL)('openRegistry with PostgreSQL', () => {
  it('opens a server database, reports where without the password, and closes its pool', async () => {
    const database = await createTestDatabase();
    try {
      const registry = await openRegistry({ databaseUrl: database.url });
      expect(registry.kind).toBe('postgres');
      expect(registry.location).toMatch(/^[^:]*@?[^:]+:\d+\/distillery_test_/);
      const rows = await registry.prisma.$queryRawUnsafe<{ one: number }[]>('SELECT 1 AS one');
      expect(rows).toEqual([{ one: 1 }]);
      await registry.close();
    } finally {
      await database.drop();
    }
  });
});
