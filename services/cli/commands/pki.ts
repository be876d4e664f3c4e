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
import { MAX_API_TOKEN_TTL_SECONDS } from '../../shared/tokens/issue.js';
import { readPemForUpload } from '../local-files.js';
import { envOption, integerAtLeast, parseList } from '../options.js';
import { InvalidArgumentError } from 'commander';
import { basename, dirname, join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import {
  createCertificateSigningRequest,
  ensurePrivateDirectory,
  signCertificateSigningRequest,
  writePrivateFile,
  writePublicFile,
} from '../../shared/pki/index.js';
import { callHubApi, expectOk } from '../https-client.js';
import { connection, withConnection, type ConnectionFlags } from './hub-connection.js';

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
      envOption(
        '--ttl <seconds>',
        `lifetime in seconds, at most ${MAX_API_TOKEN_TTL_SECONDS} (30 days)`,
        'DISTILLERY_TOKEN_TTL',
      )
        .default(900)
        .argParser((value: string) => {
          const ttl = integerAtLeast(1)(value);
          if (ttl > MAX_API_TOKEN_TTL_SECONDS) {
            throw new InvalidArgumentError(
              `${value} seconds is longer than the maximum of ${MAX_API_TOKEN_TTL_SECONDS} (30 days); the hub refuses longer-lived tokens`,
            );
          }
          return ttl;
        }),
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

  pki
    .command('request')
    .description(
      "on a participant's machine: make its own key and a certificate signing request; the key never leaves",
    )
    .requiredOption('--identity <id>', 'identity to ask for, e.g. bank-c')
    .option('--out <dir>', 'where to write <id>.key (mode 0600) and <id>.csr', '.')
    .action(async (flags: { identity: string; out: string }) => {
      const { csrPem, keyPem } = await createCertificateSigningRequest({
        identity: flags.identity,
      });
      const dir = resolve(flags.out);
      await ensurePrivateDirectory(dir);
      const keyPath = join(dir, `${flags.identity}.key`);
      const csrPath = join(dir, `${flags.identity}.csr`);
      await writePrivateFile(keyPath, keyPem);
      await writePublicFile(csrPath, csrPem);
      process.stdout.write(`${keyPath}\n${csrPath}\nsend ${csrPath} to the hub operator\n`);
    });

  pki
    .command('approve')
    .description(
      'sign a certificate signing request with the CA in --dir, offline; register the result with `pki register` or upload it with `pki approve-request --cert`',
    )
    .addOption(
      envOption('--dir <dir>', 'the PKI directory (holds ca.key)', 'DISTILLERY_PKI_DIR').default(
        'pki',
      ),
    )
    .requiredOption('--csr <file>', 'the request, as `pki request` wrote it')
    .option('--out <file>', 'where to write the certificate (default: the request with .crt)')
    .addOption(
      envOption('--valid-days <n>', 'certificate lifetime in days', 'DISTILLERY_VALID_DAYS')
        .default(365)
        .argParser(integerAtLeast(1)),
    )
    .action(async (flags: { dir: string; csr: string; out?: string; validDays: number }) => {
      const layout = pkiLayout(resolve(flags.dir));
      const ca = {
        certPem: await readPemFile(layout.caCert, 'CA certificate', 'CERTIFICATE'),
        keyPem: await readPemFile(layout.caKey, 'CA private key', 'PRIVATE KEY'),
      };
      const csrPem = await readPemFile(
        flags.csr,
        'certificate signing request',
        'CERTIFICATE REQUEST',
      );
      const signed = await signCertificateSigningRequest(ca, csrPem, {
        validDays: flags.validDays,
      });
      const out =
        flags.out ?? join(dirname(flags.csr), `${basename(flags.csr).replace(/\.csr$/, '')}.crt`);
      await writePublicFile(out, signed.certPem);
      process.stdout.write(
        `${out}\nidentity ${signed.identity}  serial ${signed.serialNumber}  sha256 ${signed.fingerprint256}\n`,
      );
    });

  withConnection(pki.command('submit'), 'operator')
    .description(
      "hand a participant's certificate signing request to the hub (pending until approved)",
    )
    .requiredOption('--csr <file>', 'the request')
    .action(async (flags: ConnectionFlags & { csr: string }) => {
      // Checked before anything is sent: a private key given by mistake must not leave here.
      const csrPem = await readPemForUpload(
        flags.csr,
        'certificate signing request',
        'CERTIFICATE REQUEST',
      );
      const conn = await connection(flags);
      const body = expectOk(
        await callHubApi<{ enrolment: { id: string } }>({
          ...conn,
          method: 'POST',
          path: '/v1/enrolments',
          body: { csrPem },
        }),
        'enrolment request',
      );
      process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    });

  withConnection(pki.command('approve-request'), 'operator')
    .description(
      'approve a pending enrolment at the hub: the hub signs it with its CA key, or takes --cert signed offline',
    )
    .requiredOption('--request <id>', 'the enrolment request id')
    .option('--cert <file>', 'certificate signed offline with `pki approve`')
    .option('--out <file>', 'where to write the issued certificate')
    .action(async (flags: ConnectionFlags & { request: string; cert?: string; out?: string }) => {
      const certPem = flags.cert
        ? await readPemForUpload(flags.cert, 'certificate', 'CERTIFICATE')
        : undefined;
      const conn = await connection(flags);
      const body = expectOk(
        await callHubApi<{ certPem: string; certificate: unknown }>({
          ...conn,
          method: 'POST',
          path: `/v1/enrolments/${encodeURIComponent(flags.request)}/approve`,
          body: certPem ? { certPem } : {},
        }),
        'enrolment approval',
      );
      if (flags.out) await writePublicFile(flags.out, body.certPem);
      process.stdout.write(`${JSON.stringify(body.certificate, null, 2)}\n`);
    });

  withConnection(pki.command('register'), 'operator')
    .description('record at the hub a certificate issued outside it (pki issue, pki approve)')
    .requiredOption('--cert <file>', 'the certificate')
    .action(async (flags: ConnectionFlags & { cert: string }) => {
      const certPem = await readPemForUpload(flags.cert, 'certificate', 'CERTIFICATE');
      const conn = await connection(flags);
      const body = expectOk(
        await callHubApi({ ...conn, method: 'POST', path: '/v1/certificates', body: { certPem } }),
        'certificate registration',
      );
      process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    });

  withConnection(pki.command('revoke'), 'operator')
    .description('revoke a certificate at the hub: refused from its next call, open streams closed')
    .argument('<certificate>', 'serial number (hex), SHA-256 fingerprint, or a certificate file')
    .option('--reason <text>', 'why, for the access log')
    .action(async (ref: string, flags: ConnectionFlags & { reason?: string }) => {
      let id = ref;
      if (!/^[0-9a-fA-F:]+$/.test(ref)) {
        id = new X509Certificate(
          await readPemForUpload(ref, 'certificate', 'CERTIFICATE'),
        ).fingerprint256
          .replace(/:/g, '')
          .toLowerCase();
      }
      const conn = await connection(flags);
      const body = expectOk(
        await callHubApi({
          ...conn,
          method: 'POST',
          path: `/v1/certificates/${encodeURIComponent(id)}/revoke`,
          body: flags.reason ? { reason: flags.reason } : {},
        }),
        'revocation',
      );
      process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    });

  withConnection(pki.command('certificates'), 'operator')
    .description('list the certificates the hub has recorded')
    .option('--participant <id>', 'only this participant')
    .action(async (flags: ConnectionFlags & { participant?: string }) => {
      const conn = await connection(flags);
      const query = flags.participant
        ? `?participant=${encodeURIComponent(flags.participant)}`
        : '';
      const body = expectOk(
        await callHubApi({ ...conn, method: 'GET', path: `/v1/certificates${query}` }),
        'certificate list',
      );
      process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    });

  return pki;
}
