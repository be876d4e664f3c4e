import { Command } from 'commander';
import { callHubApi, expectOk } from '../https-client.js';
import { integerAtLeast } from '../options.js';
import { parseVersionId } from '../shared-options.js';
import { connection, withConnection, type ConnectionFlags } from './hub-connection.js';

type StreamFlags = ConnectionFlags & { stream: string };

/** Prints an API answer as the JSON it is, for people and for scripts alike. */
function print(body: unknown): void {
  process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
}

/**
 * `distillery stream`: the operator's and auditor's view of a knowledge stream over the
 * hub's HTTPS API: its versions and durable events, deprecation and rollback.
 */
export function streamCommand(): Command {
  const stream = new Command('stream').description(
    "a knowledge stream's versions and events; deprecate a version or roll the stream back",
  );

  withConnection(stream.command('versions'), 'operator or auditor')
    .description('list the versions of a stream, oldest first')
    .option('--stream <name>', 'the knowledge stream', 'default')
    .action(async (flags: StreamFlags) => {
      const conn = await connection(flags);
      const path = `/v1/streams/${encodeURIComponent(flags.stream)}/versions`;
      print(expectOk(await callHubApi({ ...conn, method: 'GET', path }), 'version list'));
    });

  withConnection(stream.command('events'), 'operator or auditor')
    .description("list the stream's durable events (published, deprecated, rolled_back)")
    .option('--stream <name>', 'the knowledge stream', 'default')
    .option('--after <sequence>', 'only events after this event sequence', integerAtLeast(0), 0)
    .action(async (flags: StreamFlags & { after: number }) => {
      const conn = await connection(flags);
      const query = new URLSearchParams({ after: String(flags.after) });
      const path = `/v1/streams/${encodeURIComponent(flags.stream)}/events?${query}`;
      print(expectOk(await callHubApi({ ...conn, method: 'GET', path }), 'event list'));
    });

  withConnection(stream.command('deprecate'), 'operator')
    .description(
      'deprecate a version: participants fall back to the latest earlier version that is not deprecated',
    )
    .argument('<version>', 'the version id (64 hex digits)', parseVersionId)
    .option('--reason <text>', 'why, for the stream event and the access log')
    .action(async (version: string, flags: ConnectionFlags & { reason?: string }) => {
      const conn = await connection(flags);
      const body = expectOk(
        await callHubApi({
          ...conn,
          method: 'POST',
          path: `/v1/versions/${version}/deprecate`,
          body: flags.reason ? { reason: flags.reason } : {},
        }),
        'deprecation',
      );
      print(body);
    });

  withConnection(stream.command('rollback'), 'operator')
    .description('make an earlier, not deprecated version the current one of its stream')
    .requiredOption('--to <version>', 'the version id to roll back to', parseVersionId)
    .option('--stream <name>', 'the knowledge stream', 'default')
    .option('--reason <text>', 'why, for the stream event and the access log')
    .action(async (flags: StreamFlags & { to: string; reason?: string }) => {
      const conn = await connection(flags);
      const body = expectOk(
        await callHubApi({
          ...conn,
          method: 'POST',
          path: `/v1/streams/${encodeURIComponent(flags.stream)}/rollback`,
          body: { versionId: flags.to, ...(flags.reason ? { reason: flags.reason } : {}) },
        }),
        'rollback',
      );
      print(body);
    });

  return stream;
}
