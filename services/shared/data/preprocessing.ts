import { fail } from '../errors.js';
import type { RawRow } from './csv.js';
import type { DatasetSchema } from './dataset-schema.js';

/**
 * Fewest fitting rows a categorical level needs for a feature of its own. Rarer levels are
 * not published with the preprocessing (see fitCategorical).
 */
export const DEFAULT_MIN_LEVEL_COUNT = 10;

/** Options of {@link fitPreprocessor}. */
export interface FitPreprocessorOptions {
  /** Default {@link DEFAULT_MIN_LEVEL_COUNT}; 1 keeps every level. */
  minLevelCount?: number;
}

/** The level that stands for a missing categorical cell. */
export const MISSING_LEVEL = '__missing__';

/** How one numeric column is imputed and scaled. */
export interface NumericColumnSpec {
  column: string;
  /** Replaces a missing cell, before scaling. */
  median: number;
  /** Of the imputed column. */
  mean: number;
  /** Population standard deviation of the imputed column; 1 where it was 0. */
  std: number;
}

/** How one categorical column is one-hot encoded. */
export interface CategoricalColumnSpec {
  column: string;
  /** One output feature per level, in this order. */
  levels: string[];
}

/**
 * A fitted preprocessor, JSON-serialisable so that the hub can publish it with a knowledge
 * version and every participant encodes its rows exactly as the teacher's were.
 */
export interface PreprocessorSpec {
  version: 1;
  dataset: string;
  numeric: NumericColumnSpec[];
  categorical: CategoricalColumnSpec[];
  /** One name per encoded feature: numeric columns, then `column=level` per level. */
  featureNames: string[];
}

function parseCell(value: string, column: string, row: number): number {
  const number = Number(value);
  if (!Number.isFinite(number)) {
    throw fail('DATA_NOT_NUMERIC', { path: '(rows)', row: row + 1, column, value });
  }
  return number;
}

function median(sorted: Float64Array): number {
  if (sorted.length === 0) return 0;
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function fitNumeric(rows: readonly RawRow[], column: string): NumericColumnSpec {
  const present: number[] = [];
  for (let r = 0; r < rows.length; r++) {
    const cell = rows[r][column];
    if (cell != null) present.push(parseCell(cell, column, r));
  }
  // A column missing in every row imputes 0 and scales by 1: it then encodes as zeros.
  const med = median(Float64Array.from(present).sort());

  let sum = 0;
  for (const value of present) sum += value;
  const imputed = rows.length - present.length;
  const n = rows.length;
  const mean = n === 0 ? 0 : (sum + imputed * med) / n;

  let squares = imputed * (med - mean) ** 2;
  for (const value of present) squares += (value - mean) ** 2;
  const std = n === 0 ? 0 : Math.sqrt(squares / n);
  return { column, median: med, mean, std: std > 0 ? std : 1 };
}

function fitCategorical(
  rows: readonly RawRow[],
  column: string,
  minLevelCount: number,
): CategoricalColumnSpec {
  const counts = new Map<string, number>();
  let missing = 0;
  for (const row of rows) {
    const cell = row[column];
    if (cell == null || cell === MISSING_LEVEL) missing++;
    else counts.set(cell, (counts.get(cell) ?? 0) + 1);
  }
  // The levels travel to every participant inside each knowledge version, so a level held
  // by only a few of the hub's rows would tell them those rows exist (a state with one
  // borrower, say). Levels rarer than `minLevelCount` get no feature of their own; rows
  // holding them encode as all zeros for the column, like a level never seen.
  const levels = [...counts.entries()]
    .filter(([, count]) => count >= minLevelCount)
    .map(([level]) => level)
    .sort();
  // Missing gets a level only when the fitting rows have it, so that a column that is
  // never missing adds no feature that is always zero.
  if (missing >= minLevelCount) levels.push(MISSING_LEVEL);
  return { column, levels };
}

function buildFeatureNames(
  numeric: readonly NumericColumnSpec[],
  categorical: readonly CategoricalColumnSpec[],
): string[] {
  const names = numeric.map((spec) => spec.column);
  for (const spec of categorical) {
    for (const level of spec.levels) names.push(`${spec.column}=${level}`);
  }
  return names;
}

/**
 * Fits the preprocessing policy on rows (the hub's training rows only): for numeric
 * columns median imputation, then standardisation by the imputed column's mean and
 * population standard deviation (1 where that is 0); for categorical columns one-hot
 * encoding over the sorted levels seen, with a missing cell as its own level
 * {@link MISSING_LEVEL} when some fitting row lacks it. A cell whose value is literally
 * `__missing__` is treated as missing. Levels (missing included) held by fewer than
 * `minLevelCount` rows get no feature of their own.
 */
export function fitPreprocessor(
  rows: readonly RawRow[],
  schema: DatasetSchema,
  options: FitPreprocessorOptions = {},
): PreprocessorSpec {
  const minLevelCount = options.minLevelCount ?? DEFAULT_MIN_LEVEL_COUNT;
  const numeric = schema.numeric.map((column) => fitNumeric(rows, column));
  const categorical = schema.categorical.map((column) =>
    fitCategorical(rows, column, minLevelCount),
  );
  return {
    version: 1,
    dataset: schema.name,
    numeric,
    categorical,
    featureNames: buildFeatureNames(numeric, categorical),
  };
}

/** Number of features {@link encodeRows} writes per row. */
export function featureDim(spec: PreprocessorSpec): number {
  let dim = spec.numeric.length;
  for (const column of spec.categorical) dim += column.levels.length;
  return dim;
}

/**
 * Encodes rows into a row-major `rows.length × featureDim(spec)` matrix. A categorical
 * level not seen at fit time, and a missing cell where the fit saw none, encode as all
 * zeros for that column: the model then sees "none of the known levels" rather than a
 * guess.
 *
 * @throws DATA_NOT_NUMERIC for a numeric cell that is not a finite number.
 */
export function encodeRows(spec: PreprocessorSpec, rows: readonly RawRow[]): Float32Array {
  const dim = featureDim(spec);
  const out = new Float32Array(rows.length * dim);
  const lookups = spec.categorical.map((column) => {
    const map = new Map<string, number>();
    column.levels.forEach((level, index) => map.set(level, index));
    return map;
  });

  for (let r = 0; r < rows.length; r++) {
    const row = rows[r];
    const base = r * dim;
    for (let k = 0; k < spec.numeric.length; k++) {
      const { column, median: med, mean, std } = spec.numeric[k];
      const cell = row[column];
      const value = cell == null ? med : parseCell(cell, column, r);
      out[base + k] = (value - mean) / std;
    }

    let offset = base + spec.numeric.length;
    for (let k = 0; k < spec.categorical.length; k++) {
      const cell = row[spec.categorical[k].column];
      const index = lookups[k].get(cell ?? MISSING_LEVEL);
      if (index !== undefined) out[offset + index] = 1;
      offset += spec.categorical[k].levels.length;
    }
  }
  return out;
}

function invalid(detail: string): never {
  throw fail('MODEL_PREPROCESSOR_INVALID', { detail });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readString(value: unknown, path: string): string {
  if (typeof value !== 'string' || value === '') invalid(`${path} must be a non-empty string`);
  return value;
}

function readFinite(value: unknown, path: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    invalid(`${path} must be a finite number`);
  }
  return value;
}

function readArray(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) invalid(`${path} must be an array`);
  return value;
}

function readNumericSpec(value: unknown, path: string): NumericColumnSpec {
  if (!isRecord(value)) invalid(`${path} must be an object`);
  const std = readFinite(value.std, `${path}.std`);
  if (std <= 0) invalid(`${path}.std must be positive`);
  return {
    column: readString(value.column, `${path}.column`),
    median: readFinite(value.median, `${path}.median`),
    mean: readFinite(value.mean, `${path}.mean`),
    std,
  };
}

function readCategoricalSpec(value: unknown, path: string): CategoricalColumnSpec {
  if (!isRecord(value)) invalid(`${path} must be an object`);
  const levels = readArray(value.levels, `${path}.levels`).map((level, i) => {
    if (typeof level !== 'string') invalid(`${path}.levels[${i}] must be a string`);
    return level;
  });
  if (new Set(levels).size !== levels.length) invalid(`${path}.levels has duplicates`);
  return { column: readString(value.column, `${path}.column`), levels };
}

/**
 * Validates a parsed JSON value as a {@link PreprocessorSpec} and returns a clean copy
 * (unknown members dropped).
 *
 * @throws MODEL_PREPROCESSOR_INVALID naming the first bad member, e.g. `numeric[2].std`.
 */
export function parsePreprocessorSpec(json: unknown): PreprocessorSpec {
  if (!isRecord(json)) invalid('the spec must be an object');
  if (json.version !== 1) invalid(`version must be 1, got ${JSON.stringify(json.version)}`);
  const dataset = readString(json.dataset, 'dataset');
  const numeric = readArray(json.numeric, 'numeric').map((value, i) =>
    readNumericSpec(value, `numeric[${i}]`),
  );
  const categorical = readArray(json.categorical, 'categorical').map((value, i) =>
    readCategoricalSpec(value, `categorical[${i}]`),
  );

  const columns = [...numeric, ...categorical].map((spec) => spec.column);
  const duplicate = columns.find((column, i) => columns.indexOf(column) !== i);
  if (duplicate !== undefined) invalid(`column "${duplicate}" is listed twice`);

  const featureNames = buildFeatureNames(numeric, categorical);
  const given = readArray(json.featureNames, 'featureNames');
  const mismatch = featureNames.findIndex((name, i) => given[i] !== name);
  if (given.length !== featureNames.length || mismatch >= 0) {
    invalid('featureNames do not match the numeric columns and categorical levels');
  }
  return { version: 1, dataset, numeric, categorical, featureNames };
}

/**
 * The first encoded value that is not finite, as a 1-based row and a feature name; null when
 * every value is finite. A value that parses (1e300, say) can still break the scaling: the
 * column's variance overflows and every row of it encodes as infinity, which would train a
 * teacher on nothing without any error.
 */
export function findNonFinite(
  spec: PreprocessorSpec,
  x: Float32Array,
): { row: number; feature: string } | null {
  const dim = featureDim(spec);
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) {
      return { row: Math.floor(i / dim) + 1, feature: spec.featureNames[i % dim] };
    }
  }
  return null;
}
