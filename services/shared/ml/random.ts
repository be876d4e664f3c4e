import { fail } from '../errors.js';

/** A seeded pseudo-random generator; not for cryptography. */
export interface Rng {
  /** A uniform float in [0, 1) with 32 bits of resolution. */
  next(): number;
  /** A uniform 32-bit unsigned integer. */
  uint32(): number;
  /** A uniform integer in [0, n), without modulo bias; `n` is a positive integer. */
  int(n: number): number;
  /** Shuffles `array` in place (Fisher-Yates) and returns it. */
  shuffle<T extends { length: number; [index: number]: unknown }>(array: T): T;
  /** The generator's whole state, four 32-bit words: a checkpoint of the sequence. */
  getState(): RngState;
  /** Restores a state from {@link Rng.getState}; the sequence then continues from there. */
  setState(state: RngState): void;
}

/** The SFC32 state words `[a, b, c, d]`, each an unsigned 32-bit integer. */
export type RngState = [number, number, number, number];

/** Anything indexable by position, plain arrays and typed arrays alike. */
type Indexable = { length: number; [index: number]: unknown };

// The 32-bit finaliser of MurmurHash3: spreads every input bit over the output, so that
// neighbouring seeds (0, 1, 2...) start from unrelated states.
function fmix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function checkSeed(seed: number): void {
  if (!Number.isSafeInteger(seed)) {
    throw fail('REQUEST_INVALID', { detail: `seed must be a safe integer, got ${seed}` });
  }
}

/**
 * Creates a generator from an integer seed: the same seed gives the same sequence on every
 * platform. The core is Chris Doty-Humphrey's SFC32 (small fast chaotic), whose 128-bit
 * state passes PractRand far beyond what shuffling and splitting need.
 *
 * @throws REQUEST_INVALID when the seed is not a safe integer.
 */
export function createRng(seed: number): Rng {
  checkSeed(seed);
  const low = seed >>> 0;
  const high = Math.floor(seed / 0x1_0000_0000) >>> 0;
  let a = fmix32(low ^ 0x9e3779b9);
  let b = fmix32(high ^ 0x243f6a88);
  let c = fmix32(low + 0x85a308d3);
  let d = 1;

  function uint32(): number {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  }

  // The first outputs of a fresh SFC32 state are weakly mixed; its authors discard them.
  for (let i = 0; i < 12; i++) uint32();

  function next(): number {
    return uint32() / 0x1_0000_0000;
  }

  function int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) {
      throw fail('REQUEST_INVALID', { detail: `int(n) needs a positive integer, got ${n}` });
    }
    if (n > 0x1_0000_0000) return Math.floor(next() * n);
    // Reject the top sliver of the 32-bit range that n does not divide evenly.
    const limit = 0x1_0000_0000 - (0x1_0000_0000 % n);
    let value = uint32();
    while (value >= limit) value = uint32();
    return value % n;
  }

  function shuffle<T extends Indexable>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = int(i + 1);
      const kept = array[i];
      array[i] = array[j];
      array[j] = kept;
    }
    return array;
  }

  function getState(): RngState {
    return [a >>> 0, b >>> 0, c >>> 0, d >>> 0];
  }

  function setState(state: RngState): void {
    if (
      !Array.isArray(state) ||
      state.length !== 4 ||
      !state.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffff_ffff)
    ) {
      throw fail('REQUEST_INVALID', { detail: 'an RNG state is four unsigned 32-bit integers' });
    }
    [a, b, c, d] = state.map((w) => w | 0);
  }

  return { next, uint32, int, shuffle, getState, setState };
}

/**
 * Derives an independent seed from a parent seed and a purpose label, so that one user
 * seed can drive weight initialisation, shuffling and dropout without correlated streams.
 * The result is a non-negative 31-bit integer (TensorFlow.js initialisers accept it).
 */
export function deriveSeed(seed: number, purpose: string | number): number {
  checkSeed(seed);
  let h = fmix32((seed >>> 0) ^ fmix32(Math.floor(seed / 0x1_0000_0000)));
  const text = String(purpose);
  for (let i = 0; i < text.length; i++) h = fmix32(h ^ text.charCodeAt(i)) + i;
  return fmix32(h) >>> 1;
}

/** The integers 0 … n−1 in an order drawn from `rng`. */
export function permutation(rng: Rng, n: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  return rng.shuffle(order);
}
