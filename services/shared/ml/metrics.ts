import { fail } from '../errors.js';

function checkInputs(scores: ArrayLike<number>, labels: ArrayLike<number>, what: string): number {
  if (scores.length !== labels.length) {
    throw fail('MODEL_SHAPE_MISMATCH', {
      what: `${what} scores and labels`,
      expected: `${labels.length} scores`,
      actual: String(scores.length),
    });
  }
  let positives = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== 0 && labels[i] !== 1) {
      throw fail('REQUEST_INVALID', {
        detail: `${what}: labels[${i}] is ${labels[i]}, not 0 or 1`,
      });
    }
    if (Number.isNaN(scores[i])) {
      throw fail('REQUEST_INVALID', { detail: `${what}: scores[${i}] is NaN` });
    }
    positives += labels[i];
  }
  return positives;
}

// Indices ordered by score, highest first (stable, so equal scores keep input order).
function orderByScoreDescending(scores: ArrayLike<number>): Uint32Array {
  const order = new Uint32Array(scores.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  return order.sort((a, b) => scores[b] - scores[a] || a - b);
}

/**
 * Area under the ROC curve for binary labels (1 = positive): the probability that a
 * random positive scores above a random negative, ties counting one half. Computed as the
 * Mann-Whitney statistic with midranks, in O(n log n).
 *
 * @throws DATA_SINGLE_CLASS when the labels hold only one class.
 */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const positives = checkInputs(scores, labels, 'rocAuc');
  const negatives = labels.length - positives;
  if (positives === 0 || negatives === 0)
    throw fail('DATA_SINGLE_CLASS', { what: 'rocAuc labels' });

  const order = orderByScoreDescending(scores);
  // Walk from the lowest score up, giving each run of equal scores its mean rank.
  let positiveRankSum = 0;
  let end = order.length;
  while (end > 0) {
    let start = end - 1;
    while (start > 0 && scores[order[start - 1]] === scores[order[end - 1]]) start--;
    const rankLow = order.length - end + 1;
    const rankHigh = order.length - start;
    const midrank = (rankLow + rankHigh) / 2;
    for (let k = start; k < end; k++) if (labels[order[k]] === 1) positiveRankSum += midrank;
    end = start;
  }
  return (positiveRankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/**
 * Average precision, the area under the precision-recall curve as a step function:
 * `Σ (R_k − R_{k−1}) · P_k` over the distinct score thresholds, highest first. Tied
 * scores form one threshold, so their order does not matter (as scikit-learn's
 * `average_precision_score`). Its chance level is the positive rate, not 0.5.
 *
 * @throws DATA_SINGLE_CLASS when no label is positive.
 */
export function prAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const positives = checkInputs(scores, labels, 'prAuc');
  if (positives === 0) throw fail('DATA_SINGLE_CLASS', { what: 'prAuc labels' });

  const order = orderByScoreDescending(scores);
  let truePositives = 0;
  let seen = 0;
  let previousRecall = 0;
  let area = 0;
  let k = 0;
  while (k < order.length) {
    const threshold = scores[order[k]];
    while (k < order.length && scores[order[k]] === threshold) {
      truePositives += labels[order[k]];
      seen++;
      k++;
    }
    const recall = truePositives / positives;
    area += (recall - previousRecall) * (truePositives / seen);
    previousRecall = recall;
  }
  return area;
}
