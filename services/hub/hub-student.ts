import type { LayersModel } from '@tensorflow/tfjs';
import { HUB_STUDENT_ARTEFACTS } from '../participant/distiller.js';
import { registerStudent } from '../registry/students.js';
import type { ArtefactInput } from '../shared/knowledge/tensor-pack.js';
import { trainStudent } from '../shared/ml/distil.js';
import { prAuc, rocAuc } from '../shared/ml/metrics.js';
import { countParams } from '../shared/ml/mlp.js';
import { hashModelWeights, serializeModel } from '../shared/ml/model-io.js';
import { predictLogits, predictPositive } from '../shared/ml/predict.js';
import type { ArtefactContext, ArtefactHook } from './publisher.js';

/** How the hub distils the student it ships with each version. */
export interface HubStudentSettings {
  /** Hidden widths, e.g. `[16]`. */
  hidden: number[];
  seed: number;
  /** Default: the student step budget (see STUDENT_DEFAULTS). */
  epochs?: number;
  batchSize?: number;
}

/**
 * An artefact hook that has the hub distil a student itself for every version, for banks
 * that want a ready model: soft targets only (alpha = 1) on the consortium's transfer set,
 * at the version's temperature, with early stopping on the hub's validation rows. It never
 * fits the hub's private labels directly: what it learns comes from the teacher's states
 * on the transfer set, which the version publishes anyway. The student travels as the
 * artefacts `student/model.json` and `student/weights.bin`, and is recorded in the hub's
 * registry (kind `hub`, with its files). The version's id is not known yet when the hook
 * runs, so the hub's record links the student to its teacher (`teacherWeightsSha256`, as in
 * the manifest) and stream; participants record it with the version id.
 */
export function createHubStudentHook(settings: HubStudentSettings): ArtefactHook {
  return async (context: ArtefactContext): Promise<ArtefactInput[]> => {
    const { engine, data, teacher, request, logger } = context;
    const transferLogits = predictLogits(engine, teacher, data.transfer.x, data.transfer.rows);
    const trained = await trainStudent(engine, {
      inputDim: data.inputDim,
      hidden: settings.hidden,
      own: { x: new Float32Array(0), y: new Uint8Array(0) },
      teacher: {
        x: data.transfer.x,
        logits: transferLogits,
        temperature: request.temperature,
        alpha: 1,
      },
      ...(settings.epochs ? { epochs: settings.epochs } : {}),
      ...(settings.batchSize ? { batchSize: settings.batchSize } : {}),
      validation: data.validation,
      seed: settings.seed,
      logger,
    });
    const model: LayersModel = trained.model;
    try {
      const { modelJson, weights } = await serializeModel(model);
      const score = (x: Float32Array, y: Uint8Array) => {
        const p = predictPositive(engine, model, x, y.length);
        return { auc: rocAuc(p, y), prAuc: prAuc(p, y) };
      };
      const validation = score(data.validation.x, data.validation.y);
      const test = data.test ? score(data.test.x, data.test.y) : undefined;
      const params = countParams(model);
      const student = await registerStudent(context.registry.prisma, {
        owner: 'hub',
        kind: 'hub',
        architecture: {
          inputDim: data.inputDim,
          hidden: settings.hidden,
          outputs: 2,
          format: 'tfjs-layers',
        },
        params,
        metrics: {
          stream: request.stream,
          temperature: request.temperature,
          teacherWeightsSha256: hashModelWeights(teacher),
          validationAuc: validation.auc,
          validationPrAuc: validation.prAuc,
          ...(test ? { testAuc: test.auc, testPrAuc: test.prAuc } : {}),
          steps: trained.steps,
          samplesPerSecond: Math.round(trained.samplesPerSecond),
        },
        engine: engine.name,
        files: { modelJson, weights },
      });
      logger.info(
        { studentId: student.id, params, validationAuc: validation.auc, testAuc: test?.auc },
        'hub student distilled',
      );
      return [
        {
          name: HUB_STUDENT_ARTEFACTS.modelJson,
          kind: 'artefact',
          bytes: new TextEncoder().encode(modelJson),
        },
        { name: HUB_STUDENT_ARTEFACTS.weights, kind: 'artefact', bytes: weights },
      ];
    } finally {
      model.dispose();
    }
  };
}
