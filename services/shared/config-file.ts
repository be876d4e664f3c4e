import { readFile } from 'node:fs/promises';
import { fail } from './errors.js';

/**
 * Reads a file a process cannot start without (a certificate, a key), as UTF-8; a missing
 * or unreadable one is CONFIG_FILE_MISSING naming what it is and where it was looked for.
 */
export async function readRequiredFile(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw fail('CONFIG_FILE_MISSING', { what, path }, { cause: err });
  }
}
