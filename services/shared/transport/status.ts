import { Metadata, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { fail, isDistilleryError, DistilleryError, type ErrorCode } from '../errors.js';
import type { Logger } from '../logger.js';

/**
 * Turns any error into the ServiceError a handler returns. Catalogued errors keep their
 * status and message, plus the code in `distillery-error-code` trailing metadata; any other
 * error is a fault, logged in full and reported as a bare INTERNAL so that no internal
 * detail reaches the peer (grpc-js would otherwise send the raw message as UNKNOWN).
 */
export function toServiceError(err: unknown, logger: Logger, context: object = {}): ServiceError {
  const known: DistilleryError = isDistilleryError(err) ? err : fail('INTERNAL');
  if (!isDistilleryError(err)) logger.error({ err, ...context }, 'rpc failed');
  const metadata = new Metadata();
  metadata.set('distillery-error-code', known.code);
  return Object.assign(new Error(known.message), {
    code: known.grpcStatus,
    details: known.message,
    metadata,
  }) as ServiceError;
}

/** The catalogue code a hub sent with an error, if any. */
export function errorCodeOf(err: unknown): ErrorCode | undefined {
  const metadata = (err as { metadata?: Metadata } | null)?.metadata;
  const value = metadata?.get?.('distillery-error-code')?.[0];
  return typeof value === 'string' ? (value as ErrorCode) : undefined;
}

/** True for failures worth retrying after a pause: the hub is away or restarting. */
export function isTransient(err: unknown): boolean {
  const code = (err as { code?: number } | null)?.code;
  return (
    code === GrpcStatus.UNAVAILABLE ||
    code === GrpcStatus.DEADLINE_EXCEEDED ||
    code === GrpcStatus.CANCELLED ||
    code === GrpcStatus.INTERNAL
  );
}
