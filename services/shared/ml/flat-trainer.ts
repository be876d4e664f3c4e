import type * as tfjs from '@tensorflow/tfjs';
import { fail } from '../errors.js';
import type { Tf } from './engine.js';
import type { Divergence } from './kd-loss.js';
import { deriveSeed } from './random.js';

/** The loss a {@link FlatMlpTrainer} minimises, term by term. */
export interface FlatLossSettings {
  /** Weight of the soft-target term; 0 trains on own rows alone. */
  alpha: number;
  /** Softening temperature of the soft-target term, > 0. */
  temperature: number;
  /** Direction of the soft-target KL divergence; default forward. */
  divergence?: Divergence;
  /** Weight of the hint term; 0 or absent: none. */
  hintWeight?: number;
}

/** Options of {@link FlatMlpTrainer}. */
export interface FlatMlpTrainerOptions {
  /** Adam step size. */
  learningRate: number;
  loss: FlatLossSettings;
  /**
   * A hint loss between the output of student layer `hidden_<studentLayer>` (1-based) and
   * a teacher layer of `teacherWidth` units, through a learned projection initialised
   * from `seed`.
   */
  hint?: { studentLayer: number; teacherWidth: number; seed: number };
}

/**
 * One optimiser step's rows: `transferRows` transfer-set rows followed by `ownRows` of the
 * bank's labelled rows, row-major in `x`.
 */
export interface FlatBatch {
  x: Float32Array;
  transferRows: number;
  ownRows: number;
  /** Teacher probabilities at the temperature for the transfer rows, `transferRows × 2`. */
  soft?: Float32Array;
  /** Their logarithms, computed without underflow (from the logits). */
  logSoft?: Float32Array;
  /** One-hot labels of the own rows, each row multiplied by its normalised weight. */
  ownTargets?: Float32Array;
  /** Normalised weight of each own row (class weight / sum over the batch), `ownRows`. */
  ownWeights?: Float32Array;
  /** Teacher activations of the hint layer on the transfer rows, `transferRows × width`. */
  hint?: Float32Array;
}

/** The complete optimiser state: parameters, Adam moments and step count. */
export interface FlatTrainerState {
  theta: Float32Array;
  m: Float32Array;
  v: Float32Array;
  t: number;
}

interface Slot {
  offset: number;
  size: number;
  shape: number[];
}

const BETA1 = 0.9;
const BETA2 = 0.999;
const EPSILON = 1e-8;

/**
 * Trains a dense ReLU MLP (as built by buildMlp) on the distillation loss with gradients
 * written out by hand and Adam over one flat parameter vector. It computes exactly what
 * autodiff of `alpha · T² · KL + (1 − alpha) · CE + beta · hint` would (test/unit/
 * ml-flat-trainer.test.ts checks it against tf.grad of kd-loss.ts), but issues about 40
 * backend operations per step instead of 150-200: on the WebAssembly engine a small
 * student's step is dominated by per-operation overhead, not arithmetic, so this is what
 * sets the training speed. Adam follows PyTorch's formula (bias corrections folded into
 * the step size), so runs compare one to one with the PyTorch reference.
 */
export class FlatMlpTrainer {
  readonly size: number;
  readonly #tf: Tf;
  readonly #dims: number[];
  readonly #kernels: Slot[] = [];
  readonly #biases: Slot[] = [];
  readonly #hint?: { layer: number; kernel: Slot; bias: Slot; width: number };
  readonly #options: FlatMlpTrainerOptions;
  readonly #theta: tfjs.Variable;
  readonly #m: tfjs.Variable;
  readonly #v: tfjs.Variable;
  readonly #constants: Record<
    'beta1' | 'oneMinusBeta1' | 'beta2' | 'oneMinusBeta2' | 'eps',
    tfjs.Scalar
  >;
  #t = 0;

  /** Starts from the current weights of `model`, a sequential MLP of Dense layers. */
  constructor(tf: Tf, model: tfjs.LayersModel, options: FlatMlpTrainerOptions) {
    this.#tf = tf;
    this.#options = options;
    this.#jsTranspose =
      process.env.DISTILLERY_BACKEND_TRANSPOSE !== '1' &&
      (tf.getBackend() === 'wasm' || tf.getBackend() === 'cpu');
    const dense = model.layers.filter((layer) => layer.getClassName() === 'Dense');
    if (dense.length !== model.layers.length) {
      throw fail('REQUEST_INVALID', { detail: 'the fast trainer takes Dense layers only' });
    }
    const inputDim = model.inputs[0].shape[1] as number;
    this.#dims = [
      inputDim,
      ...dense.map((layer) => (layer.getConfig() as { units: number }).units),
    ];
    let offset = 0;
    const slot = (shape: number[]): Slot => {
      const size = shape.reduce((a, b) => a * b, 1);
      const s = { offset, size, shape };
      offset += size;
      return s;
    };
    for (let l = 0; l + 1 < this.#dims.length; l++) {
      this.#kernels.push(slot([this.#dims[l], this.#dims[l + 1]]));
      this.#biases.push(slot([this.#dims[l + 1]]));
    }
    const initial: tfjs.Tensor[] = dense.flatMap((layer) => layer.getWeights());
    const hint = options.hint;
    if (hint && (options.loss.hintWeight ?? 0) > 0) {
      const hidden = this.#dims.length - 2;
      if (!(
        Number.isInteger(hint.studentLayer) &&
        hint.studentLayer >= 1 &&
        hint.studentLayer <= hidden
      )) {
        throw fail('REQUEST_INVALID', {
          detail: `hint layer hidden_${hint.studentLayer} is not a hidden layer of the student (it has ${hidden})`,
        });
      }
      const studentWidth = this.#dims[hint.studentLayer];
      this.#hint = {
        layer: hint.studentLayer,
        kernel: slot([studentWidth, hint.teacherWidth]),
        bias: slot([hint.teacherWidth]),
        width: hint.teacherWidth,
      };
      const init = tf.initializers.glorotUniform({
        seed: deriveSeed(hint.seed, 'hint-projection'),
      });
      initial.push(init.apply([studentWidth, hint.teacherWidth]), tf.zeros([hint.teacherWidth]));
    }
    this.size = offset;
    this.#theta = tf.tidy(() =>
      tf.variable(tf.concat(initial.map((w) => tf.reshape(w, [-1]))), true, undefined, 'float32'),
    );
    if (this.#hint) initial.slice(-2).forEach((w) => w.dispose());
    this.#m = tf.tidy(() => tf.variable(tf.zeros([offset]), false));
    this.#v = tf.tidy(() => tf.variable(tf.zeros([offset]), false));
    this.#constants = {
      beta1: tf.scalar(BETA1),
      oneMinusBeta1: tf.scalar(1 - BETA1),
      beta2: tf.scalar(BETA2),
      oneMinusBeta2: tf.scalar(1 - BETA2),
      eps: tf.scalar(EPSILON),
    };
  }

  // Constant multipliers as kept scalars: a plain number becomes a new tensor (an upload
  // and a disposal) in every operation that takes it, every step.
  readonly #scalars = new Map<number, tfjs.Scalar>();
  #scalar(value: number): tfjs.Scalar {
    let scalar = this.#scalars.get(value);
    if (scalar === undefined) {
      scalar = this.#tf.scalar(value);
      // Kept only from the first step: later values (an epoch's short last batch) are
      // made per step, so the engine holds the same tensors however the rows divide.
      if (this.#t <= 1) this.#scalars.set(value, this.#tf.keep(scalar));
    }
    return scalar;
  }

  // Column sums as a product with a row of ones: the WebAssembly backend's Sum over axis 0
  // is slow (for a 256 × 128 gradient it took 20x longer than the matMul doing the same).
  readonly #ones = new Map<number, tfjs.Tensor2D>();
  #columnSums(x: tfjs.Tensor, rows: number): tfjs.Tensor {
    // Only the first batch's row count is kept (every batch but an epoch's last has it),
    // so that what the engine holds does not depend on how the rows divide into batches.
    let ones = this.#ones.get(rows);
    if (ones === undefined) {
      ones = this.#tf.ones([1, rows]) as tfjs.Tensor2D;
      if (this.#ones.size === 0) this.#ones.set(rows, this.#tf.keep(ones));
    }
    return this.#tf.matMul(ones, x as tfjs.Tensor2D);
  }

  // The transpose of a batch of activations. The WebAssembly backend's Transpose kernel
  // is slow (a 1024 × 128 batch took longer than the 1024 × 128 × 128 matMul it feeds), so
  // on the backends whose tensors live in this process's memory the rows are read back,
  // transposed in JavaScript and uploaded again; elsewhere (native, GPU) the backend does it.
  readonly #jsTranspose: boolean;
  readonly #transposeBuffers = new Map<number, Float32Array>();
  #transposed(x: tfjs.Tensor, rows: number, cols: number, source?: Float32Array): tfjs.Tensor2D {
    const tf = this.#tf;
    if (!this.#jsTranspose) return tf.transpose(x) as tfjs.Tensor2D;
    const values = source ?? (x.dataSync() as Float32Array);
    let out = this.#transposeBuffers.get(rows * cols);
    if (out === undefined) {
      out = new Float32Array(rows * cols);
      this.#transposeBuffers.set(rows * cols, out);
    }
    for (let i = 0; i < rows; i++) {
      const base = i * cols;
      for (let j = 0; j < cols; j++) out[j * rows + i] = values[base + j];
    }
    return tf.tensor2d(out, [cols, rows]);
  }

  /** Optimiser steps taken so far. */
  get steps(): number {
    return this.#t;
  }

  #view(theta: tfjs.Tensor, slot: Slot): tfjs.Tensor {
    const tf = this.#tf;
    return tf.reshape(tf.slice(theta, [slot.offset], [slot.size]), slot.shape);
  }

  /**
   * The loss on `batch` and its gradient with respect to the flat parameters, without
   * updating anything. Both are new tensors the caller disposes.
   */
  lossAndGradient(batch: FlatBatch): { loss: tfjs.Scalar; gradient: tfjs.Tensor1D } {
    const tf = this.#tf;
    const { loss: settings } = this.#options;
    const nT = batch.transferRows;
    const nO = batch.ownRows;
    const rows = nT + nO;
    const d = this.#dims[0];
    const layers = this.#kernels.length;
    return tf.tidy(() => {
      const theta = this.#theta;
      const kernels = this.#kernels.map((slot) => this.#view(theta, slot));
      const biases = this.#biases.map((slot) => this.#view(theta, slot));

      // Forward pass, keeping each layer's output for the backward pass.
      const acts: tfjs.Tensor[] = [tf.tensor2d(batch.x.subarray(0, rows * d), [rows, d])];
      // One fused kernel per layer (matMul + bias + ReLU) instead of three operations.
      for (let l = 0; l < layers; l++) {
        acts.push(
          tf.fused.matMul({
            a: acts[l] as tfjs.Tensor2D,
            b: kernels[l] as tfjs.Tensor2D,
            bias: biases[l],
            activation: l + 1 < layers ? 'relu' : 'linear',
          }),
        );
      }
      const logits = acts[layers];

      const lossTerms: tfjs.Tensor[] = [];
      const dLogits: tfjs.Tensor[] = [];
      if (nT > 0) {
        if (!batch.soft || !batch.logSoft) {
          throw fail('REQUEST_INVALID', {
            detail: 'a batch with transfer rows needs soft targets',
          });
        }
        const T = settings.temperature;
        const p = tf.tensor2d(batch.soft.subarray(0, nT * 2), [nT, 2]);
        const logP = tf.tensor2d(batch.logSoft.subarray(0, nT * 2), [nT, 2]);
        const zt = nO > 0 ? tf.slice(logits, [0, 0], [nT, 2]) : logits;
        const logQ = tf.logSoftmax(tf.div(zt, this.#scalar(T)));
        const q = tf.exp(logQ);
        if (settings.divergence === 'reverse') {
          // d/dz of T²·KL(q‖p) = T · q ⊙ (log q − log p − KL) per row.
          const r = tf.sub(logQ, logP);
          const klRow = tf.sum(tf.mul(q, r), 1, true);
          lossTerms.push(tf.mul(tf.sum(klRow), this.#scalar((settings.alpha * T * T) / nT)));
          dLogits.push(
            tf.mul(tf.mul(q, tf.sub(r, klRow)), this.#scalar((settings.alpha * T) / nT)),
          );
        } else {
          // d/dz of T²·KL(p‖q) = T · (q − p) per row.
          lossTerms.push(
            tf.mul(
              tf.sum(tf.mul(p, tf.sub(logP, logQ))),
              this.#scalar((settings.alpha * T * T) / nT),
            ),
          );
          dLogits.push(tf.mul(tf.sub(q, p), this.#scalar((settings.alpha * T) / nT)));
        }
      }
      if (nO > 0) {
        if (!batch.ownTargets || !batch.ownWeights) {
          throw fail('REQUEST_INVALID', { detail: 'a batch with own rows needs their labels' });
        }
        const ceScale = nT > 0 ? 1 - settings.alpha : 1;
        const targets = tf.tensor2d(batch.ownTargets.subarray(0, nO * 2), [nO, 2]);
        const weights = tf.tensor2d(batch.ownWeights.subarray(0, nO), [nO, 1]);
        const zo = nT > 0 ? tf.slice(logits, [nT, 0], [nO, 2]) : logits;
        const logR = tf.logSoftmax(zo);
        lossTerms.push(tf.mul(tf.sum(tf.mul(targets, logR)), this.#scalar(-ceScale)));
        dLogits.push(tf.mul(tf.sub(tf.mul(tf.exp(logR), weights), targets), this.#scalar(ceScale)));
      }

      // Hint term: R = h_s·P + c − h_t on the transfer rows; loss β·mean(R²).
      let hintGrads: { dKernel: tfjs.Tensor; dBias: tfjs.Tensor; dActs: tfjs.Tensor } | undefined;
      const hint = this.#hint;
      if (hint && nT > 0) {
        if (!batch.hint)
          throw fail('REQUEST_INVALID', { detail: 'a hint batch needs teacher activations' });
        const beta = settings.hintWeight ?? 0;
        const kernel = this.#view(theta, hint.kernel);
        const bias = this.#view(theta, hint.bias);
        const hs = nO > 0 ? tf.slice(acts[hint.layer], [0, 0], [nT, -1]) : acts[hint.layer];
        const ht = tf.tensor2d(batch.hint.subarray(0, nT * hint.width), [nT, hint.width]);
        const residual = tf.sub(
          tf.add(tf.matMul(hs as tfjs.Tensor2D, kernel as tfjs.Tensor2D), bias),
          ht,
        );
        const scale = beta / (nT * hint.width);
        lossTerms.push(tf.mul(tf.sum(tf.square(residual)), this.#scalar(scale)));
        const dR = tf.mul(residual, this.#scalar(2 * scale));
        const dHs = tf.matMul(dR as tfjs.Tensor2D, tf.transpose(kernel) as tfjs.Tensor2D);
        hintGrads = {
          dKernel: tf.matMul(tf.transpose(hs) as tfjs.Tensor2D, dR as tfjs.Tensor2D),
          dBias: this.#columnSums(dR, nT),
          dActs:
            nO > 0
              ? tf.pad(dHs, [
                  [0, nO],
                  [0, 0],
                ])
              : dHs,
        };
      }

      // Backward pass. Explicit transposes: matMul with transpose flags is several times
      // slower on the WebAssembly backend (see fastMatMul in mlp.ts).
      let dPre = dLogits.length === 1 ? dLogits[0] : tf.concat(dLogits, 0);
      const grads: tfjs.Tensor[] = new Array(2 * layers);
      for (let l = layers - 1; l >= 0; l--) {
        const actsT =
          l === 0
            ? this.#transposed(acts[0], rows, d, batch.x)
            : this.#transposed(acts[l], rows, this.#dims[l]);
        grads[2 * l] = tf.matMul(actsT, dPre as tfjs.Tensor2D);
        grads[2 * l + 1] = this.#columnSums(dPre, rows);
        if (l > 0) {
          let dH = tf.matMul(dPre as tfjs.Tensor2D, tf.transpose(kernels[l]) as tfjs.Tensor2D);
          if (hintGrads && hint?.layer === l) dH = tf.add(dH, hintGrads.dActs);
          dPre = tf.mul(dH, tf.step(acts[l]));
        }
      }
      if (hintGrads) grads.push(hintGrads.dKernel, hintGrads.dBias);
      const gradient = tf.concat(grads.map((g) => tf.reshape(g, [-1]))) as tfjs.Tensor1D;
      const loss = (lossTerms.length === 1 ? lossTerms[0] : tf.addN(lossTerms)) as tfjs.Scalar;
      return { loss, gradient };
    });
  }

  /** One Adam step on `batch`; returns the batch's loss before the step (caller disposes). */
  step(batch: FlatBatch): tfjs.Scalar {
    const tf = this.#tf;
    const c = this.#constants;
    this.#t += 1;
    const t = this.#t;
    const stepSize = this.#options.learningRate / (1 - BETA1 ** t);
    const sqrtBias2 = Math.sqrt(1 - BETA2 ** t);
    return tf.tidy(() => {
      const { loss, gradient } = this.lossAndGradient(batch);
      const m = tf.add(tf.mul(this.#m, c.beta1), tf.mul(gradient, c.oneMinusBeta1));
      const v = tf.add(tf.mul(this.#v, c.beta2), tf.mul(tf.square(gradient), c.oneMinusBeta2));
      const denominator = tf.add(tf.div(tf.sqrt(v), sqrtBias2), c.eps);
      this.#theta.assign(tf.sub(this.#theta, tf.mul(tf.div(m, denominator), stepSize)));
      this.#m.assign(m);
      this.#v.assign(v);
      return loss;
    });
  }

  /** Writes the current parameters into `model`'s Dense layers (hint projection excluded). */
  writeTo(model: tfjs.LayersModel): void {
    const tf = this.#tf;
    const weights = tf.tidy(() =>
      this.#kernels.flatMap((kernel, l) => [
        this.#view(this.#theta, kernel),
        this.#view(this.#theta, this.#biases[l]),
      ]),
    );
    model.setWeights(weights);
    weights.forEach((w) => w.dispose());
  }

  /** A copy of the whole state, for checkpoints and for keeping the best epoch. */
  getState(): FlatTrainerState {
    return {
      theta: this.#theta.dataSync() as Float32Array,
      m: this.#m.dataSync() as Float32Array,
      v: this.#v.dataSync() as Float32Array,
      t: this.#t,
    };
  }

  /**
   * Restores a state from {@link getState}.
   *
   * @throws MODEL_SHAPE_MISMATCH when it belongs to a differently shaped model.
   */
  setState(state: FlatTrainerState): void {
    const tf = this.#tf;
    for (const [name, values] of [
      ['theta', state.theta],
      ['m', state.m],
      ['v', state.v],
    ] as const) {
      if (values.length !== this.size) {
        throw fail('MODEL_SHAPE_MISMATCH', {
          what: `trainer state ${name}`,
          expected: `${this.size} values`,
          actual: `${values.length} values`,
        });
      }
    }
    tf.tidy(() => {
      this.#theta.assign(tf.tensor1d(state.theta));
      this.#m.assign(tf.tensor1d(state.m));
      this.#v.assign(tf.tensor1d(state.v));
    });
    this.#t = state.t;
  }

  /** Sets only the parameters (the best epoch's, say), leaving Adam's moments. */
  setParameters(theta: Float32Array): void {
    const tf = this.#tf;
    tf.tidy(() => this.#theta.assign(tf.tensor1d(theta)));
  }

  /** Frees the trainer's tensors. */
  dispose(): void {
    this.#theta.dispose();
    this.#m.dispose();
    this.#v.dispose();
    Object.values(this.#constants).forEach((c) => c.dispose());
    this.#scalars.forEach((c) => c.dispose());
    this.#ones.forEach((c) => c.dispose());
    this.#ones.clear();
    this.#scalars.clear();
  }
}
