// `npm run report:quality`: how good distilled students are, over several seeds, on both
// sample datasets. Per dataset and seed it trains the hub's teacher, computes its states on
// the transfer set, and trains students of several sizes on 1%, 5% and 20% of the rows as
// the bank's own data: without the teacher, distilled on soft targets, and distilled on
// soft targets plus a hint from the teacher's last hidden layer. Writes
// out/report/quality.json and one SVG per dataset (AUC against student size, the teacher as
// a line), and prints where the claim holds: a student at least 10x smaller than the
// teacher keeps at least 99% of its AUC and beats the student trained without it.
//
// Flags: --seeds N (default 5), --datasets lending_club,credit_data, --shares 0.01,0.05,0.2,
// --sizes 8:16:32-16 (hidden widths, '-' between layers, ':' between students), --out DIR.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ss from 'simple-statistics';
import { readLabelledRows, type RawRow } from '../services/shared/data/csv.js';
import { getDatasetSchema } from '../services/shared/data/dataset-schema.js';
import { encodeRows, featureDim, fitPreprocessor } from '../services/shared/data/preprocessing.js';
import { splitStratified } from '../services/shared/data/split.js';
import { createLogger } from '../services/shared/logger.js';
import { trainStudent } from '../services/shared/ml/distil.js';
import { loadEngine, type Engine } from '../services/shared/ml/engine.js';
import { prAuc, rocAuc } from '../services/shared/ml/metrics.js';
import { predictPositive } from '../services/shared/ml/predict.js';
import { computeTeacherStates } from '../services/shared/ml/states.js';
import { trainTeacher } from '../services/shared/ml/teacher.js';
import { writeLineChart } from './lib/chart.js';

const { values: flags } = parseArgs({
  options: {
    seeds: { type: 'string', default: '5' },
    datasets: { type: 'string', default: 'lending_club,credit_data' },
    shares: { type: 'string', default: '0.01,0.05,0.2' },
    sizes: { type: 'string', default: '8:16:32-16' },
    out: { type: 'string', default: 'out/report' },
  },
});
const seeds = Array.from({ length: Number(flags.seeds) }, (_, i) => i);
const datasets = flags.datasets.split(',');
const shares = flags.shares.split(',').map(Number);
const sizes = flags.sizes.split(':').map((s) => s.split('-').map(Number));
const TEMPERATURE = 4;
const ALPHA = 0.9;
const HINT_LAYER = 'hidden_2';
// Split of all rows, stratified by label. The bank's pool is 20% so that a bank can hold
// 20% of all rows; REFERENCE-RESULTS uses hub 50%, transfer 20%, pool 10%, test 20%.
const FRACTIONS = { hub: 0.4, transfer: 0.2, pool: 0.2, test: 0.2 };

type Method = 'own-only' | 'distilled' | 'distilled+hint';
interface Run {
  dataset: string;
  seed: number;
  hidden: number[];
  params: number;
  share: number;
  ownRows: number;
  ownPositives: number;
  method: Method;
  auc: number;
  prAuc: number;
  samplesPerSecond: number;
}

function pick<T>(all: T[], indices: Uint32Array): T[] {
  return Array.from(indices, (i) => all[i]);
}

function summary(values: number[]) {
  return {
    mean: ss.mean(values),
    sd: values.length > 1 ? ss.sampleStandardDeviation(values) : 0,
    min: ss.min(values),
    max: ss.max(values),
    values,
  };
}

function paramsOf(inputDim: number, hidden: number[]): number {
  const dims = [inputDim, ...hidden, 2];
  let total = 0;
  for (let l = 0; l + 1 < dims.length; l++) total += dims[l] * dims[l + 1] + dims[l + 1];
  return total;
}

async function runDataset(engine: Engine, name: string) {
  const schema = getDatasetSchema(name);
  const { rows, labels } = readLabelledRows(`data/${name}.csv`, schema);
  const teachers: { seed: number; params: number; auc: number; prAuc: number; ms: number }[] = [];
  const runs: Run[] = [];
  let missingCells = 0;
  for (const row of rows)
    for (const value of Object.values(row)) if (value === null) missingCells++;

  for (const seed of seeds) {
    const started = performance.now();
    const parts = splitStratified(labels, FRACTIONS, seed);
    const hubRows = pick(rows, parts.hub);
    const hubLabels = Uint8Array.from(parts.hub, (i) => labels[i]);
    // Preprocessing is fitted on the hub's rows only, as the hub publishes it.
    const spec = fitPreprocessor(hubRows, schema);
    const inputDim = featureDim(spec);
    const inner = splitStratified(hubLabels, { train: 0.85, validation: 0.15 }, seed + 1000);
    const encode = (part: RawRow[]) => encodeRows(spec, part);
    const trainX = encode(pick(hubRows, inner.train));
    const trainY = Uint8Array.from(inner.train, (i) => hubLabels[i]);
    const valX = encode(pick(hubRows, inner.validation));
    const valY = Uint8Array.from(inner.validation, (i) => hubLabels[i]);
    const transferX = encode(pick(rows, parts.transfer));
    const testX = encode(pick(rows, parts.test));
    const testY = Uint8Array.from(parts.test, (i) => labels[i]);
    const poolRows = pick(rows, parts.pool);
    const poolLabels = Uint8Array.from(parts.pool, (i) => labels[i]);

    const teacher = await trainTeacher(engine, {
      x: trainX,
      y: trainY,
      inputDim,
      valX,
      valY,
      seed,
    });
    const teacherScores = predictPositive(engine, teacher.model, testX, testY.length);
    const teacherParams = teacher.model.countParams();
    teachers.push({
      seed,
      params: teacherParams,
      auc: rocAuc(teacherScores, testY),
      prAuc: prAuc(teacherScores, testY),
      ms: teacher.durationMs,
    });
    const states = computeTeacherStates(engine, teacher.model, transferX, parts.transfer.length, {
      temperature: TEMPERATURE,
      hiddenLayers: [HINT_LAYER],
    });
    teacher.model.dispose();

    for (const share of shares) {
      // The bank's rows: `share` of all rows, drawn stratified from its pool.
      const own = splitStratified(poolLabels, { own: share / FRACTIONS.pool }, seed + 2000).own;
      const ownX = encode(pick(poolRows, own));
      const ownY = Uint8Array.from(own, (i) => poolLabels[i]);
      const ownPositives = ownY.reduce((a, b) => a + b, 0);
      for (const hidden of sizes) {
        for (const method of ['own-only', 'distilled', 'distilled+hint'] as Method[]) {
          const trained = await trainStudent(engine, {
            inputDim,
            hidden,
            own: { x: ownX, y: ownY },
            ...(method === 'own-only'
              ? {}
              : {
                  teacher: {
                    x: transferX,
                    logits: states.logits,
                    temperature: TEMPERATURE,
                    alpha: ALPHA,
                    ...(method === 'distilled+hint'
                      ? {
                          hint: {
                            values: states.hidden[HINT_LAYER].values,
                            width: states.hidden[HINT_LAYER].width,
                          },
                        }
                      : {}),
                  },
                }),
            seed,
          });
          const scores = predictPositive(engine, trained.model, testX, testY.length);
          runs.push({
            dataset: name,
            seed,
            hidden,
            params: trained.model.countParams(),
            share,
            ownRows: ownY.length,
            ownPositives,
            method,
            auc: rocAuc(scores, testY),
            prAuc: prAuc(scores, testY),
            samplesPerSecond: trained.samplesPerSecond,
          });
          trained.model.dispose();
        }
      }
    }
    const last = teachers[teachers.length - 1];
    console.log(
      `  ${name} seed ${seed}: teacher AUC ${last.auc.toFixed(3)} (${last.params} params), ` +
        `${sizes.length * shares.length * 3} students, ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  }

  const teacherAuc = summary(teachers.map((t) => t.auc));
  const teacherParams = teachers[0].params;
  const groups = [];
  for (const share of shares) {
    for (const hidden of sizes) {
      const of = (method: Method) =>
        runs.filter(
          (r) =>
            r.share === share && r.method === method && r.hidden.join('-') === hidden.join('-'),
        );
      const alone = of('own-only');
      for (const method of ['own-only', 'distilled', 'distilled+hint'] as Method[]) {
        const these = of(method);
        const auc = summary(these.map((r) => r.auc));
        const params = these[0].params;
        const wins = these.filter((r, i) => r.auc > alone[i].auc).length;
        // Per seed against that seed's teacher: the mean can hide seeds where it fails.
        const kept = these.filter(
          (r) => r.auc >= 0.99 * (teachers.find((t) => t.seed === r.seed)?.auc ?? Infinity),
        ).length;
        groups.push({
          share,
          hidden,
          params,
          compression: teacherParams / params,
          method,
          ownRows: these[0].ownRows,
          ownPositives: summary(these.map((r) => r.ownPositives)).mean,
          auc,
          prAuc: summary(these.map((r) => r.prAuc)),
          keepsOfTeacherAuc: auc.mean / teacherAuc.mean,
          seedsKeeping99: `${kept}/${these.length}`,
          ...(method === 'own-only'
            ? {}
            : {
                gainOverOwnOnly: summary(these.map((r, i) => r.auc - alone[i].auc)),
                winsOverOwnOnly: `${wins}/${these.length}`,
              }),
        });
      }
    }
  }
  return {
    dataset: name,
    rows: rows.length,
    positives: labels.reduce((a, b) => a + b, 0),
    missingCells,
    inputDim: featureDim(fitPreprocessor(rows, schema)),
    teacher: {
      hidden: [256, 256],
      params: teacherParams,
      auc: teacherAuc,
      prAuc: summary(teachers.map((t) => t.prAuc)),
      trainMs: summary(teachers.map((t) => t.ms)),
    },
    students: groups,
    runs,
  };
}

const fmt = (v: number, d = 3) => v.toFixed(d);

async function main() {
  const logger = createLogger({ service: 'report-quality', level: 'warn' });
  const engine = await loadEngine({ logger });
  const started = performance.now();
  console.log(
    `quality report: ${datasets.join(', ')}; seeds ${seeds.join(',')}; bank shares ${shares.join(', ')}; ` +
      `students ${sizes.map((s) => `in-${s.join('-')}-2`).join(', ')}; engine ${engine.name}`,
  );
  const results = [];
  for (const name of datasets) results.push(await runDataset(engine, name));

  const claims = [];
  for (const r of results) {
    console.log(
      `\n${r.dataset}: ${r.rows} rows, ${r.positives} bad, ${r.missingCells} missing cells; ` +
        `teacher in-256-256-2 ${r.teacher.params} params, test AUC ${fmt(r.teacher.auc.mean)} ± ${fmt(r.teacher.auc.sd)} ` +
        `(PR AUC ${fmt(r.teacher.prAuc.mean)})`,
    );
    console.log(
      'share  student       params  compr.  method           AUC mean ± sd    PR AUC  kept   gain vs own  wins',
    );
    for (const g of r.students) {
      console.log(
        [
          `${(g.share * 100).toFixed(0)}%`.padEnd(6),
          `in-${g.hidden.join('-')}-2`.padEnd(13),
          String(g.params).padStart(6),
          `${g.compression.toFixed(1)}x`.padStart(7),
          ` ${g.method.padEnd(16)}`,
          `${fmt(g.auc.mean)} ± ${fmt(g.auc.sd)}`.padEnd(16),
          fmt(g.prAuc.mean).padStart(7),
          `${(g.keepsOfTeacherAuc * 100).toFixed(1)}%`.padStart(7),
          (g.gainOverOwnOnly
            ? `${g.gainOverOwnOnly.mean >= 0 ? '+' : ''}${fmt(g.gainOverOwnOnly.mean)}`
            : ''
          ).padStart(12),
          (g.winsOverOwnOnly ?? '').padStart(6),
        ].join(' '),
      );
      if (g.method !== 'own-only' && g.compression >= 10) {
        const keeps = g.keepsOfTeacherAuc >= 0.99;
        const beats = (g.gainOverOwnOnly?.mean ?? 0) > 0;
        claims.push({
          dataset: r.dataset,
          share: g.share,
          hidden: g.hidden,
          method: g.method,
          compression: g.compression,
          keepsOfTeacherAuc: g.keepsOfTeacherAuc,
          keeps99: keeps,
          seedsKeeping99: g.seedsKeeping99,
          beatsOwnOnly: beats,
          winsOverOwnOnly: g.winsOverOwnOnly,
          holds: keeps && beats,
        });
      }
    }
    await writeLineChart(join(flags.out, `quality-${r.dataset}.svg`), {
      title: `${r.dataset}: test ROC AUC against student size (mean of ${seeds.length} seeds)`,
      x: { field: 'params', title: 'student parameters', scale: 'log' },
      y: { field: 'auc', title: 'test ROC AUC' },
      series: 'line',
      rows: r.students.map((g) => ({
        params: g.params,
        auc: g.auc.mean,
        line: `${g.method}, bank ${(g.share * 100).toFixed(0)}%`,
      })),
      rules: [
        {
          y: r.teacher.auc.mean,
          label: `teacher ${fmt(r.teacher.auc.mean)} (${r.teacher.params} params)`,
        },
      ],
    });
  }

  const held = claims.filter((c) => c.holds).length;
  console.log(
    `\nclaim (>= 10x smaller, >= 99% of teacher AUC, beats the student without teacher): holds in ${held} of ${claims.length} cases`,
  );
  for (const share of shares) {
    for (const name of datasets) {
      const cases = claims.filter((c) => c.share === share && c.dataset === name);
      const text = cases
        .map(
          (c) =>
            `${c.method} in-${c.hidden.join('-')}-2 ${(c.keepsOfTeacherAuc * 100).toFixed(2)}% (${c.seedsKeeping99} seeds >= 99%) ${c.holds ? 'holds' : c.keeps99 ? 'kept, no gain' : c.beatsOwnOnly ? 'gain, <99%' : 'fails'}`,
        )
        .join('; ');
      console.log(`  ${name} bank ${(share * 100).toFixed(0)}%: ${text}`);
    }
  }

  const durationS = (performance.now() - started) / 1000;
  const report = {
    generatedAt: new Date().toISOString(),
    engine: engine.name,
    durationS,
    protocol: {
      seeds,
      split: FRACTIONS,
      hubValidationShare: 0.15,
      preprocessing:
        'fitted on hub rows only: numeric median imputation then standardisation; categorical one-hot with missing as its own level (levels held by fewer than 10 hub rows get no feature)',
      teacher:
        'in-256-256-2, dropout 0.3, Adam 1e-3, batch 128, <= 40 epochs, early stopping on validation AUC (patience 8)',
      students: sizes.map((s) => `in-${s.join('-')}-2`),
      distillation: {
        temperature: TEMPERATURE,
        alpha: ALPHA,
        hintLayer: HINT_LAYER,
        steps: 500,
        batch: 256,
      },
      ownOnly: { steps: 150, classWeights: 'balanced' },
      shares,
    },
    datasets: results,
    claims,
  };
  mkdirSync(flags.out, { recursive: true });
  writeFileSync(join(flags.out, 'quality.json'), JSON.stringify(report, null, 2));
  console.log(
    `\nwrote ${join(flags.out, 'quality.json')} and quality-<dataset>.svg in ${durationS.toFixed(0)} s`,
  );
}

await main();
