import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/** Options of {@link createLogger}. */
export interface CreateLoggerOptions {
  /** Component name, written as `service` on every line. */
  service: string;
  /** Level; default `LOG_LEVEL` from the environment, else `info`. */
  level?: string;
  /** Extra fields bound to every line (for example `participant`). */
  bindings?: Record<string, unknown>;
  /** Where lines go; default standard error, so that standard output stays for results. */
  destination?: NodeJS.WritableStream;
}

// Secrets and tensor payloads must never reach a log line, whatever a caller passes.
const REDACT_PATHS = [
  'token',
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'key',
  'privateKey',
  'data',
  '*.token',
  '*.privateKey',
];

/**
 * Creates the structured pino logger used by every Distillery process: JSON lines to
 * standard error, a `service` field, and redaction of key material and tokens.
 */
export function createLogger(options: CreateLoggerOptions): Logger {
  const config: LoggerOptions = {
    level: options.level ?? process.env.LOG_LEVEL ?? 'info',
    base: { service: options.service, pid: process.pid, ...options.bindings },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return pino(config, (options.destination ?? pino.destination(2)) as pino.DestinationStream);
}

/** A logger that writes nothing, for tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
