import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** What a participant remembers between runs. */
export interface ParticipantState {
  stream: string;
  /** Sequence of the last version fully processed; announcements resume after it. */
  lastSequence: number;
}

/**
 * The participant's own directory: downloaded versions, trained students, and its place in
 * the stream. Writes go through a temporary file and a rename, so a crash leaves either
 * the old file or the new one, never half of one.
 */
export class LocalStore {
  constructor(readonly root: string) {}

  versionDir(id: string): string {
    return join(this.root, 'versions', id);
  }

  studentDir(versionId: string): string {
    return join(this.root, 'students', versionId);
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
}

/** Writes `data` to `path` through a sibling temporary file and a rename. */
export async function writeAtomically(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  const temporary = `${path}.tmp-${process.pid}`;
  await writeFile(temporary, data);
  await rename(temporary, path);
}
