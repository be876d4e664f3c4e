import cliProgress from 'cli-progress';
import type { Logger } from '../logger.js';
import type { TrainingProgress } from './distil.js';

/** Options of {@link createTrainingProgress}. */
export interface TrainingProgressOptions {
  /** What is being trained, e.g. `student v3`; starts each bar and log line. */
  label: string;
  logger: Logger;
  /** Where the bar is drawn; default standard error. */
  stream?: NodeJS.WriteStream;
  /** Draw a bar; default: when `stream` is a terminal. */
  bar?: boolean;
}

/** A training progress display: give `update` to trainStudent's `onProgress`. */
export interface TrainingProgressReporter {
  update(progress: TrainingProgress): void;
  /** Ends the bar (leaving its last state on screen); safe to call twice. */
  stop(): void;
}

function format(value: number | undefined, digits: number): string {
  return value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits);
}

/**
 * Shows a student's training: on a terminal a bar over all batches of all epochs, with
 * epoch, batch, running loss, last validation AUC and samples per second; elsewhere (a
 * log file, a pipe, a service manager) one structured log line per epoch, so that logs
 * stay machine-readable and free of control characters.
 */
export function createTrainingProgress(options: TrainingProgressOptions): TrainingProgressReporter {
  const stream = options.stream ?? process.stderr;
  const drawBar = options.bar ?? stream.isTTY === true;
  const { logger, label } = options;
  let bar: cliProgress.SingleBar | undefined;
  let stopped = false;

  return {
    update(p: TrainingProgress) {
      if (stopped) return;
      if (!drawBar) {
        if (p.phase === 'epoch') {
          logger.info(
            {
              label,
              epoch: p.epoch,
              epochs: p.epochs,
              loss: p.loss,
              ...(p.valAuc !== undefined ? { valAuc: p.valAuc } : {}),
              samplesPerSecond: Math.round(p.samplesPerSecond),
            },
            'training epoch',
          );
        }
        return;
      }
      const total = p.epochs * p.batches;
      const value = (p.epoch - 1) * p.batches + p.batch;
      const payload = {
        label,
        epoch: `${p.epoch}/${p.epochs}`,
        batchOf: `${p.batch}/${p.batches}`,
        loss: format(p.loss, 4),
        auc: format(p.valAuc, 3),
        speed: Math.round(p.samplesPerSecond).toLocaleString('en-US'),
      };
      if (!bar) {
        bar = new cliProgress.SingleBar(
          {
            stream,
            format:
              '{label} |{bar}| epoch {epoch} batch {batchOf} loss {loss} val AUC {auc} {speed} samples/s',
            barsize: 24,
            hideCursor: false,
            clearOnComplete: false,
            // Draw even when the stream does not say it is a terminal: the caller chose a bar.
            noTTYOutput: true,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, value, payload);
      } else {
        bar.setTotal(total);
        bar.update(value, payload);
      }
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar?.stop();
    },
  };
}
