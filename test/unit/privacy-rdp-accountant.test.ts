import { describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import {
  calibrateGaussianSigma,
  composeRdp,
  DEFAULT_ORDERS,
  emptyRdp,
  gaussianRdp,
  rdpToDelta,
  rdpToEpsilon,
  type RdpCurve,
} from '../../services/shared/privacy/rdp-accountant.js';

// erfc by the continued-fraction-free Chebyshev fit of Numerical Recipes (3rd ed., §6.2.2,
// `erfccheb`), relative error below 1.2e-16 over the whole line: written here on its own,
// so the exact curve does not share code with the accountant it checks.
const ERFC_COEF = [
  -1.3026537197817094, 6.4196979235649026e-1, 1.9476473204185836e-2, -9.561514786808631e-3,
  -9.46595344482036e-4, 3.66839497852761e-4, 4.2523324806907e-5, -2.0278578112534e-5,
  -1.624290004647e-6, 1.30365583558e-6, 1.5626441722e-8, -8.5238095915e-8, 6.529054439e-9,
  5.059343495e-9, -9.91364156e-10, -2.27365122e-10, 9.6467911e-11, 2.394038e-12, -6.886027e-12,
  8.94487e-13, 3.13092e-13, -1.12708e-13, 3.81e-16, 7.106e-15, -1.523e-15, -9.4e-17, 1.21e-16,
  -2.8e-17,
];
function erfcPositive(z: number): number {
  const t = 2 / (2 + z);
  const ty = 4 * t - 2;
  let d = 0;
  let dd = 0;
  for (let j = ERFC_COEF.length - 1; j > 0; j--) {
    const tmp = d;
    d = ty * d - dd + ERFC_COEF[j];
    dd = tmp;
  }
  return t * Math.exp(-z * z + 0.5 * (ERFC_COEF[0] + ty * d) - dd);
}
function erfc(x: number): number {
  return x >= 0 ? erfcPositive(x) : 2 - erfcPositive(-x);
}
/** Standard normal CDF. */
const Phi = (x: number) => 0.5 * erfc(-x / Math.SQRT2);

/**
 * The exact privacy curve of the Gaussian mechanism with sensitivity Δ and noise σ:
 * Balle & Wang 2018, "Improving the Gaussian Mechanism for Differential Privacy", Theorem 8:
 * δ(ε) = Φ(Δ/(2σ) − εσ/Δ) − e^ε Φ(−Δ/(2σ) − εσ/Δ). Composition of k such mechanisms is the
 * Gaussian mechanism with sensitivity √k Δ.
 */
function exactGaussianDelta(epsilon: number, sensitivity: number, sigma: number): number {
  const a = sensitivity / (2 * sigma);
  const b = (epsilon * sigma) / sensitivity;
  return Phi(a - b) - Math.exp(epsilon) * Phi(-a - b);
}
/** The exact ε at δ, by bisection on the exact curve (decreasing in ε). */
function exactGaussianEpsilon(delta: number, sensitivity: number, sigma: number): number {
  let low = 0;
  let high = 1;
  while (exactGaussianDelta(high, sensitivity, sigma) > delta) high *= 2;
  for (let i = 0; i < 200; i++) {
    const mid = (low + high) / 2;
    if (exactGaussianDelta(mid, sensitivity, sigma) > delta) low = mid;
    else high = mid;
  }
  return high;
}

describe('the exact curve used as reference', () => {
  it('reproduces erfc at known points', () => {
    expect(erfc(0)).toBeCloseTo(1, 14);
    expect(erfc(1)).toBeCloseTo(0.157299207050285, 14);
    expect(erfc(3) / 2.209049699858544e-5).toBeCloseTo(1, 12);
    expect(Phi(-1.959963984540054)).toBeCloseTo(0.025, 12);
  });
});

describe('Gaussian RDP', () => {
  it('is α Δ² / (2σ²) per release and adds up over releases (Mironov 2017, Prop. 7 and 1)', () => {
    const one = gaussianRdp({ sensitivity: 1, sigma: 2.71828 }, [3.14159]);
    // The value asserted in test_compute_rdp_gaussian of google/differential-privacy,
    // python/dp_accounting/dp_accounting/rdp/rdp_privacy_accountant_test.py.
    expect(one.rdp[0]).toBeCloseTo(3.14159 / (2 * 2.71828 ** 2), 12);
    const six = gaussianRdp({ sensitivity: 1, sigma: 2.71828, count: 6 }, [3.14159]);
    expect(six.rdp[0]).toBeCloseTo(6 * one.rdp[0], 12);
    const composed = composeRdp(one, one, one, one, one, one);
    expect(composed.rdp[0]).toBeCloseTo(six.rdp[0], 12);
    const scaled = gaussianRdp({ sensitivity: 2, sigma: 2 * 2.71828 }, [3.14159]);
    expect(scaled.rdp[0]).toBeCloseTo(one.rdp[0], 12);
  });

  it('refuses curves on different orders and nonsense parameters', () => {
    const a = gaussianRdp({ sensitivity: 1, sigma: 1 }, [2, 3]);
    const b = gaussianRdp({ sensitivity: 1, sigma: 1 }, [2, 4]);
    expect(() => composeRdp(a, b)).toThrow(/different orders/);
    expect(() => gaussianRdp({ sensitivity: 1, sigma: 0 })).toThrow(/sigma/);
    expect(() => gaussianRdp({ sensitivity: -1, sigma: 1 })).toThrow(/sensitivity/);
    expect(() => rdpToEpsilon(a, 0)).toThrow(/delta/);
  });
});

describe('conversion to (ε, δ) against published values', () => {
  it('matches test_compute_epsilon_delta_pure_dp of google/differential-privacy', () => {
    // rdp_privacy_accountant_test.py: orders 2..32, constant RDP 1.1, δ = 1e-5 gives
    // ε = 1.32783806176 at order 32, and back δ = 1e-5 at that ε.
    const orders = Array.from({ length: 31 }, (_, i) => i + 2);
    const curve: RdpCurve = { orders, rdp: new Float64Array(orders.length).fill(1.1) };
    const result = rdpToEpsilon(curve, 1e-5);
    expect(result.epsilon).toBeCloseTo(1.32783806176, 10);
    expect(result.order).toBe(32);
    const back = rdpToDelta(curve, 1.32783806176);
    expect(back.delta / 1e-5).toBeCloseTo(1, 8);
    expect(back.order).toBe(32);
    // The standard conversion (Mironov 2017, Prop. 3) is looser: 1.1 + ln(1e5)/31.
    expect(rdpToEpsilon(curve, 1e-5, 'standard').epsilon).toBeCloseTo(1.1 + Math.log(1e5) / 31, 12);
  });

  it('matches test_compute_epsilon_delta_gaussian of google/differential-privacy', () => {
    // Same file: noise multiplier 4.530877117 on orders 1.000..99.999 (step 0.001) is
    // exactly (1, 1e-6)-DP by the RDP conversion (asserted to 7 decimal places there).
    const orders = Array.from({ length: 99000 }, (_, i) => 0.001 * (i + 1000)).filter((a) => a > 1);
    const curve = gaussianRdp({ sensitivity: 1, sigma: 4.530877117 }, orders);
    expect(rdpToEpsilon(curve, 1e-6).epsilon).toBeCloseTo(1, 6);
    expect(rdpToDelta(curve, 1).delta / 1e-6).toBeCloseTo(1, 4);
    // On the default grid the accountant is a little looser, never tighter.
    const coarse = rdpToEpsilon(gaussianRdp({ sensitivity: 1, sigma: 4.530877117 }), 1e-6);
    expect(coarse.epsilon).toBeGreaterThanOrEqual(1 - 1e-9);
    expect(coarse.epsilon).toBeLessThan(1.001);
  });

  it('bounds the exact Gaussian curve (Balle & Wang 2018, Thm 8) from above, and closely', () => {
    // Tolerance stated: the RDP bound may be looser than the exact ε by at most 15% over
    // these settings (measured 6-12%; scipy.stats.norm gives the same exact values), and it
    // must never be below it (that would be a privacy bug).
    const settings = [
      { sigma: 1, count: 1, delta: 1e-5 },
      { sigma: 4.530877117, count: 1, delta: 1e-6 },
      { sigma: 2, count: 100, delta: 1e-5 },
      { sigma: 20, count: 400, delta: 1e-5 },
      { sigma: 0.8, count: 1, delta: 1e-3 },
      { sigma: 50, count: 2000, delta: 1e-6 },
    ];
    for (const { sigma, count, delta } of settings) {
      const accountant = rdpToEpsilon(gaussianRdp({ sensitivity: 1, sigma, count }), delta);
      const exact = exactGaussianEpsilon(delta, Math.sqrt(count), sigma);
      expect(accountant.epsilon).toBeGreaterThanOrEqual(exact);
      expect(accountant.epsilon / exact).toBeLessThan(1.15);
      // And the standard conversion is looser still.
      const standard = rdpToEpsilon(
        gaussianRdp({ sensitivity: 1, sigma, count }),
        delta,
        'standard',
      );
      expect(standard.epsilon).toBeGreaterThanOrEqual(accountant.epsilon);
    }
  });

  it('gives δ above the exact curve at every ε (as test_delta_bounds_gaussian does)', () => {
    const orders = Array.from({ length: 495 }, (_, i) => 0.1 * (i + 11));
    const curve = gaussianRdp({ sensitivity: 1, sigma: 1 }, orders);
    for (let eps = 0; eps < 50; eps += 0.1) {
      const bound = rdpToDelta(curve, eps).delta;
      expect(exactGaussianDelta(eps, 1, 1)).toBeLessThanOrEqual(bound + 1e-300);
      // The "standard" bound exp(−(ε − ½)²/2) of the same test is above the accountant's.
      if (eps >= 0.5) expect(bound).toBeLessThanOrEqual(Math.exp(-0.5 * (eps - 0.5) ** 2) + 1e-300);
    }
  });

  it('says nothing is spent for the empty curve', () => {
    expect(rdpToEpsilon(emptyRdp(), 1e-5).epsilon).toBe(0);
    expect(rdpToDelta(emptyRdp(), 0).delta).toBe(0);
  });
});

describe('calibrateGaussianSigma', () => {
  it('finds the smallest σ meeting the target, within 1e-6 relative', () => {
    for (const [epsilon, delta, count] of [
      [1, 1e-5, 1],
      [0.5, 1e-5, 200],
      [8, 1e-6, 1000],
    ] as const) {
      const sigma = calibrateGaussianSigma({ epsilon, delta, sensitivity: 0.1, count });
      const at = (s: number) =>
        rdpToEpsilon(gaussianRdp({ sensitivity: 0.1, sigma: s, count }), delta).epsilon;
      expect(at(sigma)).toBeLessThanOrEqual(epsilon);
      expect(at(sigma * (1 - 1e-4))).toBeGreaterThan(epsilon);
    }
  });

  it('is the published σ for (1, 1e-6) on the fine grid', () => {
    const orders = Array.from({ length: 99000 }, (_, i) => 0.001 * (i + 1000)).filter((a) => a > 1);
    const sigma = calibrateGaussianSigma({ epsilon: 1, delta: 1e-6, sensitivity: 1, orders });
    expect(sigma / 4.530877117).toBeCloseTo(1, 5);
  });

  it('leaves less room when budget is already spent, and refuses when none is left', () => {
    const fresh = calibrateGaussianSigma({ epsilon: 2, delta: 1e-5, sensitivity: 1 });
    const spent = gaussianRdp({ sensitivity: 1, sigma: 3 });
    const after = calibrateGaussianSigma({ epsilon: 2, delta: 1e-5, sensitivity: 1, spent });
    expect(after).toBeGreaterThan(fresh);
    const heavy = gaussianRdp({ sensitivity: 1, sigma: 0.5 });
    let caught: unknown;
    try {
      calibrateGaussianSigma({ epsilon: 2, delta: 1e-5, sensitivity: 1, spent: heavy });
    } catch (err) {
      caught = err;
    }
    expect(hasCode(caught, 'PRIVACY_TARGET_UNREACHABLE')).toBe(true);
    expect(DEFAULT_ORDERS.every((a) => a > 1)).toBe(true);
  });
});
