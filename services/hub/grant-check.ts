import { fail } from '../shared/errors.js';
import type { Grant } from '../registry/grants.js';
import { ALL_LAYERS } from '../registry/grants.js';
import { parseReleasePolicy } from '../shared/privacy/policy.js';

/** A tensor a call would send: its manifest name, kind and (for `hidden`) layer. */
export interface RequestedTensor {
  name: string;
  kind: string;
  layer?: string;
}

/** What {@link checkAccess} decides on. */
export interface AccessQuestion {
  /** Who asks, for the refusal's message; default "the participant". */
  participant?: string;
  /** Active, unexpired grants of the participant on `stream` (see findGrants). */
  grants: Pick<
    Grant,
    'id' | 'kinds' | 'layers' | 'fromSequence' | 'toSequence' | 'streamName' | 'policy'
  >[];
  stream: string;
  /** The version's sequence; absent for a subscription, which needs only the stream. */
  sequence?: number;
  /** Tensors asked for; empty for a subscription or a manifest. */
  tensors: RequestedTensor[];
}

/** True when `grant` covers `sequence` of its stream. */
export function grantCoversSequence(
  grant: Pick<Grant, 'fromSequence' | 'toSequence'>,
  sequence: number,
): boolean {
  return (
    sequence >= grant.fromSequence && (grant.toSequence == null || sequence <= grant.toSequence)
  );
}

/**
 * Whether a grant's release policy lets its holder download published versions. A version
 * carries the teacher's full states for every transfer row, so a grant whose policy limits
 * what a row reveals (top-k, label only, a temperature floor, differential privacy) or how
 * many rows are released (a row cap) is honoured only through query mode, where the hub
 * applies the policy to each answer. A policy that does not parse is treated as limiting:
 * an unreadable limit must not open the full states.
 */
export function grantReleasesFullStates(grant: Pick<Grant, 'policy'>): boolean {
  let policy;
  try {
    policy = parseReleasePolicy(grant.policy);
  } catch {
    return false;
  }
  return (
    policy.release === 'logits' &&
    policy.dp === undefined &&
    policy.temperatureFloor === undefined &&
    policy.rowCap === undefined
  );
}

/** The refusal of a download under grants whose release policies all limit the states. */
function queryModeOnly(participant: string, stream: string, sequence: number | undefined) {
  return fail('GRANT_DENIED', {
    participant,
    what:
      `the full states of version ${sequence} of stream "${stream}": the grant's release ` +
      'policy limits what is released, so it answers through query mode only',
  });
}

function grantCoversTensor(
  grant: Pick<Grant, 'kinds' | 'layers' | 'policy'>,
  tensor: RequestedTensor,
): boolean {
  if (!grant.kinds.includes(tensor.kind)) return false;
  if (!grantReleasesFullStates(grant)) return false;
  if (tensor.kind !== 'hidden') return true;
  return (
    grant.layers.includes(ALL_LAYERS) ||
    (tensor.layer !== undefined && grant.layers.includes(tensor.layer))
  );
}

/**
 * The grant that allows a call: one grant must cover the stream, the version's sequence and
 * every tensor asked for (grants are not combined, so each reads on its own in the log).
 *
 * @throws GRANT_DENIED naming what no grant covers (gRPC PERMISSION_DENIED)
 */
export function checkAccess(question: AccessQuestion) {
  const { stream, sequence, tensors } = question;
  const participant = question.participant ?? 'the participant';
  const onStream = question.grants.filter((g) => g.streamName === stream);
  if (onStream.length === 0)
    throw fail('GRANT_DENIED', { participant, what: `stream "${stream}"` });
  const inRange =
    sequence === undefined ? onStream : onStream.filter((g) => grantCoversSequence(g, sequence));
  if (inRange.length === 0) {
    throw fail('GRANT_DENIED', { participant, what: `version ${sequence} of stream "${stream}"` });
  }
  const allowing = inRange.find((g) => tensors.every((t) => grantCoversTensor(g, t)));
  if (allowing) return allowing;
  if (tensors.length > 0 && inRange.every((g) => !grantReleasesFullStates(g))) {
    throw queryModeOnly(participant, stream, sequence);
  }
  const uncovered = tensors.find((t) => !inRange.some((g) => grantCoversTensor(g, t)));
  const what = uncovered
    ? uncovered.kind === 'hidden'
      ? `hidden layer "${uncovered.layer ?? '?'}" (tensor "${uncovered.name}")`
      : `${uncovered.kind} (tensor "${uncovered.name}")`
    : `this combination of tensors in one grant`;
  throw fail('GRANT_DENIED', {
    participant,
    what: `${what} of version ${sequence} of stream "${stream}"`,
  });
}

/**
 * What a download that names no tensors delivers: the tensors of the version that one grant
 * covering `sequence` allows (the grant allowing the most of them).
 *
 * @throws GRANT_DENIED when no grant covers the version or none of its tensors
 */
export function grantedTensors(question: AccessQuestion): RequestedTensor[] {
  const { stream, sequence } = question;
  const participant = question.participant ?? 'the participant';
  const grant = checkAccess({ ...question, tensors: [] });
  const candidates = question.grants.filter(
    (g) => g.streamName === stream && (sequence === undefined || grantCoversSequence(g, sequence)),
  );
  let best: RequestedTensor[] = [];
  for (const g of candidates.length > 0 ? candidates : [grant]) {
    const allowed = question.tensors.filter((t) => grantCoversTensor(g, t));
    if (allowed.length > best.length) best = allowed;
  }
  if (best.length === 0 && question.tensors.length > 0) {
    if (candidates.length > 0 && candidates.every((g) => !grantReleasesFullStates(g))) {
      throw queryModeOnly(participant, stream, sequence);
    }
    throw fail('GRANT_DENIED', {
      participant,
      what: `any tensor of version ${sequence} of stream "${stream}"`,
    });
  }
  return best;
}
