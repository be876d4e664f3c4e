import { createRng } from '../../services/shared/ml/random.js';

/**
 * A synthetic binary task with a known answer: x uniform in [−1, 1]^dim and
 * P(y = 1) = sigmoid(3·x₀ − 2·x₁ + x₀·x₂ − 1). `trueLogit` is that logit, a perfect teacher.
 */
export function syntheticTask(n: number, dim: number, seed: number) {
  const rng = createRng(seed);
  const x = new Float32Array(n * dim);
  const y = new Uint8Array(n);
  const trueLogit = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    for (let d = 0; d < dim; d++) x[i * dim + d] = rng.next() * 2 - 1;
    const [a, b, c] = [x[i * dim], x[i * dim + 1], x[i * dim + 2]];
    trueLogit[i] = 3 * a - 2 * b + a * c - 1;
    y[i] = rng.next() < 1 / (1 + Math.exp(-trueLogit[i])) ? 1 : 0;
  }
  return { x, y, trueLogit, n, dim };
}
