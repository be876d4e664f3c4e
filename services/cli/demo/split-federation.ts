import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../../shared/errors.js';
import { readAllRows, readLabelledRows, writeRows, type RawRow } from '../../shared/data/csv.js';
import { getDatasetSchema } from '../../shared/data/dataset-schema.js';
import { splitStratified } from '../../shared/data/split.js';

/** Options of {@link splitFederation}. */
export interface FederationSplitOptions {
  /** Labelled CSV to split, e.g. data/lending_club.csv. */
  input: string;
  dataset: string;
  outDir: string;
  seed: number;
  participants: string[];
  /** Share of rows each party gets; defaults below. */
  hubFraction?: number;
  transferFraction?: number;
  testFraction?: number;
  participantFraction?: number;
  /** Replace files an earlier split wrote; default false. */
  force?: boolean;
}

/** Row and positive counts of one part of the split. */
export interface PartCount {
  rows: number;
  positives: number;
}

/** What {@link splitFederation} wrote. */
export interface FederationSplit {
  hubDir: string;
  participantDirs: Record<string, string>;
  counts: Record<string, PartCount>;
}

/**
 * Splits one labelled dataset into what each party of a federation holds, stratified by
 * label and deterministic by seed (the protocol of REFERENCE-RESULTS.md):
 *
 * - `<out>/hub/private.csv`: the hub's private labelled rows (default 50%);
 * - `<out>/<party>/transfer.csv` for the hub and every participant: the transfer set, inputs
 *   only, its label column removed before it is written (default 20%);
 * - `<out>/<participant>/own.csv`: each bank's private labelled rows (default 5% each);
 * - `<out>/<party>/test.csv`: held-out labelled rows every party evaluates on (default 20%).
 *
 * Each directory is meant for one process: the hub reads only `hub/`, a bank only its own.
 */
export function splitFederation(options: FederationSplitOptions): FederationSplit {
  const schema = getDatasetSchema(options.dataset);
  const labelled = readLabelledRows(options.input, schema);
  const { columns, rows } = readAllRows(options.input);
  const participantFraction = options.participantFraction ?? 0.05;
  const fractions: Record<string, number> = {
    hub: options.hubFraction ?? 0.5,
    transfer: options.transferFraction ?? 0.2,
    test: options.testFraction ?? 0.2,
  };
  for (const p of options.participants) {
    if (p in fractions) throw fail('PKI_BAD_NAME', { name: p });
    fractions[p] = participantFraction;
  }
  const total = Object.values(fractions).reduce((a, b) => a + b, 0);
  if (total > 1 + 1e-9) {
    throw fail('CONFIG_INVALID', {
      detail: `split fractions add up to ${total.toFixed(3)}, more than 1`,
    });
  }

  const targets = [join(options.outDir, 'hub', 'private.csv')].concat(
    options.participants.map((p) => join(options.outDir, p, 'own.csv')),
  );
  const existing = targets.find((path) => existsSync(path));
  if (existing && !options.force) {
    throw fail('PKI_ALREADY_EXISTS', { what: 'a split', path: existing });
  }

  const parts = splitStratified(labelled.labels, fractions, options.seed);
  const pick = (name: string): RawRow[] => Array.from(parts[name], (i) => rows[i]);
  const inputColumns = columns.filter((c) => c !== schema.target);
  const withoutTarget = (list: RawRow[]) =>
    list.map((row) => Object.fromEntries(inputColumns.map((c) => [c, row[c] ?? null])));

  const transfer = withoutTarget(pick('transfer'));
  const test = pick('test');
  const hubDir = join(options.outDir, 'hub');
  writeRows(join(hubDir, 'private.csv'), columns, pick('hub'), { mode: 0o600 });
  writeRows(join(hubDir, 'transfer.csv'), inputColumns, transfer);
  writeRows(join(hubDir, 'test.csv'), columns, test);

  const participantDirs: Record<string, string> = {};
  for (const p of options.participants) {
    const dir = join(options.outDir, p);
    participantDirs[p] = dir;
    writeRows(join(dir, 'own.csv'), columns, pick(p), { mode: 0o600 });
    writeRows(join(dir, 'transfer.csv'), inputColumns, transfer);
    writeRows(join(dir, 'test.csv'), columns, test);
  }

  const counts: Record<string, PartCount> = {};
  for (const [name, indices] of Object.entries(parts)) {
    let positives = 0;
    for (const i of indices) positives += labelled.labels[i];
    counts[name] = { rows: indices.length, positives };
  }
  return { hubDir, participantDirs, counts };
}
