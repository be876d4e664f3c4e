import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** What a participant remembers between runs. */
export interface ParticipantState {
  stream: string;
  /**
   * Sequence of the last stream event fully handled; the subscription resumes after it.
   * (Before stream events existed this was the last version's sequence, which the
   * registry migration gave the same number as its `published` event.)
   */
  lastSequence: number;
  /** The version whose student the node uses now. */
  activeVersionId?: string;
}

/** A stream event as the participant recorded it, one JSON line per event. */
export interface RecordedEvent {
  sequence: number;
  event: string;
  versionId: string;
  versionSequence: number;
  currentVersionId: string;
  reason?: string;
  /** What the node did: `distilled`, `failed`, `skipped (…)`, `ignored (pinned …)`, … */
  action: string;
  /** Why handling failed, when `action` is `failed`. */
  error?: { code: string; message: string };
  at: string;
}

/**
 * The participant's own directory: downloaded manifests, verified chunks stored by their
 * SHA-256 (shared by every version that contains them), trained students, the events seen
 * and its place in the stream. Writes go through a temporary file and a rename, so a crash
 * leaves either the old file or the new one, never half of one.
 */
export class LocalStore {
  constructor(readonly root: string) {}

  versionDir(id: string): string {
    return join(this.root, 'versions', id);
  }

  studentDir(versionId: string): string {
    return join(this.root, 'students', versionId);
  }

  /** Where the chunk with this SHA-256 is kept. */
  chunkPath(sha256: string): string {
    return join(this.root, 'chunks', sha256.slice(0, 2), sha256);
  }

  hasChunk(sha256: string): boolean {
    return existsSync(this.chunkPath(sha256));
  }

  /** Stores verified chunk bytes under their hash. */
  async writeChunk(sha256: string, data: Uint8Array): Promise<void> {
    await writeAtomically(this.chunkPath(sha256), data);
  }

  async readChunk(sha256: string): Promise<Buffer> {
    return readFile(this.chunkPath(sha256));
  }

  /** Forgets a chunk that failed verification, so that it is fetched again. */
  async dropChunk(sha256: string): Promise<void> {
    await rm(this.chunkPath(sha256), { force: true });
  }

  async readState(stream: string): Promise<ParticipantState> {
    const path = join(this.root, 'state.json');
    if (!existsSync(path)) return { stream, lastSequence: 0 };
    const state = JSON.parse(await readFile(path, 'utf8')) as ParticipantState;
    // A state file of another stream says nothing about this one.
    return state.stream === stream ? state : { stream, lastSequence: 0 };
  }

  async writeState(state: ParticipantState): Promise<void> {
    await writeAtomically(join(this.root, 'state.json'), JSON.stringify(state, null, 2));
  }

  /**
   * Appends an event to `events.jsonl`. It is written before the state that moves past it,
   * so a crash between the two records that one event twice rather than not at all.
   */
  async recordEvent(event: RecordedEvent): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await appendFile(join(this.root, 'events.jsonl'), `${JSON.stringify(event)}\n`);
  }

  /** Every event recorded, in the order recorded. */
  async readEvents(): Promise<RecordedEvent[]> {
    const path = join(this.root, 'events.jsonl');
    if (!existsSync(path)) return [];
    return (await readFile(path, 'utf8'))
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as RecordedEvent);
  }
}

/** Writes `data` to `path` through a sibling temporary file and a rename. */
export async function writeAtomically(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  const temporary = `${path}.tmp-${process.pid}`;
  await writeFile(temporary, data);
  await rename(temporary, path);
}
