// `npm run check:gpu`: which TensorFlow.js engine loads on this machine, whether it sees a
// GPU, and how fast it runs the distillation job (students 30-16-2 and 30-128-128-2, batch
// 256 and 1024, Adam, T = 4) and teacher inference. Short enough to run as one script on a
// GPU machine: about a minute. Prints a summary and one JSON line; writes
// out/bench/check-gpu.json. Exit code 0 whatever engine loads; the JSON says which.
//
// `@tensorflow/tfjs-node-gpu` needs libtensorflow 2.9.1 (CUDA 11.2, cuDNN 8.1). Its install
// script downloads it from Google storage; where that is blocked, point the install at an
// internal mirror: TFJS_NODE_CDN_STORAGE=https://mirror.example/tfjs npm install (see
// README). Without it the engine module falls back to tfjs-node, then WebAssembly, and logs
// why once.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger } from '../services/shared/logger.js';
import { trainStudent } from '../services/shared/ml/distil.js';
import { loadEngine, type Engine } from '../services/shared/ml/engine.js';
import { buildMlp } from '../services/shared/ml/mlp.js';
import { predictLogits } from '../services/shared/ml/predict.js';
import { createRng } from '../services/shared/ml/random.js';

const ROWS = 20_000;
const FEATURES = 30;

/** What the native engine says about its devices; undefined where it cannot say. */
async function gpuDevices(engine: Engine): Promise<{ sees: boolean; detail: string }> {
  if (engine.name !== 'tfjs-node-gpu' && engine.name !== 'tfjs-node') {
    return { sees: false, detail: `${engine.name} runs on the CPU only` };
  }
  // tfjs-node has no device query; a GPU build places ops on the GPU when TensorFlow finds
  // one and says so in its own log. A matMul large enough to be slow on 2 cores is the
  // practical probe: time it and report.
  const { tf } = engine;
  const a = tf.randomNormal([2048, 2048]);
  tf.matMul(a, a).dataSync();
  const started = performance.now();
  for (let i = 0; i < 5; i++) tf.tidy(() => tf.matMul(a, a).dataSync());
  const ms = (performance.now() - started) / 5;
  a.dispose();
  const gflops = (2 * 2048 ** 3) / (ms * 1e6);
  return {
    sees: engine.gpu && gflops > 500,
    detail: `2048x2048 matMul ${ms.toFixed(1)} ms (${gflops.toFixed(0)} GFLOP/s)${engine.gpu ? '' : ', CPU build'}`,
  };
}

async function main() {
  const logger = createLogger({ service: 'check-gpu' });
  const engine = await loadEngine({ logger });
  const devices = await gpuDevices(engine);
  const rng = createRng(0);
  const x = Float32Array.from({ length: ROWS * FEATURES }, () => rng.next() * 2 - 1);
  const logits = Float32Array.from({ length: ROWS * 2 }, () => (rng.next() * 2 - 1) * 4);
  const ownX = x.subarray(0, 2000 * FEATURES);
  const ownY = Uint8Array.from({ length: 2000 }, () => (rng.next() < 0.2 ? 1 : 0));
  const kd = [];
  for (const hidden of [[16], [128, 128]]) {
    for (const batchSize of [256, 1024]) {
      const run = () =>
        trainStudent(engine, {
          inputDim: FEATURES,
          hidden,
          own: { x: ownX, y: ownY },
          teacher: { x, logits, temperature: 4, alpha: 0.9 },
          epochs: 1,
          batchSize,
          ownBatchSize: batchSize / 8,
          seed: 1,
        });
      (await run()).model.dispose(); // warm-up
      const r = await run();
      r.model.dispose();
      kd.push({
        student: `${FEATURES}-${hidden.join('-')}-2`,
        batch: batchSize,
        samplesPerSecond: Math.round((r.samplesPerSecond * 8) / 9),
        msPerStep: +(r.durationMs / r.steps).toFixed(3),
      });
    }
  }
  const teacher = buildMlp(engine.tf, { inputDim: FEATURES, hidden: [256, 256], seed: 2 });
  predictLogits(engine, teacher, x.subarray(0, 4096 * FEATURES), 4096);
  const started = performance.now();
  predictLogits(engine, teacher, x, ROWS);
  const inference = Math.round(ROWS / ((performance.now() - started) / 1000));
  teacher.dispose();

  const report = {
    engine: engine.name,
    backend: engine.tf.getBackend(),
    gpuBuild: engine.gpu,
    seesGpu: devices.sees,
    device: devices.detail,
    fallbackReason: engine.fallbackReason ?? null,
    kd,
    teacherInferenceRowsPerSecond: inference,
  };
  console.log(
    `engine ${report.engine} (backend ${report.backend}); GPU build ${report.gpuBuild}; sees a GPU: ${report.seesGpu} (${report.device})`,
  );
  if (report.fallbackReason) console.log(`fell back because: ${report.fallbackReason}`);
  for (const k of kd)
    console.log(
      `  KD ${k.student} batch ${k.batch}: ${k.samplesPerSecond.toLocaleString('en-US')} samples/s, ${k.msPerStep} ms/step`,
    );
  console.log(`  teacher inference 30-256-256-2: ${inference.toLocaleString('en-US')} rows/s`);
  console.log(JSON.stringify(report));
  mkdirSync('out/bench', { recursive: true });
  writeFileSync(join('out/bench', 'check-gpu.json'), JSON.stringify(report, null, 2));
}

await main();
