import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { importJWK, type JWK, type KeyObject, type CryptoKey } from 'jose';
import { createPublicKey } from 'node:crypto';
import { fail } from '../../shared/errors.js';
import { readLocalFile } from '../local-files.js';
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
): Promise<{ key: KeyObject | CryptoKey; keyId: string | null }> {
  const text = await readLocalFile(path, 'audit key');
  try {
    if (text.includes('PRIVATE KEY-----')) {
      throw new Error('it holds a private key; give the public key only');
    }
    if (text.includes('-----BEGIN CERTIFICATE')) {
      throw new Error("it is a certificate, not the hub's audit key (distillery audit key)");
    }
    if (text.includes('-----BEGIN')) {
      const key = createPublicKey(text);
      // A certificate (the CA's, say) parses as a public key too, but is not the audit key.
      if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
        throw new Error('it is not a P-256 key');
      return { key, keyId: null };
    }
    const parsed = JSON.parse(text) as JWK | { keys: JWK[] };
    const keys = 'keys' in parsed ? parsed.keys : [parsed];
    const jwk = keys.find((k) => kid && k.kid === kid) ?? keys[0];
    if (!jwk) throw new Error('the JWK Set is empty');
    if (jwk.d) throw new Error('it holds a private key; give the public key only');
    const key = (await importJWK({ ...jwk, alg: 'ES256' }, 'ES256')) as CryptoKey;
    return { key, keyId: jwk.kid ?? null };
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
  const info = await stat(file).catch((err: unknown) => {
    throw fail('AUDIT_EXPORT_INVALID', { path: file, line: 0, detail: (err as Error).message });
  });
  if (info.isDirectory()) {
    throw fail('AUDIT_EXPORT_INVALID', {
      path: file,
      line: 0,
      detail: 'it is a directory; give the NDJSON file `distillery audit export` wrote',
    });
  }
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
  const { key, keyId } = await readAuditKey(keyPath, kid);
  const verifier = new ExportVerifier(key, { keyId });
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) await verifier.add(line);
  return { file, ...verifier.finish() };
}
