import { status as GrpcStatus } from '@grpc/grpc-js';

/**
 * One entry of the error catalogue: a stable code, a message template whose `{name}`
 * placeholders are filled from the error's params, and how it maps onto HTTP and gRPC.
 */
export interface ErrorSpec {
  readonly message: string;
  readonly http: number;
  readonly grpc: GrpcStatus;
}

/**
 * Every error Distillery raises on purpose, grouped by area. Routes and RPC handlers map
 * these, and only these, to client-visible statuses; anything else is reported as an
 * internal error with a generic message and logged in full.
 */
export const ERROR_CATALOGUE = {
  // Configuration and command line
  CONFIG_INVALID: {
    message: 'invalid configuration: {detail}',
    http: 500,
    grpc: GrpcStatus.INTERNAL,
  },
  OUTPUT_DIR_NOT_EMPTY: {
    message:
      '{path} is not empty and holds no earlier {what}; choose another directory or empty it',
    http: 500,
    grpc: GrpcStatus.INTERNAL,
  },
  CONFIG_FILE_MISSING: {
    message: '{what} not found at {path}',
    http: 500,
    grpc: GrpcStatus.INTERNAL,
  },

  // Input data
  DATA_FILE_MISSING: {
    message: 'data file not found: {path}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  DATA_EMPTY_FILE: {
    message: 'data file {path} is empty',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  DATA_MISSING_COLUMN: {
    message: 'data file {path} lacks column "{column}"',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  DATA_NOT_NUMERIC: {
    message: 'data file {path}, row {row}, column "{column}": "{value}" is not a number',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  DATA_BAD_LABEL: {
    message: 'data file {path}, row {row}: label "{value}" is not one of {allowed}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  DATA_MALFORMED: {
    message: 'data file {path} cannot be parsed: {detail}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  DATA_TOO_FEW_ROWS: {
    message: '{what} has {count} rows; at least {min} are needed',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  DATA_SINGLE_CLASS: {
    message: '{what} holds only one class; both are needed to train and to measure AUC',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  DATA_UNKNOWN_DATASET: {
    message: 'unknown dataset "{name}"; known: {known}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  DATA_TRANSFER_MISMATCH: {
    message:
      'local transfer set {path} has hash {actual}, the knowledge version expects {expected}',
    http: 400,
    grpc: GrpcStatus.FAILED_PRECONDITION,
  },

  // Models and training
  MODEL_SHAPE_MISMATCH: {
    message: '{what}: expected shape {expected}, got {actual}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  MODEL_NOT_FOUND: { message: 'no model at {path}', http: 404, grpc: GrpcStatus.NOT_FOUND },
  MODEL_INVALID: {
    message: 'model at {path} is invalid: {detail}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  MODEL_LAYER_UNKNOWN: {
    message: 'model has no layer "{layer}"; it has: {known}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  MODEL_PREPROCESSOR_INVALID: {
    message: 'preprocessor spec is invalid: {detail}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  TRAINING_DIVERGED: {
    message: 'training diverged at epoch {epoch}: loss is {loss}',
    http: 500,
    grpc: GrpcStatus.INTERNAL,
  },

  // PKI and tokens
  PKI_FILE_MISSING: { message: '{what} not found at {path}', http: 500, grpc: GrpcStatus.INTERNAL },
  PKI_BAD_PEM: {
    message: '{what} at {path} is not a valid PEM {kind}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  PKI_ALREADY_EXISTS: {
    message: '{what} already exists at {path}; pass --force to replace it',
    http: 409,
    grpc: GrpcStatus.ALREADY_EXISTS,
  },
  PKI_BAD_NAME: {
    message: 'identity "{name}" must be 1-64 characters of a-z, 0-9, "-" and "."',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  PKI_IDENTITY_MISMATCH: {
    message: 'certificate {path} is issued to "{actual}", not to "{expected}"',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  PKI_BAD_CSR: {
    message: 'certificate signing request rejected: {reason}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  TOKEN_MISSING: {
    message: 'an authorization bearer token is required',
    http: 401,
    grpc: GrpcStatus.UNAUTHENTICATED,
  },
  TOKEN_INVALID: {
    message: 'token rejected: {reason}',
    http: 401,
    grpc: GrpcStatus.UNAUTHENTICATED,
  },
  TOKEN_ROLE: {
    message: 'role "{role}" may not {action}; it needs one of: {needed}',
    http: 403,
    grpc: GrpcStatus.PERMISSION_DENIED,
  },

  // Access control at the hub
  PEER_UNAUTHENTICATED: {
    message: 'a verified client certificate is required',
    http: 401,
    grpc: GrpcStatus.UNAUTHENTICATED,
  },
  PEER_NOT_ENROLLED: {
    message: 'participant "{participant}" is not enrolled at this hub',
    http: 403,
    grpc: GrpcStatus.PERMISSION_DENIED,
  },

  PEER_TOO_MANY_CALLS: {
    message: 'participant "{participant}" already has {open} {what} open; the limit is {limit}',
    http: 429,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
  },

  // Knowledge versions and transport
  VERSION_NOT_FOUND: {
    message: 'knowledge version "{id}" does not exist',
    http: 404,
    grpc: GrpcStatus.NOT_FOUND,
  },
  STREAM_NOT_FOUND: {
    message: 'knowledge stream "{name}" does not exist',
    http: 404,
    grpc: GrpcStatus.NOT_FOUND,
  },
  CHUNK_OUT_OF_RANGE: {
    message: 'version "{id}" has {count} chunks; chunk {index} was asked for',
    http: 400,
    grpc: GrpcStatus.OUT_OF_RANGE,
  },
  CHUNK_HASH_MISMATCH: {
    message:
      'chunk {index} of version "{id}" failed verification: expected sha256 {expected}, got {actual}',
    http: 502,
    grpc: GrpcStatus.DATA_LOSS,
  },
  MANIFEST_HASH_MISMATCH: {
    message: 'manifest of version "{id}" does not hash to its id (got {actual})',
    http: 502,
    grpc: GrpcStatus.DATA_LOSS,
  },
  MANIFEST_INVALID: {
    message: 'manifest of version "{id}" is invalid: {detail}',
    http: 502,
    grpc: GrpcStatus.DATA_LOSS,
  },
  REQUEST_INVALID: {
    message: 'invalid request: {detail}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },

  // Registry
  REGISTRY_UNAVAILABLE: {
    message: 'registry database is unavailable: {detail}',
    http: 503,
    grpc: GrpcStatus.UNAVAILABLE,
  },
  REGISTRY_MIGRATION_FAILED: {
    message: 'registry migration {name} failed: {detail}',
    http: 500,
    grpc: GrpcStatus.INTERNAL,
  },
  REGISTRY_LOCKED: {
    message:
      'registry {path} is in use by another process (pid {pid}); stop it first: one process per data directory',
    http: 503,
    grpc: GrpcStatus.UNAVAILABLE,
  },
  AUDIT_CURSOR_INVALID: {
    message: 'audit cursor "{cursor}" is invalid',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  VERSION_EXISTS: {
    message:
      'knowledge version "{id}" is already published (stream "{stream}", sequence {sequence})',
    http: 409,
    grpc: GrpcStatus.ALREADY_EXISTS,
  },

  // Trust: certificates, enrolment, grants, participant tokens, signed audit chain (issue 3)
  CERT_REVOKED: {
    message: 'certificate {serial} was revoked',
    http: 401,
    grpc: GrpcStatus.UNAUTHENTICATED,
  },
  CERT_NOT_REGISTERED: {
    message:
      'certificate {serial} of "{participant}" is not registered at this hub; an operator must register it',
    http: 401,
    grpc: GrpcStatus.UNAUTHENTICATED,
  },
  CERT_NOT_FOUND: {
    message: 'no certificate {what} is registered',
    http: 404,
    grpc: GrpcStatus.NOT_FOUND,
  },
  CERT_INVALID: {
    message: 'certificate rejected: {reason}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  ENROLMENT_NOT_FOUND: {
    message: 'enrolment request "{id}" does not exist',
    http: 404,
    grpc: GrpcStatus.NOT_FOUND,
  },
  ENROLMENT_DECIDED: {
    message: 'enrolment request "{id}" was already {status}',
    http: 409,
    grpc: GrpcStatus.FAILED_PRECONDITION,
  },
  ENROLMENT_NO_CA_KEY: {
    message:
      'this hub holds no CA key; sign the request offline (distillery pki approve) and upload the certificate',
    http: 409,
    grpc: GrpcStatus.FAILED_PRECONDITION,
  },
  PARTICIPANT_NOT_FOUND: {
    message: 'participant "{id}" is not enrolled',
    http: 404,
    grpc: GrpcStatus.NOT_FOUND,
  },
  GRANT_INVALID: {
    message: 'invalid grant: {detail}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  GRANT_NOT_FOUND: {
    message: 'grant "{id}" does not exist',
    http: 404,
    grpc: GrpcStatus.NOT_FOUND,
  },
  SUBSCRIPTION_AHEAD_OF_STREAM: {
    message:
      'stream "{stream}" ends at event {last} but the subscriber has seen up to event {after}: its saved place comes from another hub or from a registry that was reset; clear the node\'s saved place for this stream (state.json in its data directory) to receive the stream from its start',
    http: 409,
    grpc: GrpcStatus.FAILED_PRECONDITION,
  },
  GRANT_DENIED: {
    message: 'participant "{participant}" holds no grant for {what}',
    http: 403,
    grpc: GrpcStatus.PERMISSION_DENIED,
  },
  TOKEN_CERT_MISMATCH: {
    message: 'token rejected: it is bound to another certificate (cnf.x5t#S256)',
    http: 401,
    grpc: GrpcStatus.UNAUTHENTICATED,
  },
  AUDIT_EXPORT_INVALID: {
    message: 'audit export {path} line {line}: {detail}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  AUDIT_KEY_INVALID: {
    message: 'audit key {path} is not an ES256 public key (JWK, JWK Set or PEM): {detail}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },

  // Trust CLI: files checked locally before anything is sent to the hub
  FILE_UNREADABLE: {
    message: '{what} {path} cannot be read: {detail}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  FILE_NOT_JSON: {
    message: '{what} {path} is not valid JSON: {detail}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  PKI_FILE_IS_PRIVATE_KEY: {
    message:
      '{what} {path} holds a private key, which never leaves this machine; give the {kind} file instead (nothing was sent)',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  PKI_FILE_WRONG_KIND: {
    message: '{what} {path} is not a PEM {kind} ({found}); nothing was sent',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  TOKEN_FILE_INVALID: {
    message:
      'token file {path} does not hold a token (a JWT: three base64url parts joined by dots); give the file `distillery pki token` wrote',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  TOKEN_LIFETIME_TOO_LONG: {
    message: 'a {role} token may live at most {max} seconds ({days} days); {ttl} seconds asked',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },

  // Transport: encodings, chunk limits, deprecation and rollback (issue 4)
  TENSOR_NOT_ENCODABLE: {
    message: 'tensor {name} cannot be encoded as {dtype}: {detail}',
    http: 422,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  CHUNK_SIZE_INVALID: {
    message:
      'chunk size {chunkBytes} bytes is outside 1 to {limit} bytes (the gRPC message limit less framing)',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  VERSION_DEPRECATED: {
    message: 'knowledge version "{id}" is deprecated and cannot be made current',
    http: 409,
    grpc: GrpcStatus.FAILED_PRECONDITION,
  },
  ROLLBACK_INVALID: {
    message: 'cannot roll stream "{stream}" back to version "{id}": {detail}',
    http: 409,
    grpc: GrpcStatus.FAILED_PRECONDITION,
  },

  // Privacy: release policies, differential privacy, budget ledger, query mode (issue 6)
  PRIVACY_POLICY_INVALID: {
    message: 'invalid release policy: {detail}',
    http: 400,
    grpc: GrpcStatus.INVALID_ARGUMENT,
  },
  PRIVACY_TARGET_UNREACHABLE: {
    message:
      'privacy target epsilon {target} cannot be met: what is already spent is epsilon {spent}',
    http: 409,
    grpc: GrpcStatus.FAILED_PRECONDITION,
  },
  PRIVACY_BUDGET_EXHAUSTED: {
    message:
      'privacy budget of {participant} exhausted: this release needs epsilon {needed} at delta {delta}, {remaining} of {budget} remains',
    http: 429,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
  },
  PRIVACY_ROW_CAP_EXCEEDED: {
    message:
      '{participant} may receive {cap} rows per {period}; {used} were released already and this call asks for {asked}',
    http: 429,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED,
  },
  PRIVACY_QUERY_NOT_ALLOWED: {
    message: 'participant "{participant}" holds no grant with query mode on stream "{stream}"',
    http: 403,
    grpc: GrpcStatus.PERMISSION_DENIED,
  },

  // Hub lifecycle
  HUB_SHUTTING_DOWN: {
    message: 'the hub is shutting down; {what} was cancelled and nothing was stored',
    http: 503,
    grpc: GrpcStatus.UNAVAILABLE,
  },

  // Catch-all for faults that are not the caller's
  INTERNAL: { message: 'internal error', http: 500, grpc: GrpcStatus.INTERNAL },
} as const satisfies Record<string, ErrorSpec>;

/** A code of the error catalogue. */
export type ErrorCode = keyof typeof ERROR_CATALOGUE;

type Params = Record<string, string | number | boolean | bigint | null | undefined>;

function renderMessage(template: string, params: Params): string {
  return template.replace(/\{(\w+)\}/g, (whole, key: string) =>
    key in params ? String(params[key]) : whole,
  );
}

/**
 * The one error class of Distillery. Its message is safe to show to the caller; `cause`
 * (when given) is for the log only.
 */
export class DistilleryError extends Error {
  readonly code: ErrorCode;
  readonly params: Params;
  readonly httpStatus: number;
  readonly grpcStatus: GrpcStatus;

  constructor(code: ErrorCode, params: Params = {}, options?: { cause?: unknown }) {
    const spec: ErrorSpec = ERROR_CATALOGUE[code];
    super(renderMessage(spec.message, params), options);
    this.name = 'DistilleryError';
    this.code = code;
    this.params = params;
    this.httpStatus = spec.http;
    this.grpcStatus = spec.grpc;
  }
}

/** Builds a catalogued error: `fail('VERSION_NOT_FOUND', { id })`. */
export function fail(code: ErrorCode, params: Params = {}, options?: { cause?: unknown }) {
  return new DistilleryError(code, params, options);
}

/** True for an error raised on purpose by Distillery (as opposed to a fault). */
export function isDistilleryError(err: unknown): err is DistilleryError {
  return err instanceof DistilleryError;
}

/** Narrows `code` checks in tests and handlers: `hasCode(err, 'DATA_EMPTY_FILE')`. */
export function hasCode(err: unknown, code: ErrorCode): boolean {
  return isDistilleryError(err) && err.code === code;
}
