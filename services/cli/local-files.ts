import { X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { fail } from '../shared/errors.js';

/**
 * Reads a file the user named, with errors that name it: CONFIG_FILE_MISSING when it does
 * not exist, FILE_UNREADABLE when it is a directory or cannot be read.
 */
export async function readLocalFile(path: string, what: string): Promise<string> {
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw fail('CONFIG_FILE_MISSING', { what, path }, { cause: err });
    throw fail('FILE_UNREADABLE', { what, path, detail: err.message }, { cause: err });
  });
  if (info.isDirectory()) {
    throw fail('FILE_UNREADABLE', { what, path, detail: 'it is a directory, not a file' });
  }
  return readFile(path, 'utf8').catch((err: Error) => {
    throw fail('FILE_UNREADABLE', { what, path, detail: err.message }, { cause: err });
  });
}

/** Reads and parses a JSON file; FILE_NOT_JSON names the file when it does not parse. */
export async function readJsonFile(path: string, what: string): Promise<unknown> {
  const text = await readLocalFile(path, what);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw fail('FILE_NOT_JSON', { what, path, detail: (err as Error).message }, { cause: err });
  }
}

const PRIVATE_KEY_BLOCK = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;
const FIRST_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----/;

/**
 * Reads a PEM file that is about to be sent to the hub and checks, before anything leaves
 * this machine, that it is the `label` it should be. A file holding a private key anywhere
 * is refused (PKI_FILE_IS_PRIVATE_KEY): a participant's key never leaves the machine that
 * made it. Another PEM kind, or no PEM at all, is PKI_FILE_WRONG_KIND.
 */
export async function readPemForUpload(
  path: string,
  what: string,
  label: 'CERTIFICATE' | 'CERTIFICATE REQUEST',
): Promise<string> {
  const text = await readLocalFile(path, what);
  const kind = label.toLowerCase();
  if (PRIVATE_KEY_BLOCK.test(text)) throw fail('PKI_FILE_IS_PRIVATE_KEY', { what, path, kind });
  const found = FIRST_BLOCK.exec(text)?.[1];
  if (found !== label) {
    throw fail('PKI_FILE_WRONG_KIND', {
      what,
      path,
      kind: label,
      found: found ? `it holds a PEM ${found}` : 'it holds no PEM block',
    });
  }
  if (label === 'CERTIFICATE') {
    try {
      new X509Certificate(text);
    } catch (err) {
      throw fail('PKI_FILE_WRONG_KIND', {
        what,
        path,
        kind: label,
        found: `its certificate does not parse: ${(err as Error).message}`,
      });
    }
  }
  return text;
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Reads a token file and checks it holds one compact JWT (TOKEN_FILE_INVALID otherwise). */
export async function readTokenFile(path: string): Promise<string> {
  const token = (await readLocalFile(path, 'token file')).trim();
  // Checked here so that a wrong file (a key, a certificate) is named, never sent as a header.
  if (!JWT_SHAPE.test(token)) throw fail('TOKEN_FILE_INVALID', { path });
  return token;
}
