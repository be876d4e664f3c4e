import type { Command } from 'commander';
import { resolve } from 'node:path';
import { fail } from '../../shared/errors.js';
import { pkiLayout } from '../../shared/pki/index.js';
import { readRequiredFile } from '../../shared/config-file.js';
import { readTokenFile } from '../local-files.js';
import { envOption } from '../options.js';

/** Flags of a command that calls the hub's HTTPS API. */
export interface ConnectionFlags {
  hubUrl: string;
  caCert?: string;
  pkiDir: string;
  token?: string;
  tokenFile?: string;
}

/** Adds --hub-url, --pki-dir, --ca-cert, --token and --token-file to `command`. */
export function withConnection(command: Command, who: string): Command {
  return command
    .addOption(
      envOption('--hub-url <url>', "base URL of the hub's HTTPS API", 'DISTILLERY_HUB_URL').default(
        'https://127.0.0.1:8443',
      ),
    )
    .addOption(
      envOption('--pki-dir <dir>', 'directory with ca.crt', 'DISTILLERY_PKI_DIR').default('pki'),
    )
    .addOption(
      envOption(
        '--ca-cert <file>',
        'CA that signed the hub certificate (default <pki-dir>/ca.crt)',
        'DISTILLERY_CA_CERT',
      ),
    )
    .addOption(envOption('--token <jwt>', `${who} token`, 'DISTILLERY_TOKEN'))
    .addOption(
      envOption('--token-file <file>', `file holding the ${who} token`, 'DISTILLERY_TOKEN_FILE'),
    );
}

/** The base URL, CA and token the flags name; TOKEN_MISSING when no token is given. */
export async function connection(
  flags: ConnectionFlags,
): Promise<{ baseUrl: string; caPem: string; token: string }> {
  const caPath = flags.caCert ?? pkiLayout(resolve(flags.pkiDir)).caCert;
  const caPem = await readRequiredFile(caPath, 'CA certificate');
  const token = flags.token ?? (flags.tokenFile ? await readTokenFile(flags.tokenFile) : undefined);
  if (!token) throw fail('TOKEN_MISSING');
  return { baseUrl: flags.hubUrl, caPem, token };
}
