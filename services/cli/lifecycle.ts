import type { Logger } from '../shared/logger.js';

/**
 * Runs `stop` once on SIGTERM or SIGINT, then exits: 0 when it finished, 1 when it threw
 * or took longer than `graceMs`. A second signal exits at once.
 */
export function onShutdownSignal(
  logger: Logger,
  stop: () => Promise<void>,
  graceMs = 15_000,
): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal; exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      logger.error({ graceMs }, 'shutdown took too long; exiting');
      process.exit(1);
    }, graceMs);
    timer.unref();
    stop().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

/** Sends a message to the parent process when this one was started with an IPC channel. */
export function tellParent(message: Record<string, unknown>): void {
  if (typeof process.send === 'function') process.send(message);
}
