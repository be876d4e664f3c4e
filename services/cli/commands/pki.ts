import { Command } from 'commander';
import { resolve } from 'node:path';
import { createLogger } from '../../shared/logger.js';
import {
  initDevelopmentPki,
  issueParticipantFiles,
  pkiLayout,
  readPemFile,
} from '../../shared/pki/index.js';
import { issueAccessToken, isRole } from '../../shared/tokens/index.js';
import { envOption, integerAtLeast, parseList } from '../options.js';
import { InvalidArgumentError } from 'commander';

/** `distillery pki`: the consortium's certificates and token keys. */
export function pkiCommand(): Command {
  const pki = new Command('pki').description(
    'create and manage the consortium PKI: CA, hub and participant certificates, token signing keys',
  );

  pki
    .command('init')
    .description(
      'create a development PKI: CA, hub server certificate, one client certificate per participant, token signing key',
    )
    .addOption(
      envOption('--dir <dir>', 'where to write the PKI', 'DISTILLERY_PKI_DIR').default('pki'),
    )
    .addOption(
      envOption(
        '--participants <ids>',
        'participant identities, comma-separated',
        'DISTILLERY_PARTICIPANTS',
      )
        .default(['bank-a', 'bank-b'])
        .argParser(parseList),
    )
    .addOption(
      envOption('--hub-dns <names>', "DNS names in the hub's certificate", 'DISTILLERY_HUB_DNS')
        .default(['localhost'])
        .argParser(parseList),
    )
    .addOption(
      envOption(
        '--hub-ip <addresses>',
        "IP addresses in the hub's certificate",
        'DISTILLERY_HUB_IP',
      )
        .default(['127.0.0.1', '::1'])
        .argParser(parseList),
    )
    .option('--force', 'replace an existing PKI', false)
    .action(
      async (flags: {
        dir: string;
        participants: string[];
        hubDns: string[];
        hubIp: string[];
        force: boolean;
      }) => {
        const logger = createLogger({ service: 'pki' });
        const layout = await initDevelopmentPki(resolve(flags.dir), {
          participants: flags.participants,
          hubDnsNames: flags.hubDns,
          hubIpAddresses: flags.hubIp,
          force: flags.force,
          logger,
        });
        process.stdout.write(`PKI written to ${layout.dir}\n`);
      },
    );

  pki
    .command('issue')
    .description('issue a client certificate for one more participant, signed by the CA in --dir')
    .addOption(
      envOption('--dir <dir>', 'the PKI directory (holds ca.key)', 'DISTILLERY_PKI_DIR').default(
        'pki',
      ),
    )
    .requiredOption('--participant <id>', 'identity of the participant')
    .addOption(
      envOption('--valid-days <n>', 'certificate lifetime in days', 'DISTILLERY_VALID_DAYS')
        .default(365)
        .argParser(integerAtLeast(1)),
    )
    .option('--force', 'replace existing files of this participant', false)
    .action(
      async (flags: { dir: string; participant: string; validDays: number; force: boolean }) => {
        const logger = createLogger({ service: 'pki' });
        const issued = await issueParticipantFiles(resolve(flags.dir), flags.participant, {
          validDays: flags.validDays,
          force: flags.force,
          logger,
        });
        process.stdout.write(`${issued.cert}\n${issued.key}\n`);
      },
    );

  pki
    .command('token')
    .description(
      'mint an API token (JWT) for an operator or an auditor, signed with the consortium key',
    )
    .addOption(
      envOption(
        '--dir <dir>',
        'the PKI directory (holds jwt/signing.key)',
        'DISTILLERY_PKI_DIR',
      ).default('pki'),
    )
    .requiredOption('--subject <name>', 'who the token speaks for')
    .requiredOption('--role <role>', 'operator or auditor', (value: string) => {
      if (!isRole(value) || value === 'participant') {
        throw new InvalidArgumentError(`"${value}" is not operator or auditor`);
      }
      return value;
    })
    .addOption(
      envOption('--ttl <seconds>', 'lifetime in seconds', 'DISTILLERY_TOKEN_TTL')
        .default(900)
        .argParser(integerAtLeast(1)),
    )
    .addOption(
      envOption('--issuer <iss>', '`iss` claim', 'DISTILLERY_TOKEN_ISSUER').default(
        'distillery-consortium',
      ),
    )
    .addOption(
      envOption('--audience <aud>', '`aud` claim', 'DISTILLERY_TOKEN_AUDIENCE').default(
        'distillery-hub',
      ),
    )
    .action(
      async (flags: {
        dir: string;
        subject: string;
        role: 'operator' | 'auditor';
        ttl: number;
        issuer: string;
        audience: string;
      }) => {
        const layout = pkiLayout(resolve(flags.dir));
        const token = await issueAccessToken({
          privateKeyPem: await readPemFile(
            layout.jwtPrivateKey,
            'token signing key',
            'PRIVATE KEY',
          ),
          issuer: flags.issuer,
          audience: flags.audience,
          subject: flags.subject,
          role: flags.role,
          ttlSeconds: flags.ttl,
        });
        process.stdout.write(`${token}\n`);
      },
    );

  return pki;
}
