import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parse } from 'csv-parse/sync';
import { fail } from '../errors.js';
import type { DatasetSchema } from './dataset-schema.js';
import { featureColumns } from './dataset-schema.js';

/** One CSV row keyed by column name; `null` is a missing (empty) cell. */
export type RawRow = Record<string, string | null>;

/** Rows of a labelled file and their labels, aligned by index (1 = positive class). */
export interface LabelledRows {
  rows: RawRow[];
  labels: Uint8Array;
}

/** Options of {@link writeRows}. */
export interface WriteRowsOptions {
  /** File mode of the written file, for example `0o600`; default per the process umask. */
  mode?: number;
}

// Plain decimal notation only: Number() would also accept "0x1f", "Infinity" and "1_000"
// forms that no export tool writes for a data column and that hide upstream mistakes.
const NUMBER_PATTERN = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/;

// Long values are cut in error messages, which may be shown to a remote caller.
const MAX_VALUE_IN_MESSAGE = 40;

function shorten(value: string): string {
  return value.length > MAX_VALUE_IN_MESSAGE ? `${value.slice(0, MAX_VALUE_IN_MESSAGE)}…` : value;
}

function readRecords(path: string): string[][] {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') {
      throw fail('DATA_FILE_MISSING', { path }, { cause: err });
    }
    throw err;
  }
  if (bytes.toString('utf8').trim() === '') throw fail('DATA_EMPTY_FILE', { path });

  // Parsing runs synchronously on the whole file: about 0.3 s per MB here, during which
  // the event loop is blocked. Fine for files of the sample data's size (1 MB); a bank
  // export of hundreds of MB would want csv-parse's streaming API instead.
  let records: string[][];
  try {
    // A Buffer parses twice as fast as the same text decoded to a string first.
    records = parse(bytes, { bom: true, skip_empty_lines: true }) as string[][];
  } catch (err) {
    throw fail('DATA_MALFORMED', { path, detail: (err as Error).message }, { cause: err });
  }
  if (records.length === 0) throw fail('DATA_EMPTY_FILE', { path });

  const seen = new Set<string>();
  for (const column of records[0]) {
    if (seen.has(column)) {
      throw fail('DATA_MALFORMED', { path, detail: `column "${column}" appears twice` });
    }
    seen.add(column);
  }
  return records;
}

function columnIndex(path: string, header: string[], column: string): number {
  const index = header.indexOf(column);
  if (index < 0) throw fail('DATA_MISSING_COLUMN', { path, column });
  return index;
}

function readFeatureRows(
  path: string,
  schema: DatasetSchema,
  records: string[][],
): RawRow[] {
  const header = records[0];
  const numeric = schema.numeric.map((column) => columnIndex(path, header, column));
  const categorical = schema.categorical.map((column) => columnIndex(path, header, column));
  if (records.length < 2) throw fail('DATA_EMPTY_FILE', { path });

  const rows: RawRow[] = new Array(records.length - 1);
  for (let r = 1; r < records.length; r++) {
    const record = records[r];
    const row: RawRow = {};
    for (let k = 0; k < numeric.length; k++) {
      const cell = record[numeric[k]];
      if (cell.trim() === '') {
        row[schema.numeric[k]] = null;
      } else if (NUMBER_PATTERN.test(cell)) {
        row[schema.numeric[k]] = cell;
      } else {
        const column = schema.numeric[k];
        throw fail('DATA_NOT_NUMERIC', { path, row: r, column, value: shorten(cell) });
      }
    }
    for (let k = 0; k < categorical.length; k++) {
      const cell = record[categorical[k]];
      row[schema.categorical[k]] = cell.trim() === '' ? null : cell;
    }
    rows[r - 1] = row;
  }
  return rows;
}

/**
 * Reads a labelled CSV: the schema's feature columns (numeric ones checked to be numbers)
 * and its target column, mapped to 1 for the positive label and 0 for the negative one.
 * Rows hold only the schema's feature columns, never the target. A cell that is empty or
 * only whitespace is missing (`null`). Data rows are numbered from 1 in errors.
 *
 * @throws DATA_FILE_MISSING, DATA_EMPTY_FILE (no header or no data row), DATA_MALFORMED,
 *   DATA_MISSING_COLUMN, DATA_NOT_NUMERIC, DATA_BAD_LABEL.
 */
export function readLabelledRows(path: string, schema: DatasetSchema): LabelledRows {
  const records = readRecords(path);
  const target = columnIndex(path, records[0], schema.target);
  const rows = readFeatureRows(path, schema, records);

  const labels = new Uint8Array(rows.length);
  for (let r = 1; r < records.length; r++) {
    const value = records[r][target];
    if (value === schema.positiveLabel) {
      labels[r - 1] = 1;
    } else if (value !== schema.negativeLabel) {
      const allowed = `"${schema.positiveLabel}", "${schema.negativeLabel}"`;
      throw fail('DATA_BAD_LABEL', { path, row: r, value: shorten(value), allowed });
    }
  }
  return { rows, labels };
}

/**
 * Reads an unlabelled CSV such as a transfer set: the schema's feature columns only. A
 * target column, if the file has one, is ignored and never read, so that a file exported
 * with labels cannot leak them into the distillation inputs.
 *
 * @throws as {@link readLabelledRows}, except DATA_BAD_LABEL.
 */
export function readUnlabelledRows(path: string, schema: DatasetSchema): RawRow[] {
  return readFeatureRows(path, schema, readRecords(path));
}

/**
 * Reads any CSV as raw strings: its header and every row keyed by it, an empty cell as
 * `null`. A file with a header and no data row gives no rows.
 *
 * @throws DATA_FILE_MISSING, DATA_EMPTY_FILE (no header), DATA_MALFORMED.
 */
export function readAllRows(path: string): { columns: string[]; rows: RawRow[] } {
  const records = readRecords(path);
  const columns = records[0];
  const rows = records.slice(1).map((record) => {
    const row: RawRow = {};
    for (let c = 0; c < columns.length; c++) {
      row[columns[c]] = record[c] === '' ? null : record[c];
    }
    return row;
  });
  return { columns, rows };
}

function quoteCell(value: string): string {
  // Quote whatever a reader could otherwise split, merge or trim.
  if (/[",\r\n]/.test(value) || value !== value.trim() || value.startsWith('\uFEFF')) {
    return `"${value.replace(/"/g, '""')}"`;
  }
  return value;
}

/**
 * Writes rows as a CSV with the given columns, quoting cells as needed, so that
 * {@link readAllRows} gives back the same columns and rows. `null`, an absent key and an
 * empty string are all written as an empty cell, which reads back as `null`. Parent
 * folders are created; the file is written to a temporary name and renamed into place, so
 * a reader never sees half a file.
 */
export function writeRows(
  path: string,
  columns: readonly string[],
  rows: readonly RawRow[],
  options: WriteRowsOptions = {},
): void {
  const lines: string[] = [columns.map(quoteCell).join(',')];
  for (const row of rows) {
    const line = columns.map((column) => quoteCell(row[column] ?? '')).join(',');
    // A one-column row with an empty cell would be a blank line, which readers skip.
    lines.push(line === '' ? '""' : line);
  }

  mkdirSync(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(temporary, `${lines.join('\n')}\n`, { mode: options.mode });
    // writeFileSync applies the mode only when it creates the file.
    if (options.mode !== undefined) chmodSync(temporary, options.mode);
    renameSync(temporary, path);
  } catch (err) {
    rmSync(temporary, { force: true });
    throw err;
  }
}

/** The columns a labelled file of this schema has, in writing order: features then target. */
export function labelledColumns(schema: DatasetSchema): string[] {
  return [...featureColumns(schema), schema.target];
}
