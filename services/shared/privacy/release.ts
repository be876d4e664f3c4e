import { fail } from '../errors.js';

/**
 * Release transforms over a teacher's outputs: row-major `n × classes` matrices. None of
 * these is differentially private by itself; they limit what one answer reveals (a label
 * says less than a probability), and the row cap limits how many answers there are. The
 * mechanisms with a proven guarantee are in `aggregate.ts`.
 */

function rowsOf(values: Float32Array, classes: number, what: string): number {
  if (!(Number.isInteger(classes) && classes >= 2) || values.length % classes !== 0) {
    throw fail('MODEL_SHAPE_MISMATCH', {
      what,
      expected: `rows of ${classes} classes`,
      actual: `${values.length} values`,
    });
  }
  return values.length / classes;
}

/** `softmax(logits / temperature)` row by row, computed stably in double precision. */
export function softmaxRows(logits: Float32Array, classes: number, temperature = 1): Float32Array {
  if (!(Number.isFinite(temperature) && temperature > 0)) {
    throw fail('REQUEST_INVALID', { detail: `temperature must be positive, got ${temperature}` });
  }
  const n = rowsOf(logits, classes, 'logits');
  const out = new Float32Array(logits.length);
  for (let r = 0; r < n; r++) {
    const base = r * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[base + c] / temperature);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(logits[base + c] / temperature - max);
    for (let c = 0; c < classes; c++) {
      out[base + c] = Math.exp(logits[base + c] / temperature - max) / sum;
    }
  }
  return out;
}

/**
 * The temperature probabilities are released at: the one asked for, but never below the
 * grant's floor. A floor keeps released probabilities soft. It is a calibration control,
 * not a privacy one on its own: without rounding or noise, probabilities at any finite
 * temperature can be turned back into logit differences.
 */
export function effectiveTemperature(requested: number, floor: number | undefined): number {
  if (!(Number.isFinite(requested) && requested > 0)) {
    throw fail('REQUEST_INVALID', { detail: `temperature must be positive, got ${requested}` });
  }
  return floor === undefined ? requested : Math.max(requested, floor);
}

/**
 * Top-k release: each row keeps its k largest probabilities; the mass of the other classes
 * is spread evenly over them, so the row still sums to one but says nothing about how the
 * rest divides. With two classes and k = 1 this withholds nothing (the other probability
 * is one minus the top one); it narrows what is released only with more classes.
 */
export function topKProbabilities(
  probabilities: Float32Array,
  classes: number,
  k: number,
): Float32Array {
  const n = rowsOf(probabilities, classes, 'probabilities');
  if (!(Number.isInteger(k) && k >= 1 && k <= classes)) {
    throw fail('REQUEST_INVALID', { detail: `k must be an integer in [1, ${classes}], got ${k}` });
  }
  const out = new Float32Array(probabilities.length);
  const order = Array.from({ length: classes }, (_, c) => c);
  for (let r = 0; r < n; r++) {
    const base = r * classes;
    // Ties go to the lower class index, so the same row always gives the same release.
    order.sort((a, b) => probabilities[base + b] - probabilities[base + a] || a - b);
    let kept = 0;
    for (let i = 0; i < k; i++) {
      out[base + order[i]] = probabilities[base + order[i]];
      kept += probabilities[base + order[i]];
    }
    const rest = classes === k ? 0 : Math.max(0, 1 - kept) / (classes - k);
    for (let i = k; i < classes; i++) out[base + order[i]] = rest;
  }
  return out;
}

/** Label-only release: a one-hot row for the teacher's argmax (ties to the lower index). */
export function labelOnly(scores: Float32Array, classes: number): Float32Array {
  const n = rowsOf(scores, classes, 'teacher outputs');
  const out = new Float32Array(scores.length);
  for (let r = 0; r < n; r++) {
    const base = r * classes;
    let best = 0;
    for (let c = 1; c < classes; c++) if (scores[base + c] > scores[base + best]) best = c;
    out[base + best] = 1;
  }
  return out;
}

/** Row cap of a grant: at most `cap` rows per period. */
export interface RowCap {
  cap: number;
  /** Rows already released to this participant in the current period. */
  used: number;
}

/**
 * How many of `asked` rows may be released under a cap: all of them while the cap allows,
 * otherwise what is left of it (possibly none).
 */
export function rowsAllowed(asked: number, cap: RowCap | undefined): number {
  if (cap === undefined) return asked;
  return Math.max(0, Math.min(asked, cap.cap - cap.used));
}

/**
 * Euclidean projection of every row onto the probability simplex (Duchi et al. 2008,
 * "Efficient Projections onto the l1-Ball", Fig. 1). Post-processing of noisy releases, so
 * it costs no privacy; a student can then use them as soft targets.
 */
export function projectRowsToSimplex(values: Float32Array, classes: number): Float32Array {
  const n = rowsOf(values, classes, 'noisy outputs');
  const out = new Float32Array(values.length);
  const sorted = new Float64Array(classes);
  for (let r = 0; r < n; r++) {
    const base = r * classes;
    for (let c = 0; c < classes; c++) sorted[c] = values[base + c];
    sorted.sort().reverse();
    let cumulative = 0;
    let theta = 0;
    for (let j = 0; j < classes; j++) {
      cumulative += sorted[j];
      const candidate = (cumulative - 1) / (j + 1);
      if (sorted[j] - candidate > 0) theta = candidate;
    }
    for (let c = 0; c < classes; c++) out[base + c] = Math.max(0, values[base + c] - theta);
  }
  return out;
}

/**
 * Logits whose softmax at `temperature` is the given probability rows:
 * `temperature · log(max(p, floor))`. A student that softens them at the same temperature
 * sees those probabilities (up to the floor that keeps zeros finite).
 */
export function probabilitiesToLogits(
  probabilities: Float32Array,
  classes: number,
  temperature: number,
  floor = 1e-4,
): Float32Array {
  rowsOf(probabilities, classes, 'probabilities');
  return Float32Array.from(probabilities, (p) => temperature * Math.log(Math.max(p, floor)));
}
