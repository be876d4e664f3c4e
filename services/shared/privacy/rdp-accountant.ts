import { fail } from '../errors.js';

/**
 * Rényi differential privacy (RDP) accounting for the Gaussian mechanism.
 *
 * A mechanism M is (α, ρ)-RDP if the Rényi divergence of order α between M(D) and M(D')
 * is at most ρ for every pair of neighbouring datasets D, D' (Mironov 2017, "Rényi
 * Differential Privacy", CSF). RDP composes by addition at each order, so the accountant
 * keeps one number per order of a fixed grid and adds the curves of successive releases;
 * a guarantee in the usual (ε, δ) form is read off the sum at the best order.
 *
 * The Gaussian mechanism `f(D) + N(0, σ² I)` with L2 sensitivity Δ (the largest
 * ‖f(D) − f(D')‖₂ over neighbours) is (α, αΔ²/(2σ²))-RDP for every α > 1 (Mironov 2017,
 * Proposition 7). Neighbours here are whatever the caller's Δ was derived for; the
 * release mechanisms in this directory state theirs.
 */

/**
 * The orders the accountant tracks: 1.1 … 10.9 in steps of 0.1 and 12 … 63 (the grid of
 * Opacus and TF Privacy), then 64 … 4096 in powers of two, which the conversion needs for
 * large ε (little noise), where the best order is large.
 */
export const DEFAULT_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10),
  ...Array.from({ length: 52 }, (_, i) => 12 + i),
  64,
  128,
  256,
  512,
  1024,
  2048,
  4096,
]);

/** An RDP curve: `rdp[i]` is the Rényi divergence bound at `orders[i]`. */
export interface RdpCurve {
  orders: readonly number[];
  rdp: Float64Array;
}

/** An (ε, δ) guarantee and the RDP order it was read from. */
export interface EpsilonDelta {
  epsilon: number;
  delta: number;
  /** The order at which the conversion was tightest. */
  order: number;
}

function checkOrders(orders: readonly number[]): void {
  if (orders.length === 0 || !orders.every((a) => Number.isFinite(a) && a > 1)) {
    throw fail('REQUEST_INVALID', { detail: 'RDP orders must be finite numbers above 1' });
  }
}

function checkNonNegative(value: number, what: string): void {
  if (!(Number.isFinite(value) && value >= 0)) {
    throw fail('REQUEST_INVALID', { detail: `${what} must be a finite number >= 0, got ${value}` });
  }
}

/**
 * The RDP curve of `count` adaptive compositions of the Gaussian mechanism with L2
 * sensitivity `sensitivity` and noise standard deviation `sigma`:
 * `count · α · Δ² / (2σ²)` at each order α. `count` releases of one row each cost the same
 * as one release of all of them with sensitivity `√count · Δ`.
 *
 * @throws REQUEST_INVALID for a sigma that is not positive or a negative count or sensitivity.
 */
export function gaussianRdp(
  options: { sensitivity: number; sigma: number; count?: number },
  orders: readonly number[] = DEFAULT_ORDERS,
): RdpCurve {
  const { sensitivity, sigma } = options;
  const count = options.count ?? 1;
  checkOrders(orders);
  checkNonNegative(sensitivity, 'sensitivity');
  checkNonNegative(count, 'count');
  if (!(Number.isFinite(sigma) && sigma > 0)) {
    throw fail('REQUEST_INVALID', { detail: `sigma must be a positive number, got ${sigma}` });
  }
  const scale = (count * sensitivity * sensitivity) / (2 * sigma * sigma);
  return { orders, rdp: Float64Array.from(orders, (alpha) => alpha * scale) };
}

/** The zero curve (nothing released yet) on `orders`. */
export function emptyRdp(orders: readonly number[] = DEFAULT_ORDERS): RdpCurve {
  checkOrders(orders);
  return { orders, rdp: new Float64Array(orders.length) };
}

/**
 * Composes RDP curves: the sum at each order (Mironov 2017, Proposition 1). All curves
 * must be on the same orders.
 *
 * @throws REQUEST_INVALID when the orders differ.
 */
export function composeRdp(...curves: RdpCurve[]): RdpCurve {
  if (curves.length === 0) return emptyRdp();
  const { orders } = curves[0];
  const rdp = new Float64Array(orders.length);
  for (const curve of curves) {
    if (curve.orders.length !== orders.length || curve.orders.some((a, i) => a !== orders[i])) {
      throw fail('REQUEST_INVALID', { detail: 'RDP curves on different orders cannot be added' });
    }
    for (let i = 0; i < rdp.length; i++) rdp[i] += curve.rdp[i];
  }
  return { orders, rdp };
}

/**
 * Converts an RDP curve to the smallest ε with (ε, δ)-DP over the orders.
 *
 * `conversion: 'tight'` (default) uses the bound of Canonne, Kamath & Steinke 2020
 * ("The Discrete Gaussian for Differential Privacy", Proposition 12; also Balle et al. 2020,
 * "Hypothesis Testing Interpretations and Rényi DP", Theorem 21):
 * `ε = ρ(α) + log(1 − 1/α) − (log δ + log α)/(α − 1)`, the one TF Privacy and Opacus use;
 * `'standard'` uses Mironov 2017, Proposition 3: `ε = ρ(α) + log(1/δ)/(α − 1)`, which is
 * never smaller. When `δ² ≥ 1 − e^(−ρ(α))` the KL bound δ ≤ √(1 − e^(−KL)) (Pinsker-type,
 * KL ≤ ρ(α) for α ≥ 1) already gives ε = 0.
 *
 * @throws REQUEST_INVALID for δ outside (0, 1).
 */
export function rdpToEpsilon(
  curve: RdpCurve,
  delta: number,
  conversion: 'tight' | 'standard' = 'tight',
): EpsilonDelta {
  if (!(delta > 0 && delta < 1)) {
    throw fail('REQUEST_INVALID', { detail: `delta must be in (0, 1), got ${delta}` });
  }
  let best = { epsilon: Infinity, order: curve.orders[0] };
  curve.orders.forEach((alpha, i) => {
    const rho = curve.rdp[i];
    let epsilon: number;
    if (!Number.isFinite(rho)) {
      epsilon = Infinity;
    } else if (conversion === 'tight' && delta * delta + Math.expm1(-rho) > 0) {
      epsilon = 0;
    } else if (conversion === 'tight') {
      epsilon = rho + Math.log1p(-1 / alpha) - (Math.log(delta) + Math.log(alpha)) / (alpha - 1);
    } else {
      epsilon = rho - Math.log(delta) / (alpha - 1);
    }
    if (epsilon < best.epsilon) best = { epsilon, order: alpha };
  });
  return { epsilon: Math.max(0, best.epsilon), delta, order: best.order };
}

/**
 * Converts an RDP curve to the smallest δ with (ε, δ)-DP over the orders, by the same bound
 * as the tight {@link rdpToEpsilon} solved for δ, and the KL bound δ ≤ √(1 − e^(−ρ(α))).
 *
 * @throws REQUEST_INVALID for a negative ε.
 */
export function rdpToDelta(curve: RdpCurve, epsilon: number): EpsilonDelta {
  checkNonNegative(epsilon, 'epsilon');
  let best = { logDelta: Infinity, order: curve.orders[0] };
  curve.orders.forEach((alpha, i) => {
    const rho = curve.rdp[i];
    let logDelta = rho === 0 ? -Infinity : 0.5 * Math.log1p(-Math.exp(-rho));
    // The closed form loses precision as α → 1, where it is no use anyway.
    if (alpha > 1.01) {
      const bound = (alpha - 1) * (rho - epsilon + Math.log1p(-1 / alpha)) - Math.log(alpha);
      logDelta = Math.min(logDelta, bound);
    }
    if (logDelta < best.logDelta) best = { logDelta, order: alpha };
  });
  return { epsilon, delta: Math.min(1, Math.exp(best.logDelta)), order: best.order };
}

/** Options of {@link calibrateGaussianSigma}. */
export interface CalibrateOptions {
  /** Target ε of the whole release, > 0. */
  epsilon: number;
  /** Target δ, in (0, 1). */
  delta: number;
  /** L2 sensitivity of one composed step. */
  sensitivity: number;
  /** Number of composed steps (for example released rows), default 1. */
  count?: number;
  /** Privacy already spent, to be composed with this release before the target is checked. */
  spent?: RdpCurve;
  orders?: readonly number[];
}

/**
 * The smallest noise standard deviation σ (to a relative 1e-6) such that `count` Gaussian
 * releases of sensitivity `sensitivity`, composed with `spent`, are (ε, δ)-DP by the tight
 * conversion. Found by bisection on log σ: ε is decreasing in σ.
 *
 * @throws PRIVACY_TARGET_UNREACHABLE when `spent` alone already exceeds the target.
 */
export function calibrateGaussianSigma(options: CalibrateOptions): number {
  const { epsilon, delta, sensitivity } = options;
  const count = options.count ?? 1;
  const orders = options.orders ?? options.spent?.orders ?? DEFAULT_ORDERS;
  if (!(Number.isFinite(epsilon) && epsilon > 0)) {
    throw fail('REQUEST_INVALID', { detail: `epsilon must be a positive number, got ${epsilon}` });
  }
  checkNonNegative(sensitivity, 'sensitivity');
  const spent = options.spent ?? emptyRdp(orders);
  const epsilonAt = (sigma: number) =>
    rdpToEpsilon(composeRdp(spent, gaussianRdp({ sensitivity, sigma, count }, orders)), delta)
      .epsilon;

  const floor = rdpToEpsilon(spent, delta).epsilon;
  if (floor >= epsilon) {
    throw fail('PRIVACY_TARGET_UNREACHABLE', {
      target: epsilon.toPrecision(4),
      spent: floor.toPrecision(4),
    });
  }
  if (sensitivity === 0 || count === 0) return 0;
  let low = 1e-6 * sensitivity;
  let high = sensitivity;
  while (epsilonAt(high) > epsilon) {
    low = high;
    high *= 2;
    // Past this the curve at the largest order is flat: the target needs orders above it.
    if (high > 1e12 * sensitivity * Math.sqrt(count)) {
      throw fail('PRIVACY_TARGET_UNREACHABLE', {
        target: epsilon.toPrecision(4),
        spent: floor.toPrecision(4),
      });
    }
  }
  while (high / low > 1 + 1e-6) {
    const mid = Math.sqrt(low * high);
    if (epsilonAt(mid) > epsilon) low = mid;
    else high = mid;
  }
  return high;
}
