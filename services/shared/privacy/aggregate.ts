import { fail } from '../errors.js';
import type { NoiseSource } from './noise.js';
import { calibrateGaussianSigma, gaussianRdp, type RdpCurve } from './rdp-accountant.js';

/**
 * Differentially private releases by subsample-and-aggregate (Nissim, Raskhodnikova &
 * Smith 2007; PATE, Papernot et al. 2017 and 2018).
 *
 * THE UNIT OF PRIVACY is one row of the hub's private training data. Two datasets are
 * neighbours when they differ in one row, replaced in place (bounded DP). Noise on one
 * teacher's outputs bounds nothing with respect to such a row: retraining on a changed row
 * can move every output of that teacher by any amount. So the hub trains m teachers on m
 * disjoint shards of its rows, each shard chosen by row position alone (a seeded
 * permutation, never by content) and each teacher seeing only its own shard, including the
 * rows it stops early on. Changing one row changes one shard, hence one teacher, and
 * leaves the other m − 1 exactly as they were.
 *
 * - Gaussian ensemble: each released row is `(1/m) Σⱼ clip_C(pⱼ(x))` plus N(0, σ² I), where
 *   `pⱼ(x)` is teacher j's probability vector on transfer row x and `clip_C` scales a vector
 *   down to L2 norm at most C. Only one term changes, so the row moves by
 *   `‖clip_C(pⱼ) − clip_C(p′ⱼ)‖ / m`. Both vectors have norm ≤ C and no negative entry, so
 *   `‖u − v‖² = ‖u‖² + ‖v‖² − 2 u·v ≤ 2C²` (u·v ≥ 0): the per-row L2 sensitivity is
 *   `√2 · C / m` (for vectors that may be negative, such as logits, it would be 2C/m). All
 *   R released rows depend on the same changed teacher, so the release as a whole has L2
 *   sensitivity `√R · √2 · C / m`: R composed Gaussian mechanisms, RDP `R α Δ² / (2σ²)`.
 *   A probability vector has L2 norm at most 1, so C ≥ 1 clips nothing; C < 1 shrinks the
 *   signal and the noise alike and changes nothing but the scale.
 * - PATE (GNMax, Papernot et al. 2018): each teacher votes for its argmax class; the vote
 *   histogram plus N(0, σ² I) per class is released. One changed teacher moves one vote from
 *   one class to another: L2 sensitivity √2 per row, RDP `R α / σ²` over R rows. This is the
 *   data-independent analysis; the data-dependent one of the paper, which is tighter when
 *   teachers agree, is not used (it would make the released ε itself depend on the data).
 *
 * The guarantee covers the released values given everything the participant already holds
 * that does not depend on the private rows: the transfer set and the preprocessing. The
 * preprocessing is fitted on rows the caller chooses; fitted on the private rows (as the
 * hub does for its plain teacher), its medians, scales and category levels are published
 * in every version outside this guarantee. Teacher training randomness is independent of
 * the data, and the bound holds for every value of it, hence for the mixture.
 */

/** Per-row L2 sensitivity of the Gaussian ensemble average of `teachers` clipped vectors. */
export function ensembleRowSensitivity(teachers: number, clip: number, nonNegative = true): number {
  if (!(Number.isInteger(teachers) && teachers >= 1)) {
    throw fail('REQUEST_INVALID', {
      detail: `teachers must be a positive integer, got ${teachers}`,
    });
  }
  if (!(Number.isFinite(clip) && clip > 0)) {
    throw fail('REQUEST_INVALID', { detail: `clip must be a positive number, got ${clip}` });
  }
  return ((nonNegative ? Math.SQRT2 : 2) * clip) / teachers;
}

/** Per-row L2 sensitivity of a PATE vote histogram: one vote moves from one class to another. */
export const PATE_ROW_SENSITIVITY = Math.SQRT2;

/** A DP mechanism over an ensemble. */
export type EnsembleMechanism = 'gaussian' | 'pate';

/** What a calibrated release costs and how much noise it needs. */
export interface CalibratedRelease {
  mechanism: EnsembleMechanism;
  /** Noise standard deviation per released value. */
  sigma: number;
  /** Per-row L2 sensitivity the noise was calibrated for. */
  sensitivity: number;
  rows: number;
  /** RDP curve of this release alone. */
  rdp: RdpCurve;
}

/** Options of {@link calibrateEnsembleRelease}. */
export interface CalibrateEnsembleOptions {
  mechanism: EnsembleMechanism;
  /** Target (ε, δ) of this release (composed with `spent` when given). */
  epsilon: number;
  delta: number;
  /** Rows to release. */
  rows: number;
  /** Number of teachers m (Gaussian: the divisor of the average). */
  teachers: number;
  /** Gaussian only: the L2 clip C of each teacher's vector; default 1 (no clipping). */
  clip?: number;
  /** RDP already spent by the party this release is charged to. */
  spent?: RdpCurve;
}

/**
 * Calibrates σ for a release of `rows` rows by a mechanism so that the release (composed
 * with `spent`) is (ε, δ)-DP with respect to one private row, by the RDP accountant.
 */
export function calibrateEnsembleRelease(options: CalibrateEnsembleOptions): CalibratedRelease {
  const { mechanism, rows, teachers } = options;
  const sensitivity =
    mechanism === 'gaussian'
      ? ensembleRowSensitivity(teachers, options.clip ?? 1)
      : PATE_ROW_SENSITIVITY;
  const sigma = calibrateGaussianSigma({
    epsilon: options.epsilon,
    delta: options.delta,
    sensitivity,
    count: rows,
    spent: options.spent,
  });
  const rdp =
    sigma > 0
      ? gaussianRdp({ sensitivity, sigma, count: rows }, options.spent?.orders)
      : gaussianRdp({ sensitivity: 0, sigma: 1, count: rows }, options.spent?.orders);
  return { mechanism, sigma, sensitivity, rows, rdp };
}

function checkEnsemble(outputs: readonly Float32Array[], classes: number): number {
  if (outputs.length === 0) throw fail('REQUEST_INVALID', { detail: 'no teacher outputs' });
  const length = outputs[0].length;
  if (length % classes !== 0 || outputs.some((o) => o.length !== length)) {
    throw fail('MODEL_SHAPE_MISMATCH', {
      what: 'teacher ensemble outputs',
      expected: `equal n × ${classes} matrices`,
      actual: outputs.map((o) => o.length).join(', '),
    });
  }
  return length / classes;
}

/**
 * The Gaussian ensemble release: the average of the teachers' L2-clipped probability rows
 * plus N(0, σ²) on every value. `sigma = 0` gives the plain average (no privacy). The
 * result is raw: post-process it (for example `projectRowsToSimplex`) before use.
 */
export function noisyEnsembleAverage(options: {
  outputs: readonly Float32Array[];
  classes: number;
  clip?: number;
  sigma: number;
  noise: NoiseSource;
}): Float32Array {
  const { outputs, classes, sigma, noise } = options;
  const clip = options.clip ?? 1;
  const n = checkEnsemble(outputs, classes);
  const m = outputs.length;
  const out = new Float64Array(n * classes);
  for (const teacher of outputs) {
    for (let r = 0; r < n; r++) {
      const base = r * classes;
      let norm = 0;
      for (let c = 0; c < classes; c++) norm += teacher[base + c] ** 2;
      const scale = Math.min(1, clip / Math.sqrt(norm || 1));
      for (let c = 0; c < classes; c++) out[base + c] += (teacher[base + c] * scale) / m;
    }
  }
  const released = new Float32Array(out.length);
  for (let i = 0; i < out.length; i++) released[i] = out[i] + sigma * noise.gaussian();
  return released;
}

/** Vote histogram of an ensemble: per row, how many teachers put each class first. */
export function voteHistogram(outputs: readonly Float32Array[], classes: number): Float32Array {
  const n = checkEnsemble(outputs, classes);
  const votes = new Float32Array(n * classes);
  for (const teacher of outputs) {
    for (let r = 0; r < n; r++) {
      const base = r * classes;
      let best = 0;
      for (let c = 1; c < classes; c++) if (teacher[base + c] > teacher[base + best]) best = c;
      votes[base + best] += 1;
    }
  }
  return votes;
}

/**
 * GNMax release (Papernot et al. 2018): the vote histogram plus N(0, σ²) on every count.
 * The noisy argmax is the released label; the noisy counts themselves are released too
 * (post-processing of the same noisy histogram costs nothing more).
 */
export function gnmaxRelease(options: {
  outputs: readonly Float32Array[];
  classes: number;
  sigma: number;
  noise: NoiseSource;
}): Float32Array {
  const votes = voteHistogram(options.outputs, options.classes);
  for (let i = 0; i < votes.length; i++) votes[i] += options.sigma * options.noise.gaussian();
  return votes;
}

/**
 * Turns noisy vote counts into probability rows a student can learn from: negative counts
 * are cut to zero, a pseudo-count of `smoothing` is added to each class, rows normalised.
 */
export function votesToProbabilities(
  votes: Float32Array,
  classes: number,
  smoothing = 0.5,
): Float32Array {
  const out = new Float32Array(votes.length);
  for (let base = 0; base < votes.length; base += classes) {
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.max(0, votes[base + c]) + smoothing;
    for (let c = 0; c < classes; c++) {
      out[base + c] = (Math.max(0, votes[base + c]) + smoothing) / sum;
    }
  }
  return out;
}
