import { EventEmitter } from 'node:events';

/** A version as announced to subscribers of its stream. */
export interface VersionAnnouncement {
  stream: string;
  sequence: number;
}

/**
 * Wakes open subscriptions when a version is published. It carries only "stream S has a
 * new version"; subscribers then read what they have not sent from the registry, which is
 * the durable source, so a wake-up that is missed or doubled loses and repeats nothing.
 *
 * This is in-process: with several hub replicas on one PostgreSQL registry, a version
 * published through one replica wakes only that replica's subscribers until the others
 * are told through PostgreSQL LISTEN/NOTIFY (see DESIGN.md, "Scaling past one machine").
 */
export class Announcer {
  readonly #events = new EventEmitter();

  constructor() {
    // One listener per open subscription; hundreds are expected, not a leak.
    this.#events.setMaxListeners(0);
  }

  /** Tells every subscriber of `stream` that a version was published. */
  announce(announcement: VersionAnnouncement): void {
    this.#events.emit(announcement.stream, announcement);
  }

  /** Calls `listener` on each announcement for `stream`; returns the unsubscribe function. */
  listen(stream: string, listener: (a: VersionAnnouncement) => void): () => void {
    this.#events.on(stream, listener);
    return () => this.#events.off(stream, listener);
  }
}
