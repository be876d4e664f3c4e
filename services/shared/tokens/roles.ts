import { fail } from '../errors.js';

/** Who an access token speaks for. */
export type Role = 'operator' | 'auditor' | 'participant';

/** Every {@link Role}, in a stable order. */
export const ROLES: readonly Role[] = ['operator', 'auditor', 'participant'];

/** True when `value` is one of the {@link ROLES}. */
export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/**
 * Checks that a verified token's role may perform `action`; throws TOKEN_ROLE otherwise.
 *
 * @param principal the verified token, or anything carrying its role.
 * @param allowed the roles that may perform the action.
 * @param action what is being attempted, for the message ("publish a version").
 */
export function requireRole(
  principal: { role: Role },
  allowed: readonly Role[],
  action: string,
): void {
  if (!allowed.includes(principal.role)) {
    throw fail('TOKEN_ROLE', { role: principal.role, action, needed: allowed.join(', ') });
  }
}
