/**
 * Softmax temperatures a knowledge version may be published with. Below the minimum the
 * soft targets are one-hot to the last bit and `logits / T` overflows, so every
 * participant's distillation diverges; above the maximum they carry no ranking any more.
 * The hub's HTTP API, its publisher and its CLI all enforce this one range.
 */
export const TEMPERATURE_RANGE = Object.freeze({ min: 0.05, max: 100 });

/** True when `t` is a finite temperature inside {@link TEMPERATURE_RANGE}. */
export function isPublishableTemperature(t: number): boolean {
  return Number.isFinite(t) && t >= TEMPERATURE_RANGE.min && t <= TEMPERATURE_RANGE.max;
}
