import type { LayersModel } from '@tensorflow/tfjs';
import type { PrismaClient } from '../generated/prisma/client.js';
import { fail } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Engine } from '../shared/ml/engine.js';
import { predictLogits } from '../shared/ml/predict.js';
import {
  calibrateEnsembleRelease,
  gnmaxRelease,
  noisyEnsembleAverage,
  votesToProbabilities,
} from '../shared/privacy/aggregate.js';
import {
  disposeEnsemble,
  ensembleProbabilities,
  trainTeacherEnsemble,
  type EnsembleMember,
} from '../shared/privacy/ensemble.js';
import { secureNoise, type NoiseSource } from '../shared/privacy/noise.js';
import { parseReleasePolicy, type ReleasePolicy } from '../shared/privacy/policy.js';
import {
  effectiveTemperature,
  labelOnly,
  projectRowsToSimplex,
  softmaxRows,
  topKProbabilities,
} from '../shared/privacy/release.js';
import type { QueryRequest__Output } from '../generated/proto/distillery/v1/QueryRequest.js';
import type { QueryResponse } from '../generated/proto/distillery/v1/QueryResponse.js';
import { MAX_MESSAGE_BYTES } from '../shared/transport/limits.js';
import { appendAccess } from '../registry/access-log.js';
import { findGrants, type Grant } from '../registry/grants.js';
import { chargeRelease } from '../registry/privacy-ledger.js';
import type { HubData } from './hub-data.js';

/** Classes of the hub's teachers (binary credit-risk models). */
const CLASSES = 2;

/** Rows one query may carry: its inputs and its answer both fit one gRPC message. */
export function maxQueryRows(features: number): number {
  return Math.max(1, Math.floor((MAX_MESSAGE_BYTES - 64 * 1024) / (4 * Math.max(features, 1))));
}

/** What query mode needs from the hub: its teacher and, for DP, an ensemble. */
export interface QueryBackend {
  /** Feature width of encoded rows. */
  inputDim: number;
  /** The current teacher's logits (`n × 2`); fails when the hub has no teacher yet. */
  teacherLogits(x: Float32Array, n: number): Float32Array;
  /** Each ensemble member's probabilities at `temperature` (trained on first use). */
  ensembleProbabilities(
    teachers: number,
    x: Float32Array,
    n: number,
    temperature: number,
  ): Promise<Float32Array[]>;
  dispose(): void;
}

/**
 * The hub's query backend: the publisher's current teacher, and teacher ensembles on
 * disjoint shards of the hub's private rows (every private row, training and validation
 * alike), trained the first time a DP grant asks for m teachers and kept for the hub's life.
 */
export function createHubQueryBackend(options: {
  engine: Engine;
  data: HubData;
  teacher: () => LayersModel | undefined;
  seed: number;
  logger: Logger;
}): QueryBackend {
  const { engine, data, logger } = options;
  const ensembles = new Map<number, Promise<EnsembleMember[]>>();
  const trained: EnsembleMember[][] = [];
  const allRows = () => {
    const x = new Float32Array(data.train.x.length + data.validation.x.length);
    x.set(data.train.x);
    x.set(data.validation.x, data.train.x.length);
    const y = new Uint8Array(data.train.y.length + data.validation.y.length);
    y.set(data.train.y);
    y.set(data.validation.y, data.train.y.length);
    return { x, y };
  };
  return {
    inputDim: data.inputDim,
    teacherLogits(x, n) {
      const model = options.teacher();
      if (!model) {
        throw fail('REQUEST_INVALID', { detail: 'the hub has not trained its teacher yet' });
      }
      return predictLogits(engine, model, x, n);
    },
    async ensembleProbabilities(teachers, x, n, temperature) {
      let members = ensembles.get(teachers);
      if (!members) {
        const { x: rowsX, y: rowsY } = allRows();
        members = trainTeacherEnsemble(engine, {
          x: rowsX,
          y: rowsY,
          inputDim: data.inputDim,
          teachers,
          seed: options.seed,
          logger,
        }).then((result) => {
          trained.push(result.members);
          return result.members;
        });
        // A failed training is not cached: the next call tries again.
        members.catch(() => ensembles.delete(teachers));
        ensembles.set(teachers, members);
      }
      return ensembleProbabilities(engine, await members, x, n, temperature);
    },
    dispose() {
      for (const members of trained) disposeEnsemble(members);
    },
  };
}

/** The grant a query is served under, with its validated policy. */
function queryGrant(
  grants: Grant[],
  participant: string,
  stream: string,
  logger: Logger,
): { grant: Grant; policy: ReleasePolicy } {
  for (const grant of grants) {
    let policy: ReleasePolicy;
    try {
      policy = parseReleasePolicy(grant.policy);
    } catch (err) {
      // A grant whose policy does not validate serves nothing, rather than something looser.
      logger.warn({ grant: grant.id, err }, 'grant policy invalid; grant not used for query');
      continue;
    }
    if (policy.queryMode) return { grant, policy };
  }
  throw fail('PRIVACY_QUERY_NOT_ALLOWED', { participant, stream });
}

function decodeInputs(request: QueryRequest__Output, inputDim: number): Float32Array {
  const { rows, features, inputs } = request;
  if (features !== inputDim) {
    throw fail('MODEL_SHAPE_MISMATCH', {
      what: 'query inputs',
      expected: `${inputDim} features per row`,
      actual: `${features}`,
    });
  }
  const limit = maxQueryRows(features);
  if (!(rows >= 1 && rows <= limit)) {
    throw fail('REQUEST_INVALID', { detail: `rows must be between 1 and ${limit}, got ${rows}` });
  }
  if (inputs.length !== rows * features * 4) {
    throw fail('MODEL_SHAPE_MISMATCH', {
      what: 'query inputs',
      expected: `${rows} × ${features} float32 values (${rows * features * 4} bytes)`,
      actual: `${inputs.length} bytes`,
    });
  }
  // Copied out of the message buffer (which need not be 4-byte aligned), little-endian.
  const view = new DataView(inputs.buffer, inputs.byteOffset, inputs.byteLength);
  const x = new Float32Array(rows * features);
  for (let i = 0; i < x.length; i++) {
    const value = view.getFloat32(4 * i, true);
    if (!Number.isFinite(value)) {
      throw fail('REQUEST_INVALID', { detail: `input value ${i} is not a finite number` });
    }
    x[i] = value;
  }
  return x;
}

function encodeValues(values: Float32Array): Buffer {
  const out = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i], 4 * i);
  return out;
}

/** Options of {@link answerQuery}. */
export interface AnswerQueryOptions {
  prisma: PrismaClient;
  backend: QueryBackend;
  /** From the verified certificate. */
  participant: string;
  peerAddress?: string;
  request: QueryRequest__Output;
  logger: Logger;
  /** Noise source; default the cryptographic one. Tests pass a seeded one. */
  noise?: NoiseSource;
}

/**
 * Answers one query: finds the participant's grant with query mode on the stream, computes
 * the teacher's states for the participant's rows under the grant's policy, charges the
 * release to the ledger (row cap, budget) and logs the decision in the same transaction,
 * and only then adds the noise and returns the answer. The rows live only in this call:
 * the ledger and the log hold their number, never their values.
 *
 * @throws PRIVACY_QUERY_NOT_ALLOWED, GRANT_DENIED, PRIVACY_ROW_CAP_EXCEEDED,
 *   PRIVACY_BUDGET_EXHAUSTED (all logged), or REQUEST_INVALID / MODEL_SHAPE_MISMATCH
 *   for a malformed request.
 */
export async function answerQuery(options: AnswerQueryOptions): Promise<QueryResponse> {
  const { prisma, backend, participant, request, logger } = options;
  const stream = request.stream;
  const resource = `stream:${stream.slice(0, 80)}`;
  const logRefusal = (err: unknown) =>
    appendAccess(prisma, {
      actor: participant,
      action: 'query',
      resource,
      outcome: 'denied',
      reason: err instanceof Error ? err.message : String(err),
      peerAddress: options.peerAddress ?? null,
      detail: { rows: request.rows },
    });

  let chosen: { grant: Grant; policy: ReleasePolicy };
  try {
    chosen = queryGrant(await findGrants(prisma, participant, stream), participant, stream, logger);
    const neededKind = chosen.policy.release === 'logits' ? 'logits' : 'probabilities';
    if (!chosen.grant.kinds.includes(neededKind)) {
      throw fail('GRANT_DENIED', {
        participant,
        what: `${neededKind} in query mode on stream "${stream}"`,
      });
    }
  } catch (err) {
    await logRefusal(err);
    throw err;
  }
  const { grant, policy } = chosen;
  const x = decodeInputs(request, backend.inputDim);
  const n = request.rows;
  const temperature = effectiveTemperature(request.temperature || 1, policy.temperatureFloor);

  // Everything but the noise is computed before the charge, so that a failure here spends
  // nothing; the noise is drawn only once the release is recorded.
  let finish: (noise: NoiseSource) => { kind: string; values: Float32Array };
  let mechanism: 'gaussian' | 'pate' | 'none' = 'none';
  let sigma = 0;
  let rdp = null;
  const parameters: Record<string, unknown> = {
    release: policy.release,
    ...(policy.k !== undefined ? { k: policy.k } : {}),
    temperature,
  };
  const shape = (probabilities: Float32Array) =>
    policy.release === 'label'
      ? { kind: 'label', values: labelOnly(probabilities, CLASSES) }
      : policy.release === 'topk'
        ? {
            kind: 'probabilities',
            values: topKProbabilities(probabilities, CLASSES, Math.min(policy.k ?? 1, CLASSES)),
          }
        : { kind: 'probabilities', values: probabilities };

  if (policy.dp) {
    const dp = policy.dp;
    const outputs = await backend.ensembleProbabilities(dp.teachers, x, n, temperature);
    const calibrated = calibrateEnsembleRelease({
      mechanism: dp.mechanism,
      epsilon: dp.epsilon,
      delta: dp.delta,
      rows: n,
      teachers: dp.teachers,
      clip: dp.clip,
    });
    mechanism = dp.mechanism;
    sigma = calibrated.sigma;
    rdp = calibrated.rdp;
    Object.assign(parameters, {
      sigma,
      sensitivity: calibrated.sensitivity,
      teachers: dp.teachers,
      clip: dp.clip,
      targetEpsilon: dp.epsilon,
      targetDelta: dp.delta,
    });
    finish = (noise) => {
      const noisy =
        dp.mechanism === 'gaussian'
          ? projectRowsToSimplex(
              noisyEnsembleAverage({ outputs, classes: CLASSES, clip: dp.clip, sigma, noise }),
              CLASSES,
            )
          : votesToProbabilities(
              gnmaxRelease({ outputs, classes: CLASSES, sigma, noise }),
              CLASSES,
            );
      return shape(noisy);
    };
  } else {
    const logits = backend.teacherLogits(x, n);
    finish = () =>
      policy.release === 'logits'
        ? { kind: 'logits', values: logits }
        : shape(softmaxRows(logits, CLASSES, temperature));
  }

  const charged = await chargeRelease(prisma, {
    participant,
    grantId: grant.id,
    stream,
    policy,
    mechanism,
    parameters,
    rows: n,
    rdp,
    action: 'query',
    resource,
    peerAddress: options.peerAddress ?? null,
  });
  const answer = finish(options.noise ?? secureNoise());
  logger.info(
    { participant, stream, rows: n, mechanism, release: charged.releaseId, spent: charged.spent },
    'query answered',
  );
  return {
    releaseId: charged.releaseId,
    rows: n,
    classes: CLASSES,
    kind: answer.kind,
    values: encodeValues(answer.values),
    temperature: answer.kind === 'logits' ? 1 : temperature,
    mechanism,
    sigma,
    epsilon: charged.epsilon,
    delta: policy.dp ? charged.delta : 0,
    epsilonSpent: charged.spent,
    epsilonRemaining: charged.remaining,
  };
}
