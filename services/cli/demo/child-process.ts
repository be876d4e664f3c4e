import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../../bin/distillery.js', import.meta.url));

/** A `distillery` command running as a separate process, with its log in a file. */
export interface ServiceProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Waits for the next IPC message of `type` (rejects if the process exits first). */
  next<T = Record<string, unknown>>(type: string, timeoutMs?: number): Promise<T>;
  /** SIGTERM, then waits for the exit; SIGKILL after `graceMs`. Returns the exit code. */
  stop(graceMs?: number): Promise<number | null>;
  /** The last lines of the process's log, for error messages. */
  logTail(lines?: number): string;
}

/**
 * Starts `distillery <args>` as its own process, as an operator would, with an IPC
 * channel for readiness and results. Its structured log (standard error) goes to
 * `logFile`, so that the demo's own output stays readable.
 */
export function startService(
  name: string,
  args: string[],
  logFile: string,
  env: NodeJS.ProcessEnv = {},
): ServiceProcess {
  const fd = openSync(logFile, 'a');
  const child = fork(BIN, args, {
    stdio: ['ignore', 'ignore', fd, 'ipc'],
    env: { ...process.env, ...env },
  });
  closeSync(fd);

  const queue: Record<string, unknown>[] = [];
  const waiters: { type: string; resolve: (m: never) => void; reject: (e: Error) => void }[] = [];
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  const logTail = (lines = 15) => {
    try {
      return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  };

  child.on('message', (message: Record<string, unknown>) => {
    const index = waiters.findIndex((w) => w.type === message.type);
    if (index >= 0) waiters.splice(index, 1)[0].resolve(message as never);
    else queue.push(message);
  });
  const exitPromise = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      for (const waiter of waiters.splice(0)) {
        waiter.reject(
          new Error(
            `${name} exited (code ${code}, signal ${signal}) while the demo waited for "${waiter.type}". Its log ends:\n${logTail()}`,
          ),
        );
      }
      resolve(code);
    });
  });

  return {
    name,
    child,
    logFile,
    logTail,
    next<T>(type: string, timeoutMs = 600_000) {
      const index = queue.findIndex((m) => m.type === type);
      if (index >= 0) return Promise.resolve(queue.splice(index, 1)[0] as T);
      if (exited) {
        return Promise.reject(
          new Error(`${name} has exited (code ${exited.code}). Its log ends:\n${logTail()}`),
        );
      }
      return new Promise<T>((resolve, reject) => {
        const waiter = { type, resolve: resolve as (m: never) => void, reject };
        waiters.push(waiter);
        setTimeout(() => {
          const at = waiters.indexOf(waiter);
          if (at < 0) return;
          waiters.splice(at, 1);
          reject(
            new Error(
              `${name} sent no "${type}" within ${timeoutMs} ms. Its log ends:\n${logTail()}`,
            ),
          );
        }, timeoutMs).unref();
      });
    },
    async stop(graceMs = 15_000) {
      if (exited) return exited.code;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exitPromise;
      clearTimeout(timer);
      return code;
    },
  };
}
