import { describe, expect, it } from 'vitest';
import { createRng } from '../../services/shared/ml/random.js';
import {
  calibrateEnsembleRelease,
  ensembleRowSensitivity,
  gnmaxRelease,
  noisyEnsembleAverage,
  PATE_ROW_SENSITIVITY,
  voteHistogram,
  votesToProbabilities,
} from '../../services/shared/privacy/aggregate.js';
import { seededNoise, secureNoise } from '../../services/shared/privacy/noise.js';
import { gaussianRdp, rdpToEpsilon } from '../../services/shared/privacy/rdp-accountant.js';

const zeroNoise = { gaussian: () => 0 };

function randomProbabilities(n: number, classes: number, seed: number): Float32Array {
  const rng = createRng(seed);
  const out = new Float32Array(n * classes);
  for (let r = 0; r < n; r++) {
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += out[r * classes + c] = rng.next() ** 3;
    for (let c = 0; c < classes; c++) out[r * classes + c] /= sum;
  }
  return out;
}

function l2(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
}

describe('Gaussian ensemble sensitivity', () => {
  it('is √2·C/m per row for probability vectors and 2C/m for signed ones', () => {
    expect(ensembleRowSensitivity(10, 1)).toBeCloseTo(Math.SQRT2 / 10, 12);
    expect(ensembleRowSensitivity(10, 0.5, false)).toBeCloseTo(0.1, 12);
    expect(() => ensembleRowSensitivity(0, 1)).toThrow(/teachers/);
  });

  it('bounds what replacing one teacher can do to the released average', () => {
    // One private row changes one teacher arbitrarily; the worst case for probability
    // vectors is a move between two vertices of the simplex.
    const m = 7;
    const n = 50;
    for (const classes of [2, 5]) {
      for (const clip of [1, 0.4]) {
        const bound = ensembleRowSensitivity(m, clip) * Math.sqrt(n);
        let worst = 0;
        for (let trial = 0; trial < 40; trial++) {
          const outputs = Array.from({ length: m }, (_, j) =>
            randomProbabilities(n, classes, trial * 100 + j),
          );
          const changed = outputs.slice();
          changed[trial % m] =
            trial < 20
              ? randomProbabilities(n, classes, 9999 + trial)
              : // Adversarial: every row jumps to another vertex.
                Float32Array.from({ length: n * classes }, (_, i) =>
                  i % classes === (outputs[trial % m][i - (i % classes)] > 0.5 ? 1 : 0) ? 1 : 0,
                );
          const a = noisyEnsembleAverage({ outputs, classes, clip, sigma: 0, noise: zeroNoise });
          const b = noisyEnsembleAverage({
            outputs: changed,
            classes,
            clip,
            sigma: 0,
            noise: zeroNoise,
          });
          worst = Math.max(worst, l2(a, b));
        }
        expect(worst).toBeLessThanOrEqual(bound * (1 + 1e-6));
        // The bound is reached by vertex-to-vertex moves: it is not loose.
        expect(worst).toBeGreaterThan(bound * 0.5);
      }
    }
  });

  it('adds noise of the calibrated scale', () => {
    const m = 10;
    const outputs = Array.from({ length: m }, (_, j) => randomProbabilities(2000, 2, j));
    const plain = noisyEnsembleAverage({ outputs, classes: 2, sigma: 0, noise: zeroNoise });
    const noisy = noisyEnsembleAverage({ outputs, classes: 2, sigma: 0.3, noise: seededNoise(1) });
    let sum = 0;
    let sq = 0;
    for (let i = 0; i < plain.length; i++) {
      const d = noisy[i] - plain[i];
      sum += d;
      sq += d * d;
    }
    const mean = sum / plain.length;
    const sd = Math.sqrt(sq / plain.length - mean * mean);
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(sd).toBeGreaterThan(0.28);
    expect(sd).toBeLessThan(0.32);
  });
});

describe('PATE GNMax', () => {
  it('counts votes and moves at most √2 when one teacher changes', () => {
    const outputs = [
      Float32Array.from([0.9, 0.1, 0.2, 0.8]),
      Float32Array.from([0.6, 0.4, 0.3, 0.7]),
      Float32Array.from([0.2, 0.8, 0.4, 0.6]),
    ];
    const votes = voteHistogram(outputs, 2);
    expect(Array.from(votes)).toEqual([2, 1, 0, 3]);
    const changed = [outputs[0], outputs[1], Float32Array.from([0.9, 0.1, 0.9, 0.1])];
    const moved = voteHistogram(changed, 2);
    expect(l2(votes.subarray(0, 2), moved.subarray(0, 2))).toBeCloseTo(Math.SQRT2, 6);
    expect(l2(votes.subarray(2), moved.subarray(2))).toBeCloseTo(PATE_ROW_SENSITIVITY, 6);
    const noisy = gnmaxRelease({ outputs, classes: 2, sigma: 0, noise: zeroNoise });
    expect(Array.from(noisy)).toEqual([2, 1, 0, 3]);
    const p = votesToProbabilities(Float32Array.from([3, -1]), 2, 0.5);
    expect(p[0]).toBeCloseTo(3.5 / 4, 6);
    expect(p[1]).toBeCloseTo(0.5 / 4, 6);
  });
});

describe('calibrateEnsembleRelease', () => {
  it('spends exactly the target over all released rows', () => {
    for (const mechanism of ['gaussian', 'pate'] as const) {
      const release = calibrateEnsembleRelease({
        mechanism,
        epsilon: 2,
        delta: 1e-5,
        rows: 300,
        teachers: 20,
      });
      expect(release.sensitivity).toBeCloseTo(
        mechanism === 'pate' ? Math.SQRT2 : Math.SQRT2 / 20,
        12,
      );
      const spent = rdpToEpsilon(release.rdp, 1e-5).epsilon;
      expect(spent).toBeLessThanOrEqual(2);
      expect(spent).toBeGreaterThan(1.999);
      // Twice the rows at the same ε need √2 times the noise (RDP is linear in R/σ²).
      const twice = calibrateEnsembleRelease({
        mechanism,
        epsilon: 2,
        delta: 1e-5,
        rows: 600,
        teachers: 20,
      });
      expect(twice.sigma / release.sigma).toBeCloseTo(Math.SQRT2, 4);
    }
    const gaussian = calibrateEnsembleRelease({
      mechanism: 'gaussian',
      epsilon: 1,
      delta: 1e-5,
      rows: 1,
      teachers: 1,
    });
    expect(
      rdpToEpsilon(gaussianRdp({ sensitivity: Math.SQRT2, sigma: gaussian.sigma }), 1e-5).epsilon,
    ).toBeCloseTo(1, 4);
  });
});

describe('secureNoise', () => {
  it('draws standard normals', () => {
    const noise = secureNoise();
    let sum = 0;
    let sq = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const v = noise.gaussian();
      sum += v;
      sq += v * v;
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.05);
    expect(Math.sqrt(sq / n)).toBeGreaterThan(0.97);
    expect(Math.sqrt(sq / n)).toBeLessThan(1.03);
  });
});
