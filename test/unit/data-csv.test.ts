import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  readAllRows,
  readLabelledRows,
  readUnlabelledRows,
  writeRows,
  type RawRow,
} from '../../services/shared/data/csv.js';
import {
  CREDIT_DATA,
  LENDING_CLUB,
  type DatasetSchema,
} from '../../services/shared/data/dataset-schema.js';
import { DistilleryError } from '../../services/shared/errors.js';

const DATA = fileURLToPath(new URL('../../data/', import.meta.url));

const TINY: DatasetSchema = {
  name: 'tiny',
  target: 'y',
  positiveLabel: 'bad',
  negativeLabel: 'good',
  numeric: ['a', 'b'],
  categorical: ['c'],
};

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'distillery-csv-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function caught(fn: () => unknown): DistilleryError {
  try {
    fn();
  } catch (err) {
    if (err instanceof DistilleryError) return err;
    throw err;
  }
  throw new Error('expected an error');
}

describe('readLabelledRows on a small file', () => {
  it('maps labels to 1 for positive, keeps feature columns only, and reads empty cells as null', () => {
    const path = file('t.csv', 'y,a,b,c,extra\nbad,1.5,,x,9\ngood,-2e3, 4 ,,9\n');
    const { rows, labels } = readLabelledRows(path, TINY);
    expect(Array.from(labels)).toEqual([1, 0]);
    expect(rows).toEqual([
      { a: '1.5', b: null, c: 'x' },
      { a: '-2e3', b: ' 4 ', c: null },
    ]);
  });

  it('accepts a byte-order mark and quoted fields with commas', () => {
    const path = file('t.csv', '\uFEFF"a","b","c","y"\n1,2,"x, y",good\n');
    const { rows } = readLabelledRows(path, TINY);
    expect(rows[0].c).toBe('x, y');
  });
});

describe('readLabelledRows on bad input', () => {
  it('reports a missing file with DATA_FILE_MISSING', () => {
    const err = caught(() => readLabelledRows(join(dir, 'nope.csv'), TINY));
    expect(err.code).toBe('DATA_FILE_MISSING');
  });

  it('reports an empty file, and a header without rows, with DATA_EMPTY_FILE', () => {
    expect(caught(() => readLabelledRows(file('e.csv', ''), TINY)).code).toBe('DATA_EMPTY_FILE');
    expect(caught(() => readLabelledRows(file('h.csv', 'a,b,c,y\n'), TINY)).code).toBe(
      'DATA_EMPTY_FILE',
    );
  });

  it('names the first absent schema column with DATA_MISSING_COLUMN', () => {
    const err = caught(() => readLabelledRows(file('m.csv', 'a,c,y\n1,x,good\n'), TINY));
    expect(err.code).toBe('DATA_MISSING_COLUMN');
    expect(err.params.column).toBe('b');
  });

  it('names the 1-based data row and column of a non-numeric cell with DATA_NOT_NUMERIC', () => {
    const path = file('n.csv', 'a,b,c,y\n1,2,x,good\n3,0x10,x,bad\n');
    const err = caught(() => readLabelledRows(path, TINY));
    expect(err.code).toBe('DATA_NOT_NUMERIC');
    expect(err.params).toMatchObject({ row: 2, column: 'b', value: '0x10' });
  });

  it('rejects a label outside the schema with DATA_BAD_LABEL', () => {
    const err = caught(() => readLabelledRows(file('l.csv', 'a,b,c,y\n1,2,x,ugly\n'), TINY));
    expect(err.code).toBe('DATA_BAD_LABEL');
    expect(err.params).toMatchObject({ row: 1, value: 'ugly' });
  });

  it('reports an unclosed quote and a ragged row with DATA_MALFORMED', () => {
    expect(caught(() => readLabelledRows(file('q.csv', 'a,b,c,y\n1,2,"x,good\n'), TINY)).code).toBe(
      'DATA_MALFORMED',
    );
    expect(caught(() => readLabelledRows(file('r.csv', 'a,b,c,y\n1,2,x\n'), TINY)).code).toBe(
      'DATA_MALFORMED',
    );
  });

  it('reports a duplicated header column with DATA_MALFORMED', () => {
    const err = caught(() => readLabelledRows(file('d.csv', 'a,a,b,c,y\n1,1,2,x,good\n'), TINY));
    expect(err.code).toBe('DATA_MALFORMED');
  });
});

describe('readUnlabelledRows', () => {
  it('reads a file without the target column', () => {
    const rows = readUnlabelledRows(file('u.csv', 'c,b,a\nx,1,2\n'), TINY);
    expect(rows).toEqual([{ a: '2', b: '1', c: 'x' }]);
  });

  it('ignores a target column that is present, whatever it holds', () => {
    const rows = readUnlabelledRows(file('u.csv', 'a,b,c,y\n1,2,x,not-a-label\n'), TINY);
    expect(rows).toEqual([{ a: '1', b: '2', c: 'x' }]);
  });
});

describe('writeRows and readAllRows', () => {
  it('round-trips awkward values exactly, with null for missing cells', () => {
    const columns = ['plain', 'awkward', 'gap'];
    const rows: RawRow[] = [
      { plain: 'a', awkward: 'comma, inside', gap: null },
      { plain: 'b', awkward: 'say "hi"', gap: '1' },
      { plain: 'c', awkward: 'line\nbreak\r\nhere', gap: null },
      { plain: 'd', awkward: '  padded ', gap: '2' },
    ];
    const path = join(dir, 'deep', 'er', 'out.csv');
    writeRows(path, columns, rows);
    expect(readAllRows(path)).toEqual({ columns, rows });
  });

  it('writes an empty string as an empty cell, which reads back as null', () => {
    const path = join(dir, 'e.csv');
    writeRows(path, ['x'], [{ x: '' }, {}]);
    expect(readAllRows(path).rows).toEqual([{ x: null }, { x: null }]);
  });

  it('applies the requested file mode, also when replacing a file', () => {
    const path = join(dir, 'private.csv');
    writeFileSync(path, 'old', { mode: 0o644 });
    writeRows(path, ['x'], [{ x: '1' }], { mode: 0o600 });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, 'utf8')).toBe('x\n1\n');
  });

  it('gives a header-only file as columns and no rows', () => {
    expect(readAllRows(file('h.csv', 'a,b\n'))).toEqual({ columns: ['a', 'b'], rows: [] });
  });
});

describe('readLabelledRows on the sample data', () => {
  it('reads lending_club: 9,857 rows of which 517 are bad', () => {
    const { rows, labels } = readLabelledRows(join(DATA, 'lending_club.csv'), LENDING_CLUB);
    expect(rows).toHaveLength(9857);
    expect(labels.reduce((sum, v) => sum + v, 0)).toBe(517);
  });

  it('reads credit_data with its missing cells as null', () => {
    const { rows, labels } = readLabelledRows(join(DATA, 'credit_data.csv'), CREDIT_DATA);
    expect(rows).toHaveLength(4454);
    expect(labels.reduce((sum, v) => sum + v, 0)).toBe(1254);
    expect(rows.filter((row) => row.Income === null)).toHaveLength(381);
    expect(rows.filter((row) => row.Home === null)).toHaveLength(6);
  });
});
