import { z } from 'zod';
import { fail } from '../errors.js';

/**
 * The release policy of a grant, stored in the grant's `policy` JSON column. Every field
 * is optional; `{}` is the plain grant (full logits, no cap, no query mode, no DP).
 *
 * - `release`: what a row's answer is. `'logits'` the teacher's logits; `'topk'` the `k`
 *   largest probabilities (the rest spread evenly); `'label'` the argmax only, one-hot.
 * - `temperatureFloor`: probabilities are never released at a lower temperature.
 * - `rowCap` and `period`: at most `rowCap` rows per period ('hour', 'day', 'week', 'month'
 *   or 'total') through query mode under this grant.
 * - `queryMode`: whether the participant may send its own rows (rpc Query).
 * - `dp`: answers come from a teacher ensemble on disjoint shards of the hub's rows with
 *   Gaussian noise calibrated to (`epsilon`, `delta`) per call with respect to one private
 *   row: `'gaussian'` adds it to the average of the teachers' probability vectors (each
 *   L2-clipped to `clip`), `'pate'` to their vote counts (GNMax). `release` then applies to
 *   the noisy probabilities ('logits' is refused: noisy logits have no bounded sensitivity).
 * - `budget`: the participant's total (ε, δ) over every DP release, composed by the RDP
 *   accountant; a call that would exceed it is refused.
 */
export const releasePolicySchema = z
  .object({
    release: z.enum(['logits', 'topk', 'label']).default('logits'),
    k: z.number().int().min(1).optional(),
    temperatureFloor: z.number().positive().finite().optional(),
    rowCap: z.number().int().positive().optional(),
    period: z.enum(['hour', 'day', 'week', 'month', 'total']).default('day'),
    queryMode: z.boolean().default(false),
    dp: z
      .object({
        mechanism: z.enum(['gaussian', 'pate']),
        epsilon: z.number().positive().finite(),
        delta: z.number().gt(0).lt(1),
        clip: z.number().positive().finite().default(1),
        teachers: z.number().int().min(1).max(1000).default(20),
      })
      .strict()
      .optional(),
    budget: z
      .object({ epsilon: z.number().positive().finite(), delta: z.number().gt(0).lt(1) })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((policy, ctx) => {
    const issue = (path: string, message: string) =>
      ctx.addIssue({ code: 'custom', path: [path], message });
    if (policy.release === 'topk' && policy.k === undefined) {
      issue('k', 'release "topk" needs k, the number of probabilities kept per row');
    }
    if (policy.release !== 'topk' && policy.k !== undefined) {
      issue('k', 'k is only meaningful with release "topk"');
    }
    if (policy.dp && policy.release === 'logits') {
      issue(
        'release',
        'dp releases noisy probabilities, not logits: use release "topk" (k = number of classes for all of them) or "label"',
      );
    }
    if (policy.release === 'logits' && !policy.dp && policy.temperatureFloor !== undefined) {
      issue(
        'temperatureFloor',
        'a temperature floor applies to probabilities; release "logits" sends logits',
      );
    }
    if (policy.dp && !policy.budget) {
      issue('budget', 'dp needs a budget: the total (epsilon, delta) the participant may spend');
    }
    if (policy.budget && !policy.dp) {
      issue('budget', 'a budget needs dp: without noise a release has no finite epsilon');
    }
    if (policy.dp && policy.budget && policy.dp.delta > policy.budget.delta) {
      issue('dp.delta', 'dp.delta of one release cannot exceed budget.delta');
    }
    if (policy.dp && policy.budget && policy.dp.epsilon > policy.budget.epsilon) {
      issue('dp.epsilon', 'dp.epsilon of one release exceeds the whole budget.epsilon');
    }
  });

/** A validated release policy, defaults filled in. */
export type ReleasePolicy = z.infer<typeof releasePolicySchema>;

/**
 * Validates a grant's policy JSON and fills in defaults.
 *
 * @throws PRIVACY_POLICY_INVALID naming the first bad field, e.g.
 *   "invalid release policy: dp.epsilon: Too small: expected number to be >0".
 */
export function parseReleasePolicy(json: unknown): ReleasePolicy {
  const result = releasePolicySchema.safeParse(json ?? {});
  if (result.success) return result.data;
  const detail = result.error.issues
    .map((issue) => `${issue.path.length ? issue.path.join('.') : 'policy'}: ${issue.message}`)
    .join('; ');
  throw fail('PRIVACY_POLICY_INVALID', { detail });
}

/** Start of the row-cap period that contains `now` (UTC); the epoch for 'total'. */
export function periodStart(period: ReleasePolicy['period'], now: Date): Date {
  const d = new Date(now.getTime());
  switch (period) {
    case 'hour':
      d.setUTCMinutes(0, 0, 0);
      return d;
    case 'day':
      d.setUTCHours(0, 0, 0, 0);
      return d;
    case 'week': {
      // Weeks start on Monday (ISO 8601).
      d.setUTCHours(0, 0, 0, 0);
      d.setUTCDate(d.getUTCDate() - ((d.getUTCDay() + 6) % 7));
      return d;
    }
    case 'month':
      return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1));
    case 'total':
      return new Date(0);
  }
}
