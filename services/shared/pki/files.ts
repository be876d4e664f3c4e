import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { PemConverter } from './x509.js';
import { fail } from '../errors.js';

/** PEM labels Distillery reads and writes. */
export type PemLabel = 'CERTIFICATE' | 'PRIVATE KEY' | 'PUBLIC KEY' | 'CERTIFICATE REQUEST';

/** Mode of private keys: owner read and write only. */
export const PRIVATE_FILE_MODE = 0o600;
/** Mode of certificates and public keys. */
export const PUBLIC_FILE_MODE = 0o644;
/** Mode of PKI directories: owner only. */
export const PRIVATE_DIR_MODE = 0o700;

/**
 * Reads a PEM file and checks that it holds at least one well-formed block, of `label` when
 * given. Throws PKI_FILE_MISSING when the file does not exist and PKI_BAD_PEM when its
 * contents are not what was asked for; both name `what` and the path.
 *
 * @param path the file to read.
 * @param what what the file is, for the error message (`CA certificate`).
 * @param label the PEM label the first block must carry; any label by default.
 */
export async function readPemFile(path: string, what: string, label?: PemLabel): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw fail('PKI_FILE_MISSING', { what, path }, { cause: err });
    }
    throw err;
  }

  const kind = label?.toLowerCase() ?? 'document';
  let blocks: { type: string }[];
  try {
    blocks = PemConverter.decodeWithHeaders(text);
  } catch (err) {
    throw fail('PKI_BAD_PEM', { what, path, kind }, { cause: err });
  }
  if (blocks.length === 0 || (label !== undefined && blocks[0]!.type !== label)) {
    throw fail('PKI_BAD_PEM', { what, path, kind });
  }
  return text;
}

/** Creates a directory (and its parents) owner-only, and narrows it if it existed. */
export async function ensurePrivateDirectory(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: PRIVATE_DIR_MODE });
  await chmod(path, PRIVATE_DIR_MODE);
}

/** Writes a private key with mode 0600, replacing any file at `path`. */
export async function writePrivateFile(path: string, contents: string): Promise<void> {
  await writeFileAtomically(path, contents, PRIVATE_FILE_MODE);
}

/** Writes a certificate or public key with mode 0644, replacing any file at `path`. */
export async function writePublicFile(path: string, contents: string): Promise<void> {
  await writeFileAtomically(path, contents, PUBLIC_FILE_MODE);
}

/**
 * The data goes to a new file created with its final mode, which then replaces `path`. Writing
 * in place would leave the key readable under an old, wider mode until a later chmod, and a
 * crash part-way would leave half a key behind. The chmod covers a umask that stripped bits.
 */
async function writeFileAtomically(path: string, contents: string, mode: number): Promise<void> {
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  // Text files end with a newline, which the PEM encoders here leave out.
  const text = contents.endsWith('\n') ? contents : `${contents}\n`;
  try {
    await writeFile(temporary, text, { mode, flag: 'wx' });
    await chmod(temporary, mode);
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
}
