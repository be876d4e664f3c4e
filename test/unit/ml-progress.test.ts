import { PassThrough } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { TrainingProgress } from '../../services/shared/ml/distil.js';
import { createTrainingProgress } from '../../services/shared/ml/progress.js';

const events: TrainingProgress[] = [
  {
    phase: 'batch',
    epoch: 1,
    epochs: 2,
    batch: 3,
    batches: 8,
    loss: 0.61234,
    samplesPerSecond: 120000,
    steps: 3,
  },
  {
    phase: 'epoch',
    epoch: 1,
    epochs: 2,
    batch: 8,
    batches: 8,
    loss: 0.5,
    valAuc: 0.8123,
    samplesPerSecond: 150000,
    steps: 8,
  },
];

function capture() {
  const out = new PassThrough();
  let text = '';
  out.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  return { out, text: () => text };
}

/** Feeds `events` to a progress reporter for "student v1"; what it drew and what it logged. */
function replay(options: { bar?: true }) {
  const screen = capture();
  const logs = capture();
  const progress = createTrainingProgress({
    label: 'student v1',
    logger: pino(logs.out),
    stream: screen.out as unknown as NodeJS.WriteStream,
    ...options,
  });
  events.forEach((e) => progress.update(e));
  progress.stop();
  return { screen, logs };
}

describe('createTrainingProgress', () => {
  it('draws a bar with epoch, batch, loss, validation AUC and samples/s on a terminal', () => {
    const { screen, logs } = replay({ bar: true });
    const text = screen.text();
    expect(text).toContain('student v1');
    expect(text).toContain('epoch 1/2 batch 8/8 loss 0.5000 val AUC 0.812 150,000 samples/s');
    expect(logs.text()).toBe('');
  });

  it('writes one structured log line per epoch, and nothing to the screen, otherwise', () => {
    const { screen, logs } = replay({});
    expect(screen.text()).toBe('');
    const lines = logs
      .text()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      msg: 'training epoch',
      label: 'student v1',
      epoch: 1,
      epochs: 2,
      loss: 0.5,
      valAuc: 0.8123,
      samplesPerSecond: 150000,
    });
  });
});
