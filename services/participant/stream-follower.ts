import type { ClientReadableStream } from '@grpc/grpc-js';
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
  /** Why handling the event failed, when it did; the node went on following. */
  error?: { code: string; message: string };
}

/** What a handler knows besides the event itself. */
export interface EventContext {
  /** Events received after this one and not handled yet, oldest first. */
  readonly later: readonly Announcement__Output[];
  /** Aborted when the node stops: the handler gives up, and its event is handled again at the next start. */
  readonly signal: AbortSignal;
  /** Calls `listener` with each event that arrives while this one is being handled. */
  onLater(listener: (event: Announcement__Output) => void): void;
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
  onEvent: (
    event: Announcement__Output,
    state: ParticipantState,
    context: EventContext,
  ) => Promise<EventOutcome>;
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

  const stopped = new AbortController();

  /** One subscription, until it ends; resolves true when following should stop. */
  const subscribeOnce = async (onOpen: () => void): Promise<boolean> => {
    let state = await store.readState(options.stream);
    const stream = client.subscribe(options.stream, state.lastSequence);
    current = stream;
    // Events are read as they arrive, not as they are handled, so that a handler sees what
    // came after its event (a replay after a restart arrives at once): a version deprecated
    // or rolled away from later in the stream need not be distilled.
    const queue: Announcement__Output[] = [];
    let listener: ((event: Announcement__Output) => void) | undefined;
    let ended = false;
    let failure: unknown;
    let arrived: (() => void) | undefined;
    stream.once('metadata', onOpen);
    stream.on('data', (event: Announcement__Output) => {
      onOpen();
      queue.push(event);
      listener?.(event);
      arrived?.();
    });
    stream.on('error', (err: unknown) => {
      failure = err;
      ended = true;
      arrived?.();
    });
    stream.on('end', () => {
      ended = true;
      arrived?.();
    });
    for (;;) {
      const event = queue.shift();
      if (!event) {
        if (failure !== undefined) throw failure;
        if (ended) return stopping;
        await new Promise<void>((resolve) => (arrived = resolve));
        arrived = undefined;
        continue;
      }
      const sequence = Number(event.sequence);
      // A hub replaying from an older point must not make the node handle an event twice.
      if (sequence <= state.lastSequence) continue;
      let outcome: EventOutcome;
      try {
        outcome = await options.onEvent(event, state, {
          later: queue,
          signal: stopped.signal,
          onLater: (l) => (listener = l),
        });
      } finally {
        listener = undefined;
      }
      await store.recordEvent({
        sequence,
        event: event.event || 'published',
        versionId: event.versionId,
        versionSequence: Number(event.versionSequence),
        currentVersionId: event.currentVersionId,
        ...(event.reason ? { reason: event.reason } : {}),
        action: outcome.action,
        ...(outcome.error ? { error: outcome.error } : {}),
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
  };

  const run = async (): Promise<void> => {
    let pause = backoff.initial;
    while (!stopping) {
      try {
        if (await subscribeOnce(() => (pause = backoff.initial))) break;
        // The hub ended the stream without an error: it is shutting down. Reconnect.
      } catch (err) {
        // Stopping cancels the subscription and aborts the handler: what it throws then is
        // the stop, not a failure, and its event is handled again at the next start.
        if (stopping) break;
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
      stopped.abort(new Error('the participant is stopping'));
      current?.cancel();
      wake?.();
      await done.catch(() => undefined);
    },
  };
}
