/**
 * `npm run report:privacy`: the privacy-utility curve of the release policies on
 * data/lending_club.csv, measured, over several seeds.
 *
 * Per seed the rows are split as the demo splits them (hub 50%, transfer 20%, test 20%,
 * one bank 5%). The hub trains its teacher (as it publishes it) and, for the DP policies,
 * an ensemble of teachers on disjoint shards of the same rows. Each policy releases the
 * states of `--rows` transfer rows (the row cap); the bank distils a student from them and
 * its own rows, and its test AUC is measured. A confidence-threshold membership-inference
 * attack then tries to tell the hub's training rows from test rows it never saw, (a) from
 * query-mode answers on those rows under the same policy and ε, (b) from the student.
 *
 * The preprocessing is fitted on the transfer set, which every party holds, so that the DP
 * guarantee of the ensemble policies is exactly the one stated in aggregate.ts (the hub's
 * own teacher fits it on its private rows and publishes it outside the guarantee).
 *
 * Two teacher regimes: `early-stopped` (as the hub trains: dropout, early stopping on held-out
 * rows) and `memorising` (no dropout, a fixed number of epochs, kept at the epoch that fits
 * the training rows best), where membership leaks and the attack has something to find.
 * The DP policies run on ensembles of each size in `--teachers`; m = 1 is one teacher on all
 * the hub's rows with the same DP mechanism (sensitivity √2 per row, as for any m).
 *
 * Flags: --seeds N (default 3) | --seed-list 0,1,2; --rows R released transfer rows (default
 * 500); --teachers 1,20; --epsilons 0.5,1,2,4,8,32,128,512,2048,8192 (no noise is always
 * added); --delta (default 1e-5); --attack-rows K per side (default 1000); --regimes
 * early-stopped,memorising; --memorise-epochs (default 60); --out (default out/report);
 * --chart-only out/report/privacy.json redraws the picture of an earlier run.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import { readLabelledRows } from '../services/shared/data/csv.js';
import { getDatasetSchema } from '../services/shared/data/dataset-schema.js';
import { encodeRows, featureDim, fitPreprocessor } from '../services/shared/data/preprocessing.js';
import { splitStratified } from '../services/shared/data/split.js';
import { createLogger } from '../services/shared/logger.js';
import { trainStudent } from '../services/shared/ml/distil.js';
import { loadEngine, type Engine } from '../services/shared/ml/engine.js';
import { rocAuc } from '../services/shared/ml/metrics.js';
import { countParams } from '../services/shared/ml/mlp.js';
import { predictLogits, predictPositive } from '../services/shared/ml/predict.js';
import { createRng, deriveSeed } from '../services/shared/ml/random.js';
import { trainTeacher } from '../services/shared/ml/teacher.js';
import {
  calibrateEnsembleRelease,
  gnmaxRelease,
  noisyEnsembleAverage,
  votesToProbabilities,
} from '../services/shared/privacy/aggregate.js';
import {
  disposeEnsemble,
  ensembleProbabilities,
  trainTeacherEnsemble,
} from '../services/shared/privacy/ensemble.js';
import {
  chanceAdvantage,
  thresholdAttack,
  trueLabelConfidence,
} from '../services/shared/privacy/membership-inference.js';
import { seededNoise } from '../services/shared/privacy/noise.js';
import {
  labelOnly,
  probabilitiesToLogits,
  projectRowsToSimplex,
  softmaxRows,
  topKProbabilities,
} from '../services/shared/privacy/release.js';

interface Flags {
  seeds: number[];
  rows: number;
  teachers: number[];
  epsilons: number[];
  delta: number;
  attackRows: number;
  regimes: string[];
  memoriseEpochs: number;
  out: string;
}

function parseFlags(argv: string[]): Flags {
  const get = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const list = (value: string) => value.split(',').map(Number);
  const seedList = get('seed-list');
  const seeds = seedList
    ? list(seedList)
    : Array.from({ length: Number(get('seeds') ?? 3) }, (_, i) => i);
  return {
    seeds,
    rows: Number(get('rows') ?? 500),
    teachers: list(get('teachers') ?? '1,20'),
    epsilons: list(get('epsilons') ?? '0.5,1,2,4,8,32,128,512,2048,8192'),
    delta: Number(get('delta') ?? 1e-5),
    attackRows: Number(get('attack-rows') ?? 1000),
    regimes: (get('regimes') ?? 'early-stopped,memorising').split(','),
    memoriseEpochs: Number(get('memorise-epochs') ?? 60),
    out: get('out') ?? 'out/report',
  };
}

const TEMPERATURE = 4;
const STUDENT_HIDDEN = [16];

function pickRows(x: Float32Array, dim: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * dim);
  for (let i = 0; i < rows.length; i++)
    out.set(x.subarray(rows[i] * dim, (rows[i] + 1) * dim), i * dim);
  return out;
}
function pickLabels(y: Uint8Array, rows: ArrayLike<number>): Uint8Array {
  return Uint8Array.from(rows as ArrayLike<number>, (r) => y[r]);
}
function sample(rows: Uint32Array, k: number, seed: number): Uint32Array {
  const copy = rows.slice();
  createRng(seed).shuffle(copy);
  return copy.subarray(0, Math.min(k, copy.length)).slice().sort();
}

/** One measured point of the curve. */
interface Point {
  seed: number;
  regime: string;
  policy: string;
  /** Target ε of the release (null: no noise). */
  epsilon: number | null;
  sigma: number | null;
  studentAuc: number;
  /** Attack through query-mode answers under the same policy and ε. */
  queryAdvantage: number;
  queryAuc: number;
  /** Attack through the student distilled from the released transfer states. */
  studentAdvantage: number;
  studentAttackAuc: number;
}

async function runSeed(
  engine: Engine,
  flags: Flags,
  seed: number,
  log: ReturnType<typeof createLogger>,
) {
  const schema = getDatasetSchema('lending_club');
  const data = readLabelledRows('data/lending_club.csv', schema);
  const parts = splitStratified(
    data.labels,
    { hub: 0.5, transfer: 0.2, test: 0.2, bank: 0.05 },
    seed,
  );
  const spec = fitPreprocessor(
    Array.from(parts.transfer, (i) => data.rows[i]),
    schema,
  );
  const dim = featureDim(spec);
  const x = encodeRows(spec, data.rows);
  const y = data.labels;

  const hubRows = parts.hub;
  const hubSplit = splitStratified(pickLabels(y, hubRows), { train: 0.85, validation: 0.15 }, seed);
  const trainRows = Array.from(hubSplit.train, (i) => hubRows[i]);
  const valRows = Array.from(hubSplit.validation, (i) => hubRows[i]);
  const transferAll = parts.transfer;
  const released = sample(transferAll, flags.rows, deriveSeed(seed, 'row-cap'));
  const R = released.length;
  const releasedX = pickRows(x, dim, released);
  const testX = pickRows(x, dim, parts.test);
  const testY = pickLabels(y, parts.test);
  const own = { x: pickRows(x, dim, parts.bank), y: pickLabels(y, parts.bank) };

  // Attack candidates: hub training rows (members) and test rows (never seen by the hub).
  const K = Math.min(flags.attackRows, trainRows.length, parts.test.length);
  const memberRows = sample(Uint32Array.from(trainRows), K, deriveSeed(seed, 'members'));
  const nonMemberRows = sample(parts.test, K, deriveSeed(seed, 'non-members'));
  const candidates = Uint32Array.from([...memberRows, ...nonMemberRows]);
  const candidateX = pickRows(x, dim, candidates);
  const candidateY = pickLabels(y, candidates);
  const attack = (probabilities: Float32Array) => {
    const scores = trueLabelConfidence(probabilities, 2, candidateY);
    return thresholdAttack(scores.subarray(0, K), scores.subarray(K));
  };

  const ownOnly = await distilStudent(
    engine,
    { dim, own, releasedX, testX, testY, candidateX, seed, attack },
    null,
  );
  const regimes = [];
  for (const regime of flags.regimes) {
    regimes.push(
      await runRegime(engine, flags, log, regime, {
        seed,
        dim,
        x,
        y,
        hubRows,
        trainRows,
        valRows,
        own,
        releasedX,
        testX,
        testY,
        candidateX,
        candidateY,
        attack,
      }),
    );
  }

  // Chance level of the attack on samples of this size: the attack on distinct scores with
  // membership labels shuffled.
  const chance = chanceAdvantage(
    Float64Array.from({ length: K }, (_, i) => i),
    Float64Array.from({ length: K }, (_, i) => i + 0.5),
    40,
    seed,
  );
  return {
    seed,
    counts: {
      hub: hubRows.length,
      teacherTrain: trainRows.length,
      transfer: parts.transfer.length,
      released: releasedX.length / dim,
      test: parts.test.length,
      bank: parts.bank.length,
      attackPerSide: K,
    },
    ownOnly: { auc: ownOnly.auc, studentParams: ownOnly.params },
    chanceAdvantage: chance,
    regimes,
  };
}

type Attack = (probabilities: Float32Array) => ReturnType<typeof thresholdAttack>;

interface StudentInputs {
  dim: number;
  own: { x: Float32Array; y: Uint8Array };
  releasedX: Float32Array;
  testX: Float32Array;
  testY: Uint8Array;
  candidateX: Float32Array;
  seed: number;
  attack: Attack;
}

/** Distils the bank's student from released states (or none) and measures it. */
async function distilStudent(
  engine: Engine,
  inputs: StudentInputs,
  released: { probabilities?: Float32Array; logits?: Float32Array } | null,
) {
  const { dim, own, releasedX, testX, testY, candidateX, seed } = inputs;
  const logits =
    released?.logits ??
    (released?.probabilities
      ? probabilitiesToLogits(released.probabilities, 2, TEMPERATURE)
      : undefined);
  const student = await trainStudent(engine, {
    inputDim: dim,
    hidden: STUDENT_HIDDEN,
    own,
    teacher: logits ? { x: releasedX, logits, temperature: TEMPERATURE } : undefined,
    seed: deriveSeed(seed, 'student'),
  });
  const auc = rocAuc(predictPositive(engine, student.model, testX, testY.length), testY);
  const n = candidateX.length / dim;
  const onCandidates = softmaxRows(predictLogits(engine, student.model, candidateX, n), 2);
  const params = countParams(student.model);
  student.model.dispose();
  return { auc, attack: inputs.attack(onCandidates), params };
}

interface RegimeInputs extends StudentInputs {
  x: Float32Array;
  y: Uint8Array;
  hubRows: Uint32Array;
  trainRows: number[];
  valRows: number[];
  candidateY: Uint8Array;
}

/**
 * One teacher regime: `early-stopped` trains as the hub publishes (dropout 0.3, early
 * stopping on held-out rows); `memorising` trains without dropout for a fixed number of
 * epochs, keeping the epoch that fits the training rows best, so that the teachers leak
 * membership and the attack has something to find.
 */
async function runRegime(
  engine: Engine,
  flags: Flags,
  log: ReturnType<typeof createLogger>,
  regime: string,
  inputs: RegimeInputs,
) {
  const { seed, dim, x, y, hubRows, trainRows, valRows, releasedX, testX, testY } = inputs;
  const { candidateX, attack } = inputs;
  const memorising = regime === 'memorising';
  const R = releasedX.length / dim;
  const nCandidates = candidateX.length / dim;
  const started = performance.now();
  const trainX = pickRows(x, dim, trainRows);
  const trainY = pickLabels(y, trainRows);
  const teacher = await trainTeacher(engine, {
    x: trainX,
    y: trainY,
    valX: memorising ? trainX : pickRows(x, dim, valRows),
    valY: memorising ? trainY : pickLabels(y, valRows),
    inputDim: dim,
    seed,
    ...(memorising
      ? { dropout: 0, epochs: flags.memoriseEpochs, patience: flags.memoriseEpochs }
      : {}),
  });
  const teacherAuc = rocAuc(predictPositive(engine, teacher.model, testX, testY.length), testY);
  const teacherSeconds = (performance.now() - started) / 1000;
  log.info({ seed, regime, teacherAuc, teacherSeconds }, 'teacher trained');

  const points: Point[] = [];
  const record = async (
    policy: string,
    epsilon: number | null,
    sigma: number | null,
    releasedStates: { probabilities?: Float32Array; logits?: Float32Array },
    queryAnswers: Float32Array,
  ) => {
    const student = await distilStudent(engine, inputs, releasedStates);
    const query = attack(queryAnswers);
    points.push({
      seed,
      regime,
      policy,
      epsilon,
      sigma,
      studentAuc: student.auc,
      queryAdvantage: query.advantage,
      queryAuc: query.auc,
      studentAdvantage: student.attack.advantage,
      studentAttackAuc: student.attack.auc,
    });
    log.info(
      { seed, regime, policy, epsilon, sigma, auc: student.auc, queryAdvantage: query.advantage },
      'point',
    );
  };

  // Policies without DP, on the single teacher. Query answers are probabilities at T = 1.
  const teacherLogits = predictLogits(engine, teacher.model, releasedX, R);
  const teacherQuery = softmaxRows(
    predictLogits(engine, teacher.model, candidateX, nCandidates),
    2,
  );
  await record('logits', null, null, { logits: teacherLogits }, teacherQuery);
  const probsT = softmaxRows(teacherLogits, 2, TEMPERATURE);
  await record(
    'topk',
    null,
    null,
    { probabilities: topKProbabilities(probsT, 2, 1) },
    topKProbabilities(teacherQuery, 2, 1),
  );
  await record(
    'label',
    null,
    null,
    { probabilities: labelOnly(teacherLogits, 2) },
    labelOnly(teacherQuery, 2),
  );

  // DP policies on each ensemble: a transfer release of R rows, and a query-mode release of
  // the attack candidates, each calibrated on its own to the target ε.
  const ensembles = [];
  for (const m of flags.teachers) {
    const ensembleStarted = performance.now();
    const ensemble = await trainTeacherEnsemble(engine, {
      x: pickRows(x, dim, hubRows),
      y: pickLabels(y, hubRows),
      inputDim: dim,
      teachers: m,
      // One teacher on all rows is the hub's teacher; many on small shards are smaller.
      hidden: m === 1 ? [256, 256] : [64, 64],
      seed,
      ...(memorising
        ? {
            dropout: 0,
            epochs: flags.memoriseEpochs,
            patience: flags.memoriseEpochs,
            stopOn: 'training' as const,
          }
        : {}),
    });
    const ensembleSeconds = (performance.now() - ensembleStarted) / 1000;
    const averageTest = noisyEnsembleAverage({
      outputs: ensembleProbabilities(engine, ensemble.members, testX, testY.length),
      classes: 2,
      sigma: 0,
      noise: seededNoise(0),
    });
    const ensembleAuc = rocAuc(
      Float32Array.from({ length: testY.length }, (_, r) => averageTest[2 * r + 1]),
      testY,
    );
    log.info({ seed, regime, teachers: m, ensembleAuc, ensembleSeconds }, 'ensemble trained');
    const ensembleReleased = ensembleProbabilities(engine, ensemble.members, releasedX, R);
    const ensembleQuery = ensembleProbabilities(engine, ensemble.members, candidateX, nCandidates);
    for (const epsilon of [...flags.epsilons, null]) {
      for (const mechanism of ['gaussian', 'pate'] as const) {
        const calibrate = (rows: number) =>
          epsilon === null
            ? 0
            : calibrateEnsembleRelease({
                mechanism,
                epsilon,
                delta: flags.delta,
                rows,
                teachers: m,
              }).sigma;
        const sigmaRelease = calibrate(R);
        const sigmaQuery = calibrate(nCandidates);
        const noise = seededNoise(deriveSeed(seed, `${regime}-${mechanism}-${m}-${epsilon}`));
        const release = (outputs: Float32Array[], sigma: number) =>
          mechanism === 'gaussian'
            ? projectRowsToSimplex(noisyEnsembleAverage({ outputs, classes: 2, sigma, noise }), 2)
            : votesToProbabilities(gnmaxRelease({ outputs, classes: 2, sigma, noise }), 2);
        await record(
          `${mechanism === 'gaussian' ? 'dp-gaussian' : 'pate'} m=${m}`,
          epsilon,
          sigmaRelease,
          { probabilities: release(ensembleReleased, sigmaRelease) },
          release(ensembleQuery, sigmaQuery),
        );
      }
    }
    ensembles.push({
      teachers: m,
      auc: ensembleAuc,
      seconds: ensembleSeconds,
      priorOnly: ensemble.members.filter((member) => !member.model).length,
      stoppedOnTrainingRows: ensemble.members.filter((member) => member.validatedOnTrain).length,
    });
    disposeEnsemble(ensemble.members);
  }
  const result = {
    regime,
    teacher: {
      auc: teacherAuc,
      params: countParams(teacher.model),
      epochs: teacher.epochsRun,
      seconds: teacherSeconds,
    },
    ensembles,
    points,
  };
  teacher.model.dispose();
  return result;
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}
function sd(values: number[]): number {
  const m = mean(values);
  return Math.sqrt(values.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(1, values.length - 1));
}

async function writeChart(path: string, summary: SummaryRow[], regimeFacts: RegimeFacts[]) {
  const panel = (
    regime: string,
    field: 'studentAuc' | 'queryAdvantage',
    title: string,
    extraRules: { label: string; value: number }[],
  ) => {
    const rows = summary.filter((row) => row.regime === regime);
    return {
      width: 300,
      height: 240,
      title,
      layer: [
        {
          data: { values: rows.filter((row) => row.epsilon !== null) },
          mark: { type: 'line', point: true },
          encoding: {
            x: {
              field: 'epsilon',
              type: 'quantitative',
              scale: { type: 'log' },
              title: 'target ε per release (log)',
            },
            y: {
              field,
              type: 'quantitative',
              scale: { zero: false },
              title: field === 'studentAuc' ? 'student test AUC' : 'MIA advantage (TPR − FPR)',
            },
            color: {
              field: 'policy',
              type: 'nominal',
              title: 'DP policy',
              legend: { labelLimit: 260 },
            },
          },
        },
        {
          data: {
            values: [
              ...extraRules,
              ...rows
                .filter((row) => row.epsilon === null)
                .map((row) => ({ label: `${row.policy}, no noise`, value: row[field] })),
            ],
          },
          mark: { type: 'rule', strokeDash: [4, 3] },
          encoding: {
            y: { field: 'value', type: 'quantitative' },
            color: {
              field: 'label',
              type: 'nominal',
              title: 'without noise',
              legend: { labelLimit: 260 },
            },
          },
        },
      ],
      resolve: { scale: { color: 'independent' } },
    };
  };
  const panels = regimeFacts.flatMap((facts) => [
    panel(facts.regime, 'studentAuc', `Student AUC, ${facts.regime} teachers`, [
      { label: 'teacher', value: facts.teacherAuc },
      { label: 'own rows only', value: facts.ownOnlyAuc },
    ]),
    panel(facts.regime, 'queryAdvantage', `MIA via query answers, ${facts.regime}`, [
      { label: 'chance (p95)', value: facts.chance },
    ]),
  ]);
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Privacy-utility on lending_club, mean over seeds (dashed: releases without noise)',
    concat: panels,
    columns: 2,
    resolve: { scale: { color: 'independent' } },
  };
  const compiled = vegaLite.compile(spec as unknown as vegaLite.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  writeFileSync(path, await view.toSVG());
  view.finalize();
}

interface SummaryRow {
  regime: string;
  policy: string;
  epsilon: number | null;
  studentAuc: number;
  studentAucSd: number;
  queryAdvantage: number;
  queryAdvantageSd: number;
  queryAuc: number;
  studentAdvantage: number;
  studentAttackAuc: number;
  sigma: number | null;
}

interface RegimeFacts {
  regime: string;
  teacherAuc: number;
  /** Test AUC of each ensemble's plain average, by number of teachers. */
  ensembleAuc: Record<string, number>;
  ownOnlyAuc: number;
  chance: number;
  /** Per DP mechanism: is the query-mode advantage at the smallest ε below the no-noise one? */
  advantageLowerAtSmallestEpsilon: Record<string, boolean>;
}

async function main() {
  const argv = process.argv.slice(2);
  // `--chart-only <privacy.json>`: redraw the picture of an earlier run, measuring nothing.
  const chartOnly = argv.indexOf('--chart-only');
  if (chartOnly >= 0) {
    const path = argv[chartOnly + 1];
    const earlier = JSON.parse(readFileSync(path, 'utf8')) as {
      summary: SummaryRow[];
      regimes: RegimeFacts[];
    };
    const svgPath = join(dirname(path), 'privacy.svg');
    await writeChart(svgPath, earlier.summary, earlier.regimes);
    console.log(`wrote ${svgPath}`);
    return;
  }
  const flags = parseFlags(argv);
  const log = createLogger({ service: 'report-privacy', level: process.env.LOG_LEVEL ?? 'warn' });
  const engine = await loadEngine({ logger: log });
  const started = performance.now();
  const seeds: Awaited<ReturnType<typeof runSeed>>[] = [];
  for (const seed of flags.seeds) seeds.push(await runSeed(engine, flags, seed, log));

  const keys = new Map<string, Point[]>();
  for (const point of seeds.flatMap((s) => s.regimes.flatMap((r) => r.points))) {
    const key = `${point.regime}|${point.policy}|${point.epsilon}`;
    keys.set(key, [...(keys.get(key) ?? []), point]);
  }
  const summary: SummaryRow[] = [...keys.values()].map((points) => ({
    regime: points[0].regime,
    policy: points[0].policy,
    epsilon: points[0].epsilon,
    sigma: points[0].sigma === null ? null : mean(points.map((p) => p.sigma!)),
    studentAuc: mean(points.map((p) => p.studentAuc)),
    studentAucSd: sd(points.map((p) => p.studentAuc)),
    queryAdvantage: mean(points.map((p) => p.queryAdvantage)),
    queryAdvantageSd: sd(points.map((p) => p.queryAdvantage)),
    queryAuc: mean(points.map((p) => p.queryAuc)),
    studentAdvantage: mean(points.map((p) => p.studentAdvantage)),
    studentAttackAuc: mean(points.map((p) => p.studentAttackAuc)),
  }));
  const chance = mean(seeds.map((s) => s.chanceAdvantage.p95));
  const ownOnlyAuc = mean(seeds.map((s) => s.ownOnly.auc));
  const regimeFacts: RegimeFacts[] = flags.regimes.map((regime) => {
    const of = (s: (typeof seeds)[number]) => s.regimes.find((r) => r.regime === regime)!;
    // With DP on, is the advantage at the smallest ε below the one without noise? Stated
    // whatever the answer.
    const lower: Record<string, boolean> = {};
    const dpPolicies = new Set(
      summary.filter((row) => row.regime === regime && row.epsilon !== null).map((r) => r.policy),
    );
    for (const policy of dpPolicies) {
      const rows = summary
        .filter((row) => row.regime === regime && row.policy === policy)
        .sort((a, b) => (a.epsilon ?? Infinity) - (b.epsilon ?? Infinity));
      lower[policy] = rows[0].queryAdvantage < rows[rows.length - 1].queryAdvantage;
    }
    return {
      regime,
      teacherAuc: mean(seeds.map((s) => of(s).teacher.auc)),
      ensembleAuc: Object.fromEntries(
        flags.teachers.map((m) => [
          `m=${m}`,
          mean(seeds.map((s) => of(s).ensembles.find((e) => e.teachers === m)!.auc)),
        ]),
      ),
      ownOnlyAuc,
      chance,
      advantageLowerAtSmallestEpsilon: lower,
    };
  });

  mkdirSync(flags.out, { recursive: true });
  const report = {
    report: 'privacy',
    dataset: 'lending_club',
    engine: engine.name,
    flags,
    unitOfPrivacy:
      'one row of the hub private training data, replaced (bounded DP); dp-gaussian and pate are (epsilon, delta)-DP per release by the RDP accountant (transfer release and query release each at the target epsilon); logits, topk and label carry no DP guarantee',
    temperature: TEMPERATURE,
    studentHidden: STUDENT_HIDDEN,
    ownOnlyAuc,
    attackChanceP95: chance,
    regimes: regimeFacts,
    summary,
    seeds,
    seconds: (performance.now() - started) / 1000,
  };
  const jsonPath = join(flags.out, 'privacy.json');
  writeFileSync(jsonPath, JSON.stringify(report, null, 2));
  const svgPath = join(flags.out, 'privacy.svg');
  await writeChart(svgPath, summary, regimeFacts);

  const fmt = (v: number | null, d = 3) => (v === null ? '-' : v.toFixed(d));
  console.log(
    `\nprivacy-utility, lending_club, seeds ${flags.seeds.join(',')}, engine ${engine.name}, ${flags.rows} released rows, teachers ${flags.teachers.join(',')}, delta ${flags.delta}`,
  );
  console.log(`student on own rows only ${fmt(ownOnlyAuc)}, attack chance p95 ${fmt(chance)}`);
  for (const facts of regimeFacts) {
    console.log(
      `\n${facts.regime}: teacher AUC ${fmt(facts.teacherAuc)}, ensembles without noise ${JSON.stringify(facts.ensembleAuc, (_, v) => (typeof v === 'number' ? Number(v.toFixed(3)) : v))}`,
    );
    console.log(
      'policy                eps     sigma   student AUC (sd)   MIA adv query (sd)  query AUC  MIA adv student',
    );
    for (const row of summary.filter((r) => r.regime === facts.regime)) {
      console.log(
        `${row.policy.padEnd(17)} ${fmt(row.epsilon, 1).padStart(6)} ${fmt(row.sigma, 3).padStart(9)}   ${fmt(row.studentAuc)} (${fmt(row.studentAucSd)})      ${fmt(row.queryAdvantage)} (${fmt(row.queryAdvantageSd)})       ${fmt(row.queryAuc)}      ${fmt(row.studentAdvantage)}`,
      );
    }
    console.log(
      `query-mode advantage at the smallest epsilon below the one without noise: ${JSON.stringify(facts.advantageLowerAtSmallestEpsilon)}`,
    );
  }
  console.log(`\nwrote ${jsonPath} and ${svgPath} in ${report.seconds.toFixed(0)} s`);
}

await main();
