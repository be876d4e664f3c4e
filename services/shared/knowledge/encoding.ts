import { Float16Array } from '@petamoriken/float16';
import { fail } from '../errors.js';

/** How a tensor's values are laid out on the wire and in the registry. */
export type TensorDtype = 'float32' | 'float16' | 'int8' | 'uint8';

/** The encodings a publisher may choose for teacher states (`uint8` is for artefacts). */
export const STATE_DTYPES = ['float32', 'float16', 'int8'] as const;
export type StateDtype = (typeof STATE_DTYPES)[number];

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Record<TensorDtype, number> = {
  float32: 4,
  float16: 2,
  int8: 1,
  uint8: 1,
};

/** Largest finite float16 value; anything beyond would become Infinity. */
const FLOAT16_MAX = 65504;

/** An encoded tensor: its bytes, and for int8 the scale that maps codes back to values. */
export interface EncodedTensor {
  bytes: Uint8Array;
  scale?: number;
}

/**
 * Encodes float32 values as `dtype`. float16 rounds to nearest (about 3 significant
 * digits); int8 stores round(v / scale) in [-127, 127] with scale = max|v| / 127, one scale
 * per tensor, so the largest value keeps its magnitude and small ones lose precision.
 *
 * @throws TENSOR_NOT_ENCODABLE for a non-finite value, or a value float16 cannot hold
 */
export function encodeTensor(name: string, values: Float32Array, dtype: StateDtype): EncodedTensor {
  if (dtype === 'float32') {
    return { bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
  }
  let maxAbs = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) {
      throw fail('TENSOR_NOT_ENCODABLE', { name, dtype, detail: `value ${v} at element ${i}` });
    }
    const a = Math.abs(v);
    if (a > maxAbs) maxAbs = a;
  }
  if (dtype === 'float16') {
    if (maxAbs > FLOAT16_MAX) {
      throw fail('TENSOR_NOT_ENCODABLE', {
        name,
        dtype,
        detail: `largest magnitude ${maxAbs} exceeds float16's ${FLOAT16_MAX}`,
      });
    }
    const half = new Float16Array(values);
    return { bytes: new Uint8Array(half.buffer, half.byteOffset, half.byteLength) };
  }
  // An all-zero tensor still needs a positive scale to decode.
  const scale = maxAbs > 0 ? maxAbs / 127 : 1;
  const codes = new Int8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    codes[i] = Math.max(-127, Math.min(127, Math.round(values[i]! / scale)));
  }
  return { bytes: new Uint8Array(codes.buffer), scale };
}

/**
 * Decodes a tensor's bytes to float32. `bytes` (a Uint8Array or Buffer) may start at any
 * offset: they are copied into an aligned buffer first.
 */
export function decodeTensor(
  bytes: Uint8Array,
  dtype: Exclude<TensorDtype, 'uint8'>,
  scale?: number,
): Float32Array {
  // A copy into a fresh buffer of its own: `Buffer#slice` would share the blob's memory,
  // and the typed arrays below read from the start of the buffer they are given.
  const aligned = new Uint8Array(bytes);
  if (dtype === 'float32') return new Float32Array(aligned.buffer, 0, aligned.byteLength / 4);
  if (dtype === 'float16') {
    return Float32Array.from(new Float16Array(aligned.buffer, 0, aligned.byteLength / 2));
  }
  const codes = new Int8Array(aligned.buffer, 0, aligned.byteLength);
  const out = new Float32Array(codes.length);
  const s = scale ?? 1;
  for (let i = 0; i < codes.length; i++) out[i] = codes[i]! * s;
  return out;
}
