import type { ClientReadableStream } from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { isDistilleryError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Announcement__Output } from '../shared/transport/proto.js';
import { isTransient } from '../shared/transport/status.js';
import type { HubClient } from './hub-client.js';
import type { LocalStore, ParticipantState } from './local-store.js';

/** What the handler of an event did, for the node's event record. */
export interface EventOutcome {
  /** Short words: `distilled`, `ignored (pinned …)`, `switched`, … */
  action: string;
  /** The version the node uses from now on, when the event changed it. */
  activeVersionId?: string;
  /** Stop following after this event. */
  stop?: boolean;
}

/** Options of {@link followStream}. */
export interface StreamFollowerOptions {
  client: HubClient;
  store: LocalStore;
  stream: string;
  logger: Logger;
  /** Reconnect backoff, first and largest pause; default 500 ms and 30 s. */
  backoffMs?: { initial: number; max: number };
  /**
   * Handles one event. Called once per event, in sequence order, across reconnections
   * and restarts: the event and the sequence after it are saved only once it resolves.
   */
  onEvent: (event: Announcement__Output, state: ParticipantState) => Promise<EventOutcome>;
}

/** A stream being followed. */
export interface StreamFollower {
  /** Resolves when following stops: a handler asked to, or `stop()`; rejects on a fatal error. */
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Follows a stream's durable events: subscribes after the last sequence saved in the local
 * store, hands each event to `onEvent`, saves the sequence, and when the hub goes away
 * (restart, network cut) reconnects with exponential backoff, resuming after the last
 * event handled, so that every event is handled once and in order.
 */
export function followStream(options: StreamFollowerOptions): StreamFollower {
  const { client, store, logger } = options;
  const backoff = options.backoffMs ?? { initial: 500, max: 30_000 };
  let stopping = false;
  let current: ClientReadableStream<Announcement__Output> | undefined;
  let wake: (() => void) | undefined;

  /** One subscription, until it ends; resolves true when following should stop. */
  const subscribeOnce = async (onOpen: () => void): Promise<boolean> => {
    let state = await store.readState(options.stream);
    const stream = client.subscribe(options.stream, state.lastSequence);
    current = stream;
    stream.once('metadata', onOpen);
    for await (const event of stream as AsyncIterable<Announcement__Output>) {
      onOpen();
      const sequence = Number(event.sequence);
      // A hub replaying from an older point must not make the node handle an event twice.
      if (sequence <= state.lastSequence) continue;
      const outcome = await options.onEvent(event, state);
      await store.recordEvent({
        sequence,
        event: event.event || 'published',
        versionId: event.versionId,
        versionSequence: Number(event.versionSequence),
        currentVersionId: event.currentVersionId,
        ...(event.reason ? { reason: event.reason } : {}),
        action: outcome.action,
        at: new Date().toISOString(),
      });
      state = {
        ...state,
        lastSequence: sequence,
        ...(outcome.activeVersionId ? { activeVersionId: outcome.activeVersionId } : {}),
      };
      await store.writeState(state);
      if (outcome.stop || stopping) return true;
    }
    return stopping;
  };

  const run = async (): Promise<void> => {
    let pause = backoff.initial;
    while (!stopping) {
      try {
        if (await subscribeOnce(() => (pause = backoff.initial))) break;
        // The hub ended the stream without an error: it is shutting down. Reconnect.
      } catch (err) {
        if (stopping && (err as { code?: number }).code === GrpcStatus.CANCELLED) break;
        // Local failures (bad data, a version that fails verification) are ours, not the hub's.
        if (isDistilleryError(err)) throw err;
        if (!isTransient(err)) throw err;
        logger.warn(
          {
            err: { code: (err as { code?: number }).code, message: (err as Error).message },
            pauseMs: pause,
          },
          'hub unreachable; retrying',
        );
      }
      if (stopping) break;
      // The pause keeps the process alive (no unref): while the hub is away, waiting for it
      // is all the node has to do. stop() ends the pause early.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pause);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      pause = Math.min(pause * 2, backoff.max);
    }
  };

  const done = run().finally(() => current?.cancel());
  done.catch(() => undefined);
  return {
    done,
    async stop() {
      stopping = true;
      current?.cancel();
      wake?.();
      await done.catch(() => undefined);
    },
  };
}
