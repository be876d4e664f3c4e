import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { importJWK, type JWK, type KeyObject, type CryptoKey } from 'jose';
import { createPublicKey } from 'node:crypto';
import { fail } from '../../shared/errors.js';
import { ExportVerifier, type ExportVerification } from '../../registry/audit-export.js';

/**
 * Reads the hub's public audit key: a JWK, a JWK Set (the first key, or the one whose `kid`
 * the export names) or a PEM public key.
 *
 * @throws AUDIT_KEY_INVALID naming the file
 */
export async function readAuditKey(
  path: string,
  kid?: string | null,
): Promise<KeyObject | CryptoKey> {
  const text = await readFile(path, 'utf8').catch((err: unknown) => {
    throw fail('AUDIT_KEY_INVALID', { path, detail: (err as Error).message });
  });
  try {
    if (text.includes('-----BEGIN')) return createPublicKey(text);
    const parsed = JSON.parse(text) as JWK | { keys: JWK[] };
    const keys = 'keys' in parsed ? parsed.keys : [parsed];
    const jwk = keys.find((k) => kid && k.kid === kid) ?? keys[0];
    if (!jwk) throw new Error('the JWK Set is empty');
    if (jwk.d) throw new Error('it holds a private key; give the public key only');
    return (await importJWK({ ...jwk, alg: 'ES256' }, 'ES256')) as CryptoKey;
  } catch (err) {
    throw fail('AUDIT_KEY_INVALID', { path, detail: (err as Error).message });
  }
}

/** Verifies an NDJSON export on disk, streaming it, with the key at `keyPath`. */
export async function verifyExportFile(
  file: string,
  keyPath: string,
): Promise<ExportVerification & { file: string }> {
  // Only the header line is read here, for the key id; the export may be gigabytes.
  const handle = await open(file, 'r').catch((err: unknown) => {
    throw fail('AUDIT_EXPORT_INVALID', { path: file, line: 0, detail: (err as Error).message });
  });
  const head = Buffer.alloc(4096);
  const { bytesRead } = await handle.read(head, 0, head.length, 0);
  await handle.close();
  const first = head.subarray(0, bytesRead).toString('utf8').split('\n')[0] ?? '';
  let kid: string | null = null;
  try {
    kid = (JSON.parse(first) as { keyId?: string }).keyId ?? null;
  } catch {
    // The verifier names the bad line itself.
  }
  const verifier = new ExportVerifier(await readAuditKey(keyPath, kid));
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) await verifier.add(line);
  return { file, ...verifier.finish() };
}
