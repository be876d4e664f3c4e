import { describe, expect, it } from 'vitest';
import {
  CREDIT_DATA,
  featureColumns,
  getDatasetSchema,
  LENDING_CLUB,
  listDatasetNames,
} from '../../services/shared/data/dataset-schema.js';
import { hasCode } from '../../services/shared/errors.js';

describe('getDatasetSchema', () => {
  it('returns the built-in schemas by name', () => {
    expect(getDatasetSchema('lending_club')).toBe(LENDING_CLUB);
    expect(getDatasetSchema('credit_data')).toBe(CREDIT_DATA);
    expect(listDatasetNames()).toEqual(['lending_club', 'credit_data']);
  });

  it('rejects an unknown name with DATA_UNKNOWN_DATASET listing the known ones', () => {
    try {
      getDatasetSchema('iris');
      expect.unreachable();
    } catch (err) {
      expect(hasCode(err, 'DATA_UNKNOWN_DATASET')).toBe(true);
      expect((err as Error).message).toContain('lending_club, credit_data');
    }
  });
});

describe('LENDING_CLUB', () => {
  it('has 17 numeric and 5 categorical columns and "bad" as the positive label', () => {
    expect(LENDING_CLUB.numeric).toHaveLength(17);
    expect(LENDING_CLUB.categorical).toEqual([
      'term',
      'sub_grade',
      'addr_state',
      'verification_status',
      'emp_length',
    ]);
    expect(LENDING_CLUB.target).toBe('Class');
    expect(LENDING_CLUB.positiveLabel).toBe('bad');
  });
});

describe('featureColumns', () => {
  it('lists numeric columns first, then categorical ones, without the target', () => {
    const columns = featureColumns(CREDIT_DATA);
    expect(columns).toHaveLength(13);
    expect(columns.slice(-4)).toEqual(['Home', 'Marital', 'Records', 'Job']);
    expect(columns).not.toContain('Status');
  });
});
