import { randomBytes } from 'node:crypto';
import { createRng } from '../ml/random.js';

/** A source of independent standard normal draws for the privacy mechanisms. */
export interface NoiseSource {
  /** One draw from N(0, 1). */
  gaussian(): number;
}

/**
 * Standard normals from uniforms by the Box–Muller transform, two per pair of uniforms.
 * `uniform` must return values in [0, 1).
 */
function boxMuller(uniform: () => number): NoiseSource {
  let spare: number | undefined;
  return {
    gaussian() {
      if (spare !== undefined) {
        const value = spare;
        spare = undefined;
        return value;
      }
      // 1 − u lies in (0, 1], so the logarithm is finite.
      const radius = Math.sqrt(-2 * Math.log(1 - uniform()));
      const angle = 2 * Math.PI * uniform();
      spare = radius * Math.sin(angle);
      return radius * Math.cos(angle);
    },
  };
}

/**
 * Noise from the operating system's cryptographic generator, 53-bit uniforms: what the hub
 * uses for every release to a participant, so that nobody can predict or replay the noise.
 *
 * Floating-point Gaussian sampling is not exactly Gaussian (Mironov 2012 showed attacks on
 * the low-order bits of floating-point Laplace noise); the released values are rounded to
 * float32, which hides the low-order bits of the draw, but the guarantee is that of the
 * ideal mechanism, not a proof about this sampler.
 */
export function secureNoise(): NoiseSource {
  let pool = randomBytes(0);
  let cursor = 0;
  return boxMuller(() => {
    if (cursor + 8 > pool.length) {
      pool = randomBytes(8 * 1024);
      cursor = 0;
    }
    const high = pool.readUInt32LE(cursor) >>> 5; // 27 bits
    const low = pool.readUInt32LE(cursor + 4) >>> 6; // 26 bits
    cursor += 8;
    return (high * 67108864 + low) / 9007199254740992;
  });
}

/**
 * Reproducible noise from a seed, for reports and tests only: anyone who knows the seed
 * can subtract the noise, so the hub never uses it for a release.
 */
export function seededNoise(seed: number): NoiseSource {
  const rng = createRng(seed);
  return boxMuller(() => rng.next());
}
