import { fail } from '../errors.js';
import { rocAuc } from '../ml/metrics.js';
import { createRng } from '../ml/random.js';

/**
 * A confidence-threshold membership-inference attack (Yeom et al. 2018, "Privacy Risk in
 * Machine Learning"): the attacker holds candidate rows with their labels and something
 * computed from the hub's teacher (query-mode answers, or a student distilled from released
 * states), scores each candidate by the confidence that thing puts on the candidate's true
 * label, and calls it a training row of the hub when the score is above a threshold. A
 * model that fits its training rows better than unseen ones leaks membership this way.
 */

/** The attack score of each row: the probability given to its true label. */
export function trueLabelConfidence(
  probabilities: Float32Array,
  classes: number,
  labels: Uint8Array,
): Float64Array {
  if (probabilities.length !== labels.length * classes) {
    throw fail('MODEL_SHAPE_MISMATCH', {
      what: 'attack inputs',
      expected: `${labels.length} × ${classes} probabilities`,
      actual: `${probabilities.length} values`,
    });
  }
  return Float64Array.from(labels, (label, r) => probabilities[r * classes + label]);
}

/** How well the attack separates members from non-members. */
export interface AttackResult {
  /**
   * max over thresholds t of TPR(t) − FPR(t), calling "member" when score ≥ t: the
   * membership advantage of Yeom et al. (0: no better than a coin; 1: perfect).
   */
  advantage: number;
  /** The threshold that reached it. */
  threshold: number;
  tpr: number;
  fpr: number;
  /** ROC AUC of the score for members against non-members (0.5: no signal). */
  auc: number;
  members: number;
  nonMembers: number;
}

/**
 * Runs the threshold attack on scores of known members and known non-members.
 *
 * @throws DATA_TOO_FEW_ROWS when either side is empty.
 */
export function thresholdAttack(
  memberScores: ArrayLike<number>,
  nonMemberScores: ArrayLike<number>,
): AttackResult {
  const m = memberScores.length;
  const n = nonMemberScores.length;
  if (m === 0) throw fail('DATA_TOO_FEW_ROWS', { what: 'attack members', count: 0, min: 1 });
  if (n === 0) throw fail('DATA_TOO_FEW_ROWS', { what: 'attack non-members', count: 0, min: 1 });
  const all = [
    ...Array.from(memberScores, (score) => ({ score, member: 1 })),
    ...Array.from(nonMemberScores, (score) => ({ score, member: 0 })),
  ].sort((a, b) => b.score - a.score);

  // Lower the threshold through each distinct score; ties move together.
  let best = { advantage: 0, threshold: Infinity, tpr: 0, fpr: 0 };
  let tp = 0;
  let fp = 0;
  for (let i = 0; i < all.length;) {
    const threshold = all[i].score;
    while (i < all.length && all[i].score === threshold) {
      if (all[i].member) tp++;
      else fp++;
      i++;
    }
    const tpr = tp / m;
    const fpr = fp / n;
    if (tpr - fpr > best.advantage) best = { advantage: tpr - fpr, threshold, tpr, fpr };
  }
  const auc = rocAuc(
    all.map((entry) => entry.score),
    all.map((entry) => entry.member),
  );
  return { ...best, auc, members: m, nonMembers: n };
}

/**
 * The advantage the attack reaches by chance on samples of these sizes: the attack run on
 * the same scores with membership labels shuffled, `rounds` times. An advantage is evidence
 * of leakage only where it stands above this.
 */
export function chanceAdvantage(
  memberScores: ArrayLike<number>,
  nonMemberScores: ArrayLike<number>,
  rounds: number,
  seed: number,
): { mean: number; p95: number } {
  const scores = [...Array.from(memberScores), ...Array.from(nonMemberScores)];
  const m = memberScores.length;
  const rng = createRng(seed);
  const values: number[] = [];
  for (let round = 0; round < rounds; round++) {
    rng.shuffle(scores);
    values.push(thresholdAttack(scores.slice(0, m), scores.slice(m)).advantage);
  }
  values.sort((a, b) => a - b);
  const mean = values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
  const p95 = values[Math.min(values.length - 1, Math.floor(0.95 * values.length))] ?? 0;
  return { mean, p95 };
}
