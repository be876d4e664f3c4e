import { Command, InvalidArgumentError } from 'commander';
import { MAX_GRANT_SEQUENCE } from '../../registry/grants.js';
import { readJsonFile } from '../local-files.js';
import { callHubApi, expectOk } from '../https-client.js';
import { integerAtLeast, parseList } from '../options.js';
import { connection, withConnection, type ConnectionFlags } from './hub-connection.js';

interface CreateFlags extends ConnectionFlags {
  participant: string;
  stream: string;
  kinds: string[];
  layers?: string[];
  from?: number;
  to?: number;
  expires?: string;
  policy?: string;
}

/** `distillery grant`: the operator's view of who may receive which knowledge. */
export function grantCommand(): Command {
  const grant = new Command('grant').description(
    'create, list and revoke grants: which participant may receive which kinds, layers and versions of a stream',
  );

  withConnection(grant.command('create'), 'operator')
    .description('grant a participant knowledge of a stream')
    .requiredOption('--participant <id>', 'the participant')
    .option('--stream <name>', 'the knowledge stream', 'default')
    .requiredOption(
      '--kinds <kinds>',
      'comma-separated: logits, probabilities, hidden, artefact',
      parseList,
    )
    .option('--layers <names>', 'hidden layers for kind hidden, comma-separated, or *', parseList)
    .option('--from <sequence>', 'first version sequence granted (default 1)', grantSequence)
    .option('--to <sequence>', 'last version sequence granted (default: no end)', grantSequence)
    .option('--expires <time>', 'ISO 8601 time the grant ends', (value: string) => {
      if (Number.isNaN(new Date(value).getTime())) {
        throw new InvalidArgumentError(`"${value}" is not an ISO 8601 time`);
      }
      return new Date(value).toISOString();
    })
    .option('--policy <file>', 'release policy JSON (docs/privacy.md)')
    .action(async (flags: CreateFlags) => {
      const conn = await connection(flags);
      const policy = flags.policy
        ? ((await readJsonFile(flags.policy, 'release policy')) as object)
        : undefined;
      const body = expectOk(
        await callHubApi({
          ...conn,
          method: 'POST',
          path: '/v1/grants',
          body: {
            participant: flags.participant,
            stream: flags.stream,
            kinds: flags.kinds,
            ...(flags.layers ? { layers: flags.layers } : {}),
            ...(flags.from ? { fromSequence: flags.from } : {}),
            ...(flags.to ? { toSequence: flags.to } : {}),
            ...(flags.expires ? { expiresAt: flags.expires } : {}),
            ...(policy ? { policy } : {}),
          },
        }),
        'grant creation',
      );
      process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    });

  withConnection(grant.command('list'), 'operator')
    .description('list grants')
    .option('--participant <id>', 'only this participant')
    .option('--stream <name>', 'only this stream')
    .option('--all', 'include revoked grants', false)
    .action(
      async (flags: ConnectionFlags & { participant?: string; stream?: string; all: boolean }) => {
        const conn = await connection(flags);
        const query = new URLSearchParams();
        if (flags.participant) query.set('participant', flags.participant);
        if (flags.stream) query.set('stream', flags.stream);
        if (flags.all) query.set('includeRevoked', 'true');
        const body = expectOk(
          await callHubApi({ ...conn, method: 'GET', path: `/v1/grants?${query}` }),
          'grant list',
        );
        process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
      },
    );

  withConnection(grant.command('revoke'), 'operator')
    .description('revoke a grant; it applies from the next call and the next announcement')
    .argument('<id>', 'the grant id')
    .action(async (id: string, flags: ConnectionFlags) => {
      const conn = await connection(flags);
      const body = expectOk(
        await callHubApi({
          ...conn,
          method: 'POST',
          path: `/v1/grants/${encodeURIComponent(id)}/revoke`,
          body: {},
        }),
        'grant revocation',
      );
      process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    });

  return grant;
}

/** A version sequence of a grant: 1 to {@link MAX_GRANT_SEQUENCE}, checked before any call. */
function grantSequence(value: string): number {
  const n = integerAtLeast(1)(value);
  if (n > MAX_GRANT_SEQUENCE) {
    throw new InvalidArgumentError(`${value} is larger than ${MAX_GRANT_SEQUENCE}`);
  }
  return n;
}
