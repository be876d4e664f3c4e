import { fail } from '../errors.js';

/**
 * The columns of a tabular credit dataset and how its binary target is spelled. Every
 * column that is neither the target nor listed as numeric or categorical is ignored.
 */
export interface DatasetSchema {
  /** Short identifier, as used on the command line and in manifests. */
  name: string;
  /** Name of the label column. */
  target: string;
  /** Label value of the positive class (the one scored, "bad" for defaults). */
  positiveLabel: string;
  /** Label value of the negative class. */
  negativeLabel: string;
  /** Columns read as numbers; an empty cell is a missing value. */
  numeric: readonly string[];
  /** Columns read as categories; an empty cell is a missing value. */
  categorical: readonly string[];
}

/** Lending Club loans of Q1 2016 (`data/lending_club.csv`); "bad" is about 5% of rows. */
export const LENDING_CLUB: DatasetSchema = Object.freeze({
  name: 'lending_club',
  target: 'Class',
  positiveLabel: 'bad',
  negativeLabel: 'good',
  numeric: Object.freeze([
    'funded_amnt',
    'int_rate',
    'annual_inc',
    'delinq_2yrs',
    'inq_last_6mths',
    'revol_util',
    'acc_now_delinq',
    'open_il_6m',
    'open_il_12m',
    'open_il_24m',
    'total_bal_il',
    'all_util',
    'inq_fi',
    'inq_last_12m',
    'delinq_amnt',
    'num_il_tl',
    'total_il_high_credit_limit',
  ]),
  categorical: Object.freeze([
    'term',
    'sub_grade',
    'addr_state',
    'verification_status',
    'emp_length',
  ]),
});

/** A credit-scoring set with missing cells (`data/credit_data.csv`); "bad" is about 28%. */
export const CREDIT_DATA: DatasetSchema = Object.freeze({
  name: 'credit_data',
  target: 'Status',
  positiveLabel: 'bad',
  negativeLabel: 'good',
  numeric: Object.freeze([
    'Seniority',
    'Time',
    'Age',
    'Expenses',
    'Income',
    'Assets',
    'Debt',
    'Amount',
    'Price',
  ]),
  categorical: Object.freeze(['Home', 'Marital', 'Records', 'Job']),
});

const SCHEMAS: ReadonlyMap<string, DatasetSchema> = new Map(
  [LENDING_CLUB, CREDIT_DATA].map((schema) => [schema.name, schema]),
);

/** Names of the datasets {@link getDatasetSchema} knows, in a stable order. */
export function listDatasetNames(): string[] {
  return [...SCHEMAS.keys()];
}

/**
 * Looks up a built-in dataset schema by name.
 *
 * @throws DATA_UNKNOWN_DATASET when no schema has that name.
 */
export function getDatasetSchema(name: string): DatasetSchema {
  const schema = SCHEMAS.get(name);
  if (schema === undefined) {
    throw fail('DATA_UNKNOWN_DATASET', { name, known: listDatasetNames().join(', ') });
  }
  return schema;
}

/** The feature columns of a schema: numeric ones first, then categorical ones. */
export function featureColumns(schema: DatasetSchema): string[] {
  return [...schema.numeric, ...schema.categorical];
}
