import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';

import { PGlite } from '@electric-sql/pglite';
import { lockDirectory, type DirectoryLock } from './directory-lock.js';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaPGlite } from 'pglite-prisma-adapter';

import { PrismaClient, type Prisma } from '../generated/prisma/client.js';
import { fail, isDistilleryError } from '../shared/errors.js';
import { silentLogger, type Logger } from '../shared/logger.js';
import { applyMigrations, type MigrationReport } from './migrate.js';

/** Which engine holds the registry: embedded PGlite or a PostgreSQL server. */
export type RegistryKind = 'pglite' | 'postgres';

/**
 * What the registry's query functions accept: the client of an open registry, or the
 * client of a transaction opened on it, so that several writes can commit together.
 */
export type RegistryDb = PrismaClient | Prisma.TransactionClient;

/** An open registry database, migrated to the schema this release expects. */
export interface Registry {
  prisma: PrismaClient;
  kind: RegistryKind;
  /** Where the data lives, safe to log: `host:port/database`, a directory, or `memory`. */
  location: string;
  /** The migrations found applied and those applied by this open. */
  migrations: MigrationReport;
  /**
   * Calls `onPayload` for each NOTIFY on `channel` (PostgreSQL LISTEN on a connection of its
   * own, re-established after a loss; PGlite's in-process listen). Returns the unlisten.
   */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  /** Disconnects Prisma and releases the pool or the PGlite instance; safe to call twice. */
  close(): Promise<void>;
}

/** Options of {@link openRegistry}. */
export interface OpenRegistryOptions {
  /**
   * `postgres://…` or `postgresql://…` for a PostgreSQL server, `memory://` for a PGlite
   * database that vanishes on close. Default: PGlite on disk under `dataDir`.
   */
  databaseUrl?: string;
  /** The role's data directory; PGlite keeps its files in `<dataDir>/registry`. */
  dataDir?: string;
  /** Most connections held to PostgreSQL; default 10. Ignored by PGlite. */
  poolSize?: number;
  /** Default: a silent logger. */
  logger?: Logger;
}

interface Backend {
  kind: RegistryKind;
  location: string;
  prisma: PrismaClient;
  listen: Registry['listen'];
  release(): Promise<void>;
}

/**
 * Opens the registry and applies pending migrations before returning it.
 *
 * @throws REGISTRY_UNAVAILABLE when the database cannot be reached (the message names the
 *   host or directory, never a password); REGISTRY_MIGRATION_FAILED when a migration fails;
 *   CONFIG_INVALID for a URL of another scheme or neither URL nor data directory.
 */
export async function openRegistry(options: OpenRegistryOptions): Promise<Registry> {
  const logger = options.logger ?? silentLogger();
  const started = performance.now();
  const backend = await openBackend(options, logger);

  let migrations: MigrationReport;
  try {
    migrations = await applyMigrations(backend.prisma, { logger });
  } catch (err) {
    await backend.release().catch(() => undefined);
    throw err;
  }

  logger.info(
    {
      registry: backend.kind,
      location: backend.location,
      migrationsApplied: migrations.applied.length,
      durationMs: Math.round(performance.now() - started),
    },
    'registry opened',
  );

  let closing: Promise<void> | undefined;
  return {
    prisma: backend.prisma,
    kind: backend.kind,
    location: backend.location,
    migrations,
    listen: backend.listen,
    close() {
      closing ??= backend.release();
      return closing;
    },
  };
}

function openBackend(options: OpenRegistryOptions, logger: Logger): Promise<Backend> {
  const url = options.databaseUrl;
  if (url === undefined || url === '') {
    if (!options.dataDir) {
      throw fail('CONFIG_INVALID', {
        detail: 'the registry needs a database URL or a data directory',
      });
    }
    return openPglite(pgliteDirectory(options.dataDir));
  }
  if (url.startsWith('memory://')) return openPglite(null);
  if (/^postgres(ql)?:\/\//.test(url)) return openPostgres(url, options.poolSize ?? 10, logger);

  // Only the scheme is echoed: the rest of a URL may carry a password.
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1] ?? '(none)';
  throw fail('CONFIG_INVALID', {
    detail: `database URL scheme "${scheme}" is not supported; use postgresql:// or memory://`,
  });
}

async function openPglite(dir: string | null): Promise<Backend> {
  const location = dir ?? 'memory';
  let db: PGlite;
  let lock: DirectoryLock | undefined;
  try {
    if (dir !== null) {
      await mkdir(dir, { recursive: true });
      lock = await lockDirectory(dir);
    }
    db = await PGlite.create(dir ?? 'memory://');
  } catch (err) {
    await lock?.release();
    if (isDistilleryError(err)) throw err;
    throw fail(
      'REGISTRY_UNAVAILABLE',
      { detail: `cannot open PGlite at ${location}: ${describe(err)}` },
      { cause: err },
    );
  }

  const prisma = new PrismaClient({ adapter: new PrismaPGlite(db) });
  return {
    kind: 'pglite',
    location,
    prisma,
    async listen(channel, onPayload) {
      const unlisten = await db.listen(channel, onPayload);
      return async () => {
        if (!db.closed) await unlisten();
      };
    },
    async release() {
      await prisma.$disconnect();
      await db.close();
      await lock?.release();
    },
  };
}

async function openPostgres(url: string, poolSize: number, logger: Logger): Promise<Backend> {
  const location = describePostgresUrl(url);
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    // A short idle timeout lets a CLI command exit promptly instead of lingering ~10 s.
    idleTimeoutMillis: 1_000,
    connectionTimeoutMillis: 10_000,
  });
  // An idle client losing its server emits on the pool; unhandled, it would kill the process.
  pool.on('error', (err) => logger.warn({ err, location }, 'registry connection lost'));

  try {
    const client = await pool.connect();
    client.release();
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw fail(
      'REGISTRY_UNAVAILABLE',
      { detail: `cannot connect to PostgreSQL at ${location}: ${describe(err)}` },
      { cause: err },
    );
  }

  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  const listeners = new Set<() => Promise<void>>();
  return {
    kind: 'postgres',
    location,
    prisma,
    async listen(channel, onPayload) {
      const stop = await listenPostgres(url, channel, onPayload, logger);
      listeners.add(stop);
      return async () => {
        listeners.delete(stop);
        await stop();
      };
    },
    async release() {
      for (const stop of [...listeners]) await stop();
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

/**
 * LISTENs on `channel` over a connection outside the pool (it is held for as long as the
 * listener lives). When the connection is lost it is re-made after a pause; NOTIFYs sent
 * meanwhile are missed, which is why subscribers also re-read the registry on a slow timer.
 */
async function listenPostgres(
  url: string,
  channel: string,
  onPayload: (payload: string) => void,
  logger: Logger,
): Promise<() => Promise<void>> {
  let stopped = false;
  let client: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  const schedule = () => {
    if (stopped) return;
    retry = setTimeout(() => void connect().catch(schedule), 1_000);
    retry.unref();
  };
  const connect = async (): Promise<void> => {
    const next = new pg.Client({ connectionString: url });
    next.on('notification', (message) => {
      if (message.channel === channel) onPayload(message.payload ?? '');
    });
    next.on('error', (err) => {
      logger.warn({ err, channel }, 'registry notification connection lost; reconnecting');
      void next.end().catch(() => undefined);
      schedule();
    });
    await next.connect();
    await next.query(`LISTEN "${channel.replace(/"/g, '""')}"`);
    if (stopped) {
      await next.end();
      return;
    }
    client = next;
  };
  await connect();
  return async () => {
    stopped = true;
    clearTimeout(retry);
    await client?.end().catch(() => undefined);
  };
}

/**
 * Describes a PostgreSQL URL as `user@host:port/database`, leaving out the password and
 * query parameters, for logs and error messages.
 */
export function describePostgresUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw fail('CONFIG_INVALID', { detail: 'the PostgreSQL database URL cannot be parsed' });
  }
  const user = parsed.username ? `${decodeURIComponent(parsed.username)}@` : '';
  const host = parsed.hostname || 'localhost';
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, '')) || '(default)';
  return `${user}${host}:${parsed.port || '5432'}/${database}`;
}

function describe(err: unknown): string {
  if (isDistilleryError(err)) return err.message;
  if (err instanceof AggregateError && err.errors.length > 0) return describe(err.errors[0]);
  if (err instanceof Error) return err.message || (err as NodeJS.ErrnoException).code || err.name;
  return String(err);
}

/** The directory PGlite uses under a role's data directory. */
export function pgliteDirectory(dataDir: string): string {
  return join(resolve(dataDir), 'registry');
}
