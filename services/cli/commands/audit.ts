import { Command, InvalidArgumentError, Option } from 'commander';
import { resolve } from 'node:path';
import { fail } from '../../shared/errors.js';
import type { AccessLogRecord } from '../../registry/access-log.js';
import { callHubApi, callHubApiText, expectOk } from '../https-client.js';
import { verifyExportFile } from './audit-verify-file.js';
import { writeFile } from 'node:fs/promises';
import { integerAtLeast } from '../options.js';
import { connection, withConnection, type ConnectionFlags } from './hub-connection.js';

/** `distillery audit`: what an auditor runs against the hub's access log. */
export function auditCommand(): Command {
  const audit = new Command('audit').description(
    "query and verify the hub's access log with an auditor token",
  );

  withConnection(audit.command('log'), 'auditor')
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

  withConnection(audit.command('verify'), 'auditor')
    .description(
      'verify the access log: offline, an NDJSON export FILE against the hub audit key (--key); ' +
        'without FILE, ask the hub to recompute its chain',
    )
    .argument('[file]', 'NDJSON export written by `distillery audit export`')
    .option('--key <file>', "the hub's audit key: JWK, JWK Set (GET /v1/audit/keys) or PEM")
    .action(async (file: string | undefined, flags: ConnectionFlags & { key?: string }) => {
      if (file) {
        if (!flags.key) {
          throw new InvalidArgumentError(
            "--key <file> is required to verify an export offline: the hub's audit key (distillery audit key --out FILE)",
          );
        }
        const report = await verifyExportFile(file, flags.key);
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        if (!report.ok) process.exitCode = 2;
        return;
      }
      const conn = await connection(flags);
      const report = expectOk(
        await callHubApi<{ ok: boolean }>({ ...conn, method: 'GET', path: '/v1/audit/verify' }),
        'chain verification',
      );
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      if (!report.ok) process.exitCode = 2;
    });

  withConnection(audit.command('export'), 'auditor')
    .description(
      'download the whole access log as NDJSON, ending at a chain head the hub signs for it, for offline verification',
    )
    .requiredOption('--out <file>', 'where to write the export')
    .action(async (flags: ConnectionFlags & { out: string }) => {
      const conn = await connection(flags);
      const response = await callHubApiText({
        ...conn,
        method: 'GET',
        path: '/v1/audit/export',
      });
      if (response.status !== 200) {
        throw new Error(
          `audit export failed with HTTP ${response.status}: ${response.text.slice(0, 300)}`,
        );
      }
      await writeFile(flags.out, response.text);
      const entries = response.text.split('\n').filter((l) => l.includes('"type":"entry"')).length;
      process.stdout.write(`${entries} entries written to ${flags.out}\n`);
    });

  withConnection(audit.command('key'), 'auditor')
    .description("fetch the hub's public audit key (a JWK Set) to verify exports with")
    .requiredOption('--out <file>', 'where to write the JWK Set')
    .action(async (flags: ConnectionFlags) => {
      const conn = await connection({ ...flags, token: flags.token ?? 'none' });
      const jwks = expectOk(
        await callHubApi<{ keys: unknown[] }>({ ...conn, method: 'GET', path: '/v1/audit/keys' }),
        'audit key',
      );
      await writeFile(
        (flags as ConnectionFlags & { out: string }).out,
        `${JSON.stringify(jwks, null, 2)}\n`,
      );
      process.stdout.write(
        `audit key written to ${(flags as ConnectionFlags & { out: string }).out}\n`,
      );
    });

  withConnection(audit.command('checkpoint'), 'auditor')
    .description('ask the hub to sign its current chain head now')
    .action(async (flags: ConnectionFlags) => {
      const conn = await connection(flags);
      const body = expectOk(
        await callHubApi({ ...conn, method: 'POST', path: '/v1/audit/checkpoints', body: {} }),
        'chain head signature',
      );
      process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
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
