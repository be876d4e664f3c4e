import { describe, expect, it } from 'vitest';

import { splitSqlScript } from '../../services/registry/sql-script.js';

describe('splitSqlScript', () => {
  it('splits a Prisma migration into its statements and drops comment-only pieces', () => {
    const script = [
      '-- CreateTable',
      'CREATE TABLE "a" (',
      '    "id" TEXT NOT NULL',
      ');',
      '',
      '-- CreateIndex',
      'CREATE INDEX "a_id_idx" ON "a"("id");',
      '',
      '-- trailing comment only',
      '',
    ].join('\n');
    expect(splitSqlScript(script)).toEqual([
      '-- CreateTable\nCREATE TABLE "a" (\n    "id" TEXT NOT NULL\n)',
      '-- CreateIndex\nCREATE INDEX "a_id_idx" ON "a"("id")',
    ]);
  });

  it('keeps semicolons inside literals, identifiers, dollar quotes and comments', () => {
    const script = [
      "INSERT INTO t VALUES ('a;b', 'it''s; fine', E'back\\';slash');",
      'CREATE TABLE "odd;name" (x int);',
      'CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; SELECT 2; $body$ LANGUAGE sql;',
      'SELECT $$;$$;',
      '/* a; /* nested; */ still comment; */ SELECT 3;',
      'SELECT 4 -- no; end here',
    ].join('\n');
    expect(splitSqlScript(script)).toEqual([
      "INSERT INTO t VALUES ('a;b', 'it''s; fine', E'back\\';slash')",
      'CREATE TABLE "odd;name" (x int)',
      'CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; SELECT 2; $body$ LANGUAGE sql',
      'SELECT $$;$$',
      '/* a; /* nested; */ still comment; */ SELECT 3',
      'SELECT 4 -- no; end here',
    ]);
  });

  it('does not take a positional parameter for a dollar quote', () => {
    expect(splitSqlScript('SELECT $1; SELECT $2')).toEqual(['SELECT $1', 'SELECT $2']);
  });
});
