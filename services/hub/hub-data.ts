import { existsSync } from 'node:fs';
import { sha256Hex } from '../shared/digest.js';
import { fail } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { readLabelledRows, readUnlabelledRows } from '../shared/data/csv.js';
import { getDatasetSchema } from '../shared/data/dataset-schema.js';
import {
  encodeRows,
  featureDim,
  findNonFinite,
  fitPreprocessor,
  type PreprocessorSpec,
} from '../shared/data/preprocessing.js';
import { splitStratified } from '../shared/data/split.js';

/** The hub's own files: only the hub process ever opens them. */
export interface HubDataFiles {
  dataset: string;
  /** Labelled private rows: the teacher's training data. Never leaves the hub. */
  privateRows: string;
  /** The consortium's unlabelled transfer set. */
  transferRows: string;
  /** Optional labelled test rows, to report the teacher's test AUC. */
  testRows?: string;
}

/** The hub's rows, encoded: what the teacher trains on and what it is run on. */
export interface HubData {
  spec: PreprocessorSpec;
  inputDim: number;
  train: { x: Float32Array; y: Uint8Array };
  validation: { x: Float32Array; y: Uint8Array };
  transfer: { x: Float32Array; rows: number; encodedSha256: string };
  test?: { x: Float32Array; y: Uint8Array; rows: number };
}

/**
 * Reads and checks the hub's files, fits the preprocessing on the private rows and encodes
 * every set with it. The hub calls this before it opens its registry or a port, so that a
 * bad data file stops it at once with an error naming the file, and nothing is touched.
 *
 * @param seed Seed of the 85/15 training/validation split of the private rows.
 */
export function loadHubData(files: HubDataFiles, seed: number, logger: Logger): HubData {
  const schema = getDatasetSchema(files.dataset);
  const labelled = readLabelledRows(files.privateRows, schema);
  const spec = fitPreprocessor(labelled.rows, schema);
  const inputDim = featureDim(spec);
  const x = encodeRows(spec, labelled.rows);
  checkFinite(spec, x, files.privateRows);

  const parts = splitStratified(labelled.labels, { train: 0.85, validation: 0.15 }, seed);
  const transferRows = readUnlabelledRows(files.transferRows, schema);
  const transferX = encodeRows(spec, transferRows);
  checkFinite(spec, transferX, files.transferRows);
  const transferBytes = new Uint8Array(
    transferX.buffer,
    transferX.byteOffset,
    transferX.byteLength,
  );

  let test: HubData['test'];
  if (files.testRows && existsSync(files.testRows)) {
    const t = readLabelledRows(files.testRows, schema);
    test = { x: encodeRows(spec, t.rows), y: t.labels, rows: t.rows.length };
  }
  logger.info(
    { privateRows: labelled.rows.length, transferRows: transferRows.length, inputDim },
    'hub data loaded',
  );
  return {
    spec,
    inputDim,
    train: selectRows(x, labelled.labels, inputDim, parts.train),
    validation: selectRows(x, labelled.labels, inputDim, parts.validation),
    transfer: { x: transferX, rows: transferRows.length, encodedSha256: sha256Hex(transferBytes) },
    test,
  };
}

function checkFinite(spec: PreprocessorSpec, x: Float32Array, path: string): void {
  const bad = findNonFinite(spec, x);
  if (bad) {
    throw fail('DATA_MALFORMED', {
      path,
      detail: `row ${bad.row}, column "${bad.feature}" does not scale to a finite number (a value too large for the column?)`,
    });
  }
}

function selectRows(x: Float32Array, y: Uint8Array, dim: number, indices: Uint32Array) {
  const outX = new Float32Array(indices.length * dim);
  const outY = new Uint8Array(indices.length);
  indices.forEach((row, i) => {
    outX.set(x.subarray(row * dim, (row + 1) * dim), i * dim);
    outY[i] = y[row];
  });
  return { x: outX, y: outY };
}
