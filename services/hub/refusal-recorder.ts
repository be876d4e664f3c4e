import type { Logger } from '../shared/logger.js';
import type { RefusedConnection } from './mtls-listener.js';

/** Options of {@link createRefusalRecorder}. */
export interface RefusalRecorderOptions {
  /** Writes one access log entry; called for each refusal that is recorded in full. */
  write: (entry: {
    actor: string;
    reason: string;
    peerAddress: string;
    detail?: Record<string, unknown>;
  }) => Promise<void>;
  logger: Logger;
  /** Refusals of one host recorded in full before the rate applies; default 20. */
  burst?: number;
  /** Refusals per second of one host recorded in full after the burst; default 2. */
  perSecond?: number;
  /** How often suppressed refusals are summed up in one entry per host; default 10 s. */
  summaryIntervalMs?: number;
}

/** Records refused handshakes; see {@link createRefusalRecorder}. */
export interface RefusalRecorder {
  record(refusal: RefusedConnection): Promise<void>;
  /** Writes the pending summaries and stops the timer. */
  close(): Promise<void>;
}

interface HostState {
  tokens: number;
  updatedAt: number;
  suppressed: number;
  reasons: Record<string, number>;
}

/**
 * Writes refused handshakes to the access log without letting strangers flood it. Every
 * entry is appended behind the single chain-head lock, so an unbounded stream of refused
 * connections would queue ahead of enrolled participants' calls. Each host gets a burst of
 * entries in full and then a steady rate; refusals past that are counted and written as one
 * summary entry per host and interval, with their number and reasons, so the log still
 * accounts for every refusal.
 */
export function createRefusalRecorder(options: RefusalRecorderOptions): RefusalRecorder {
  const burst = options.burst ?? 20;
  const perSecond = options.perSecond ?? 2;
  const hosts = new Map<string, HostState>();

  const flush = async () => {
    const pending = [...hosts.entries()].filter(([, state]) => state.suppressed > 0);
    for (const [host, state] of pending) {
      const { suppressed, reasons } = state;
      state.suppressed = 0;
      state.reasons = {};
      await options
        .write({
          actor: 'anonymous',
          reason: `${suppressed} further refused handshakes from ${host} (rate limited)`,
          peerAddress: host,
          detail: { suppressed, reasons },
        })
        .catch((err: unknown) =>
          options.logger.error({ err, host }, 'refusal summary not recorded'),
        );
    }
    // Forget hosts that have been quiet long enough to have a full burst again.
    const now = Date.now();
    for (const [host, state] of hosts) {
      if (state.suppressed === 0 && now - state.updatedAt > (burst / perSecond) * 1000) {
        hosts.delete(host);
      }
    }
  };
  const timer = setInterval(() => void flush(), options.summaryIntervalMs ?? 10_000);
  timer.unref();

  return {
    async record(refusal) {
      const host = refusal.peerAddress.replace(/:\d+$/, '');
      const now = Date.now();
      const state = hosts.get(host) ?? {
        tokens: burst,
        updatedAt: now,
        suppressed: 0,
        reasons: {},
      };
      state.tokens = Math.min(burst, state.tokens + ((now - state.updatedAt) / 1000) * perSecond);
      state.updatedAt = now;
      hosts.set(host, state);

      if (state.tokens < 1) {
        state.suppressed++;
        state.reasons[refusal.reason] = (state.reasons[refusal.reason] ?? 0) + 1;
        return;
      }
      state.tokens -= 1;
      await options.write({
        actor: refusal.claimedIdentity ? `unverified:${refusal.claimedIdentity}` : 'anonymous',
        reason: refusal.reason,
        peerAddress: refusal.peerAddress,
      });
    },
    async close() {
      clearInterval(timer);
      await flush();
    },
  };
}
