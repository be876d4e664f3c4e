import { Command, InvalidArgumentError, Option } from 'commander';
import { resolve } from 'node:path';
import { fail } from '../../shared/errors.js';
import { pkiLayout } from '../../shared/pki/index.js';
import type { AccessLogRecord } from '../../registry/access-log.js';
import { readRequiredFile } from '../../shared/config-file.js';
import { callHubApi, expectOk } from '../https-client.js';
import { envOption, integerAtLeast } from '../options.js';

interface ConnectionFlags {
  hubUrl: string;
  caCert?: string;
  pkiDir: string;
  token?: string;
  tokenFile?: string;
}

function withConnection(command: Command): Command {
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
    .addOption(envOption('--token <jwt>', 'auditor token', 'DISTILLERY_TOKEN'))
    .addOption(
      envOption('--token-file <file>', 'file holding the auditor token', 'DISTILLERY_TOKEN_FILE'),
    );
}

async function connection(flags: ConnectionFlags) {
  const caPath = flags.caCert ?? pkiLayout(resolve(flags.pkiDir)).caCert;
  const caPem = await readRequiredFile(caPath, 'CA certificate');
  const token =
    flags.token ??
    (flags.tokenFile ? (await readRequiredFile(flags.tokenFile, 'token file')).trim() : undefined);
  if (!token) throw fail('TOKEN_MISSING');
  return { baseUrl: flags.hubUrl, caPem, token };
}

/** `distillery audit`: what an auditor runs against the hub's access log. */
export function auditCommand(): Command {
  const audit = new Command('audit').description(
    "query and verify the hub's access log with an auditor token",
  );

  withConnection(audit.command('log'))
    .description('list access log entries, oldest first')
    .option('--actor <id>', 'only entries of this actor (participant id, token subject)')
    .option(
      '--action <action>',
      'only this action: subscribe, manifest, download, handshake, publish, ...',
    )
    .option('--outcome <outcome>', 'allowed, denied or error', (value: string) => {
      if (!['allowed', 'denied', 'error'].includes(value)) {
        throw new InvalidArgumentError(`"${value}" is not allowed, denied or error`);
      }
      return value;
    })
    .option('--since <time>', 'only entries at or after this ISO 8601 time', (value: string) => {
      const at = new Date(value);
      if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(at.getTime())) {
        throw new InvalidArgumentError(
          `"${value}" is not an ISO 8601 time such as 2026-12-03T09:00:00Z`,
        );
      }
      return at.toISOString();
    })
    .option('--limit <n>', 'entries per page', integerAtLeast(1), 500)
    .addOption(
      new Option('--format <format>', 'output format')
        .choices(['table', 'json', 'ndjson'])
        .default('table'),
    )
    .action(
      async (
        flags: ConnectionFlags & {
          actor?: string;
          action?: string;
          outcome?: string;
          since?: string;
          limit: number;
          format: string;
        },
      ) => {
        const conn = await connection(flags);
        const entries: AccessLogRecord[] = [];
        let cursor: string | null = null;
        do {
          const query = new URLSearchParams({ limit: String(flags.limit) });
          if (flags.actor) query.set('actor', flags.actor);
          if (flags.action) query.set('action', flags.action);
          if (flags.outcome) query.set('outcome', flags.outcome);
          if (flags.since) query.set('from', flags.since);
          if (cursor) query.set('cursor', cursor);
          const page = expectOk(
            await callHubApi<{ entries: AccessLogRecord[]; nextCursor: string | null }>({
              ...conn,
              method: 'GET',
              path: `/v1/audit/log?${query}`,
            }),
            'audit log query',
          );
          entries.push(...page.entries);
          cursor = page.nextCursor;
        } while (cursor);
        writeEntries(entries, flags.format);
      },
    );

  withConnection(audit.command('verify'))
    .description(
      "ask the hub to recompute the access log's hash chain and report where it first breaks",
    )
    .action(async (flags: ConnectionFlags) => {
      const conn = await connection(flags);
      const report = expectOk(
        await callHubApi<{ ok: boolean }>({ ...conn, method: 'GET', path: '/v1/audit/verify' }),
        'chain verification',
      );
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      if (!report.ok) process.exitCode = 2;
    });

  return audit;
}

function writeEntries(entries: AccessLogRecord[], format: string): void {
  if (format === 'json') {
    process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
    return;
  }
  if (format === 'ndjson') {
    for (const entry of entries) process.stdout.write(`${JSON.stringify(entry)}\n`);
    return;
  }
  process.stdout.write(
    `${'seq'.padStart(5)}  ${'time'.padEnd(24)}  ${'outcome'.padEnd(7)}  ${'actor'.padEnd(22)}  ${'action'.padEnd(12)}  resource\n`,
  );
  for (const e of entries) {
    const reason = e.reason ? `  (${e.reason})` : '';
    process.stdout.write(
      `${e.sequence.padStart(5)}  ${e.at}  ${e.outcome.padEnd(7)}  ${e.actor.padEnd(22)}  ${e.action.padEnd(12)}  ${e.resource.slice(0, 24)}${reason}\n`,
    );
  }
}
