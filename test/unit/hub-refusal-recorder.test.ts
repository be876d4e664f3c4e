import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/shared/logger.js';
import { createRefusalRecorder } from '../../services/hub/refusal-recorder.js';

describe('refusal recorder', () => {
  const setup = () => {
    const written: { actor: string; reason: string; detail?: Record<string, unknown> }[] = [];
    const recorder = createRefusalRecorder({
      logger: silentLogger(),
      burst: 5,
      perSecond: 0.001,
      summaryIntervalMs: 60_000,
      write: async (entry) => {
        written.push(entry);
      },
    });
    return { written, recorder };
  };
  const refusal = (host: string, port: number, reason = 'CERT_HAS_EXPIRED') => ({
    peerAddress: `${host}:${port}`,
    claimedIdentity: 'bank-a',
    reason,
  });

  it('records a burst in full, then sums the rest of a flood in one entry', async () => {
    const { written, recorder } = setup();
    for (let i = 0; i < 12; i++) await recorder.record(refusal('10.0.0.9', 40000 + i));
    expect(written).toHaveLength(5);
    expect(written.every((e) => e.actor === 'unverified:bank-a')).toBe(true);

    await recorder.close();
    expect(written).toHaveLength(6);
    expect(written[5].detail).toEqual({ suppressed: 7, reasons: { CERT_HAS_EXPIRED: 7 } });
  });

  it('keeps a burst for each host, so one flooding host does not silence another', async () => {
    const { written, recorder } = setup();
    for (let i = 0; i < 10; i++) await recorder.record(refusal('10.0.0.9', 40000 + i));
    await recorder.record(refusal('10.0.0.7', 50000, 'NO_CLIENT_CERTIFICATE'));
    expect(written.at(-1)?.reason).toBe('NO_CLIENT_CERTIFICATE');
    await recorder.close();
  });
});
