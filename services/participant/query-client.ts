import { fail } from '../shared/errors.js';
import type { HubClient } from './hub-client.js';

/** What the hub answered to a query, decoded. */
export interface QueryAnswer {
  /** The release's id in the hub's privacy ledger and access log. */
  releaseId: string;
  rows: number;
  classes: number;
  /** 'logits', 'probabilities' or 'label' (one-hot rows), as the grant's policy releases. */
  kind: string;
  /** Row-major `rows × classes`. */
  values: Float32Array;
  temperature: number;
  /** 'none', 'gaussian' or 'pate'. */
  mechanism: string;
  sigma: number;
  /** What this release cost, and the participant's spending and remaining budget (DP only). */
  epsilon: number;
  delta: number;
  epsilonSpent: number;
  epsilonRemaining: number;
}

/** Options of {@link queryTeacher}. */
export interface QueryTeacherOptions {
  stream: string;
  /** The participant's own rows, encoded with the version's preprocessing, row-major. */
  x: Float32Array;
  features: number;
  /** Temperature of released probabilities; the hub applies its floor. Default 1. */
  temperature?: number;
}

/**
 * Sends the participant's own unlabelled rows to the hub in one Query call and decodes the
 * teacher's states for them. Under a DP grant every call is charged to the participant's
 * budget at the grant's per-call ε, however many rows it carries, so fewer larger calls
 * spend less than many small ones.
 *
 * @throws REQUEST_INVALID when `x` is not whole rows of `features`; the hub's refusals
 *   arrive as gRPC errors (PERMISSION_DENIED without query mode, RESOURCE_EXHAUSTED when
 *   the row cap or the budget is spent).
 */
export async function queryTeacher(
  client: HubClient,
  options: QueryTeacherOptions,
): Promise<QueryAnswer> {
  const { x, features } = options;
  if (!(Number.isInteger(features) && features > 0) || x.length % features !== 0) {
    throw fail('REQUEST_INVALID', {
      detail: `${x.length} values are not whole rows of ${features} features`,
    });
  }
  const rows = x.length / features;
  const inputs = Buffer.alloc(x.length * 4);
  for (let i = 0; i < x.length; i++) inputs.writeFloatLE(x[i], 4 * i);
  const response = await client.query({
    stream: options.stream,
    rows,
    features,
    inputs,
    temperature: options.temperature ?? 1,
  });
  const bytes = response.values;
  if (bytes.length !== response.rows * response.classes * 4) {
    throw fail('REQUEST_INVALID', {
      detail: `the hub answered ${bytes.length} bytes for ${response.rows} × ${response.classes} values`,
    });
  }
  const values = new Float32Array(response.rows * response.classes);
  for (let i = 0; i < values.length; i++) values[i] = bytes.readFloatLE(4 * i);
  return {
    releaseId: response.releaseId,
    rows: response.rows,
    classes: response.classes,
    kind: response.kind,
    values,
    temperature: response.temperature,
    mechanism: response.mechanism,
    sigma: response.sigma,
    epsilon: response.epsilon,
    delta: response.delta,
    epsilonSpent: response.epsilonSpent,
    epsilonRemaining: response.epsilonRemaining,
  };
}
