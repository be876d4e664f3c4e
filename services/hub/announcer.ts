import { EventEmitter } from 'node:events';
import type { Logger } from '../shared/logger.js';
import type { Registry, RegistryDb } from '../registry/database.js';
import {
  listStreamEvents,
  STREAM_EVENT_CHANNEL,
  type StreamEventWithVersion,
} from '../registry/stream-events.js';

/** A wake-up: stream S has a new event. */
export interface VersionAnnouncement {
  stream: string;
  /** The new event's sequence, when the waker knows it. */
  sequence?: number;
}

/** Events of one stream held in memory, so that a wake-up of N subscribers costs one read. */
interface Tail {
  /** Every event with a sequence above `from` is in `events` (until trimmed). */
  from: number;
  events: StreamEventWithVersion[];
  stale: boolean;
  refreshing?: Promise<void>;
}

const TAIL_EVENTS = 1_000;

/** How often every followed stream is re-read, in case a NOTIFY was lost; default 5 s. */
export const DEFAULT_POLL_MS = 5_000;

/**
 * Wakes open subscriptions when a stream has a new event. A wake-up carries only "stream S
 * changed"; subscribers then read what they have not sent, from the registry, which is the
 * durable source, so a wake-up that is missed or doubled loses and repeats nothing.
 *
 * Wake-ups come from this process ({@link announce}), from the registry's NOTIFY (on
 * PostgreSQL, so a version published through another hub replica wakes this one), and from
 * a slow poll that covers notifications lost with a dropped connection. New events are
 * read once per wake-up into a per-stream tail that all subscriptions share.
 */
export class Announcer {
  readonly #events = new EventEmitter();
  readonly #tails = new Map<string, Tail>();
  #db: RegistryDb | undefined;
  #unlisten: (() => Promise<void>) | undefined;
  #poll: NodeJS.Timeout | undefined;
  #logger: Logger | undefined;

  constructor() {
    // One listener per open subscription; hundreds are expected, not a leak.
    this.#events.setMaxListeners(0);
  }

  /** Follows `registry`'s notifications and polls it every `pollMs`. */
  async attach(registry: Registry, logger: Logger, pollMs = DEFAULT_POLL_MS): Promise<void> {
    this.#db = registry.prisma;
    this.#logger = logger;
    this.#unlisten = await registry.listen(STREAM_EVENT_CHANNEL, (stream) =>
      this.announce({ stream }),
    );
    this.#poll = setInterval(() => {
      for (const stream of this.#events.eventNames()) this.announce({ stream: String(stream) });
    }, pollMs);
    this.#poll.unref();
  }

  /** Stops following the registry. */
  async detach(): Promise<void> {
    clearInterval(this.#poll);
    await this.#unlisten?.().catch((err: unknown) =>
      this.#logger?.warn({ err }, 'stopping registry notifications failed'),
    );
    this.#unlisten = undefined;
  }

  /** Tells every subscriber of `stream` that it has a new event. */
  announce(announcement: VersionAnnouncement): void {
    const tail = this.#tails.get(announcement.stream);
    if (tail) tail.stale = true;
    this.#events.emit(announcement.stream, announcement);
  }

  /** Calls `listener` on each wake-up for `stream`; returns the unsubscribe function. */
  listen(stream: string, listener: (a: VersionAnnouncement) => void): () => void {
    this.#events.on(stream, listener);
    return () => {
      this.#events.off(stream, listener);
      if (this.#events.listenerCount(stream) === 0) this.#tails.delete(stream);
    };
  }

  /**
   * The stream's events after `after`, oldest first (a page of at most 500 when they come
   * from the registry). Served from the shared tail when it reaches back far enough.
   */
  async eventsAfter(
    db: RegistryDb,
    stream: string,
    after: number,
  ): Promise<StreamEventWithVersion[]> {
    let tail = this.#tails.get(stream);
    if (!tail) {
      const events = await listStreamEvents(db, stream, after);
      // Start a tail where this read ended, once nobody made one meanwhile. It starts stale:
      // an event committed after the read may have woken nobody yet.
      tail = this.#tails.get(stream);
      if (!tail && this.#events.listenerCount(stream) > 0 && events.length < 500) {
        this.#tails.set(stream, {
          from: events.at(-1)?.sequence ?? after,
          events: [],
          stale: true,
        });
      }
      return events;
    }
    if (after < tail.from) return listStreamEvents(db, stream, after);
    // A refresh under way may be reading the very event this wake-up is about: wait for it.
    if (tail.stale || tail.refreshing) await this.#refresh(this.#db ?? db, tail, stream);
    return tail.events.filter((e) => e.sequence > after);
  }

  #refresh(db: RegistryDb, tail: Tail, stream: string): Promise<void> {
    tail.refreshing ??= (async () => {
      try {
        while (tail.stale) {
          tail.stale = false;
          const last = tail.events.at(-1)?.sequence ?? tail.from;
          const fresh = await listStreamEvents(db, stream, last);
          tail.events.push(...fresh);
          if (fresh.length === 500) tail.stale = true;
        }
        if (tail.events.length > TAIL_EVENTS) {
          const dropped = tail.events.splice(0, tail.events.length - TAIL_EVENTS);
          tail.from = dropped.at(-1)!.sequence;
        }
      } catch (err) {
        tail.stale = true;
        throw err;
      } finally {
        tail.refreshing = undefined;
      }
    })();
    return tail.refreshing;
  }
}
