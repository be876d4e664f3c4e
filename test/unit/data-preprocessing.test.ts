import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readLabelledRows, type RawRow } from '../../services/shared/data/csv.js';
import {
  CREDIT_DATA,
  LENDING_CLUB,
  type DatasetSchema,
} from '../../services/shared/data/dataset-schema.js';
import {
  encodeRows,
  featureDim,
  fitPreprocessor,
  DEFAULT_MIN_LEVEL_COUNT,
  MISSING_LEVEL,
  parsePreprocessorSpec,
} from '../../services/shared/data/preprocessing.js';
import { DistilleryError } from '../../services/shared/errors.js';

const DATA = fileURLToPath(new URL('../../data/', import.meta.url));

const SCHEMA: DatasetSchema = {
  name: 'tiny',
  target: 'y',
  positiveLabel: 'bad',
  negativeLabel: 'good',
  numeric: ['n', 'flat'],
  categorical: ['colour'],
};

const ROWS: RawRow[] = [
  { n: '1', flat: '5', colour: 'red' },
  { n: '3', flat: '5', colour: 'blue' },
  { n: null, flat: '5', colour: null },
  { n: '10', flat: '5', colour: 'red' },
];

// The hand-worked rows are too few for the default rare-level rule; it has its own tests.
const KEEP_ALL = { minLevelCount: 1 };

describe('fitPreprocessor on a hand-worked example', () => {
  const spec = fitPreprocessor(ROWS, SCHEMA, KEEP_ALL);

  it('imputes the median of present values, then takes mean and population std of the imputed column', () => {
    // Present 1, 3, 10 → median 3; imputed column 1, 3, 3, 10.
    const mean = (1 + 3 + 3 + 10) / 4;
    const std = Math.sqrt(((1 - mean) ** 2 + 2 * (3 - mean) ** 2 + (10 - mean) ** 2) / 4);
    expect(spec.numeric[0]).toEqual({ column: 'n', median: 3, mean, std });
  });

  it('uses std 1 for a constant column', () => {
    expect(spec.numeric[1]).toEqual({ column: 'flat', median: 5, mean: 5, std: 1 });
  });

  it('sorts levels and adds the missing level last when a row lacks the value', () => {
    expect(spec.categorical[0].levels).toEqual(['blue', 'red', MISSING_LEVEL]);
    expect(spec.featureNames).toEqual([
      'n',
      'flat',
      'colour=blue',
      'colour=red',
      `colour=${MISSING_LEVEL}`,
    ]);
    expect(featureDim(spec)).toBe(5);
  });

  it('adds no missing level to a column that is never missing', () => {
    const full = fitPreprocessor(
      ROWS.filter((row) => row.colour !== null),
      SCHEMA,
      KEEP_ALL,
    );
    expect(full.categorical[0].levels).toEqual(['blue', 'red']);
  });
});

describe('encodeRows', () => {
  const spec = fitPreprocessor(ROWS, SCHEMA, KEEP_ALL);
  const { mean, std } = spec.numeric[0];

  it('standardises, imputes and one-hot encodes row-major', () => {
    const x = encodeRows(spec, [
      { n: '1', flat: '5', colour: 'red' },
      { n: null, flat: null, colour: null },
    ]);
    const expected = [(1 - mean) / std, 0, 0, 1, 0, (3 - mean) / std, 0, 0, 0, 1];
    expect(Array.from(x)).toHaveLength(10);
    Array.from(x).forEach((value, i) => expect(value).toBeCloseTo(expected[i], 6));
  });

  it('encodes a level not seen at fit time as all zeros', () => {
    const x = encodeRows(spec, [{ n: '3', flat: '5', colour: 'green' }]);
    expect(Array.from(x.subarray(2))).toEqual([0, 0, 0]);
  });

  it('rejects a numeric cell that is not a number with DATA_NOT_NUMERIC', () => {
    expect(() => encodeRows(spec, [{ n: 'abc', flat: '5', colour: 'red' }])).toThrow(
      DistilleryError,
    );
  });
});

describe('parsePreprocessorSpec', () => {
  const spec = fitPreprocessor(ROWS, SCHEMA, KEEP_ALL);

  it('accepts a spec after a JSON round trip and returns an equal copy', () => {
    expect(parsePreprocessorSpec(JSON.parse(JSON.stringify(spec)))).toEqual(spec);
  });

  it('names the bad member of an invalid spec', () => {
    const bad = JSON.parse(JSON.stringify(spec));
    bad.numeric[1].std = 0;
    try {
      parsePreprocessorSpec(bad);
      expect.unreachable();
    } catch (err) {
      expect((err as DistilleryError).code).toBe('MODEL_PREPROCESSOR_INVALID');
      expect((err as Error).message).toContain('numeric[1].std');
    }
  });

  it('rejects a wrong version, duplicate levels and mismatched feature names', () => {
    const variants: unknown[] = [
      { ...spec, version: 2 },
      { ...spec, categorical: [{ column: 'colour', levels: ['a', 'a'] }] },
      { ...spec, featureNames: spec.featureNames.slice(1) },
      null,
    ];
    for (const variant of variants) {
      expect(() => parsePreprocessorSpec(variant)).toThrow(/preprocessor spec is invalid/);
    }
  });
});

describe('fitPreprocessor on the sample data', () => {
  it('gives 119 features on lending_club with every level kept; it has no missing cells', () => {
    const { rows } = readLabelledRows(join(DATA, 'lending_club.csv'), LENDING_CLUB);
    const spec = fitPreprocessor(rows, LENDING_CLUB, KEEP_ALL);
    expect(featureDim(spec)).toBe(17 + 2 + 35 + 50 + 3 + 12);
    expect(spec.featureNames.some((name) => name.endsWith(MISSING_LEVEL))).toBe(false);
  });

  it('gives missing levels to Home, Marital and Job on credit_data and encodes finite values', () => {
    const { rows } = readLabelledRows(join(DATA, 'credit_data.csv'), CREDIT_DATA);
    const spec = fitPreprocessor(rows, CREDIT_DATA, KEEP_ALL);
    const withMissing = spec.categorical.filter((c) => c.levels.includes(MISSING_LEVEL));
    expect(withMissing.map((c) => c.column)).toEqual(['Home', 'Marital', 'Job']);
    const x = encodeRows(spec, rows);
    expect(x.every(Number.isFinite)).toBe(true);
    // Standardised columns have mean 0 over the fitting rows.
    const dim = featureDim(spec);
    let sum = 0;
    for (let r = 0; r < rows.length; r++) sum += x[r * dim];
    expect(Math.abs(sum / rows.length)).toBeLessThan(1e-5);
  });
});

describe('fitPreprocessor with the default rare-level rule', () => {
  const rows: RawRow[] = [
    ...Array.from({ length: 12 }, () => ({ n: '1', flat: '5', colour: 'red' })),
    ...Array.from({ length: 3 }, () => ({ n: '2', flat: '5', colour: 'teal' })),
    ...Array.from({ length: 2 }, () => ({ n: '3', flat: '5', colour: null })),
  ];
  const spec = fitPreprocessor(rows, SCHEMA);

  it(`publishes no level held by fewer than ${DEFAULT_MIN_LEVEL_COUNT} rows, missing included`, () => {
    expect(spec.categorical[0].levels).toEqual(['red']);
    expect(spec.featureNames.join(' ')).not.toContain('teal');
  });

  it('encodes a rare level as all zeros for its column', () => {
    const x = encodeRows(spec, [{ n: '2', flat: '5', colour: 'teal' }]);
    expect(Array.from(x.subarray(2))).toEqual([0]);
  });

  it('drops rare lending_club states but keeps the common ones', () => {
    const { rows: all } = readLabelledRows(join(DATA, 'lending_club.csv'), LENDING_CLUB);
    const states = fitPreprocessor(all, LENDING_CLUB).categorical.find(
      (c) => c.column === 'addr_state',
    )!;
    const counts = new Map<string, number>();
    for (const row of all) counts.set(row.addr_state!, (counts.get(row.addr_state!) ?? 0) + 1);
    for (const [state, count] of counts) {
      expect(states.levels.includes(state)).toBe(count >= DEFAULT_MIN_LEVEL_COUNT);
    }
  });
});
