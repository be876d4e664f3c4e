import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HubOptions } from '../../services/hub/hub.js';
import type { HubDataFiles } from '../../services/hub/hub-data.js';
import type { ParticipantOptions } from '../../services/participant/participant.js';
import { initDevelopmentPki, type PkiLayout } from '../../services/shared/pki/index.js';
import { splitFederation, type FederationSplit } from '../../services/cli/demo/split-federation.js';

/** A scratch federation: a temporary directory, a development PKI and a split of real data. */
export interface FederationFixture {
  dir: string;
  pki: PkiLayout;
  split: FederationSplit;
  /** Removes the directory and everything in it. */
  remove(): Promise<void>;
}

/**
 * Makes a PKI for `participants` and splits data/lending_club.csv between a hub and them
 * by `seed`, under a new temporary directory named after `purpose`.
 */
export async function createFederationFixture(
  purpose: string,
  seed: number,
  participants: string[] = ['bank-a'],
): Promise<FederationFixture> {
  const dir = await mkdtemp(join(tmpdir(), `distillery-${purpose}-`));
  const pki = await initDevelopmentPki(join(dir, 'pki'), { participants });
  const split = splitFederation({
    input: 'data/lending_club.csv',
    dataset: 'lending_club',
    outDir: join(dir, 'parties'),
    seed,
    participants,
  });
  return { dir, pki, split, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * The hub's data files of a split of data/lending_club.csv: its private.csv (or
 * `privateRows`), its transfer.csv and, unless `testRows` is false, its test.csv.
 */
export function splitHubFiles(
  split: { hubDir: string },
  choices: Pick<FixtureHubChoices, 'privateRows' | 'testRows'> = {},
): HubDataFiles {
  return {
    dataset: 'lending_club',
    privateRows: choices.privateRows ?? join(split.hubDir, 'private.csv'),
    transferRows: join(split.hubDir, 'transfer.csv'),
    ...(choices.testRows === false ? {} : { testRows: join(split.hubDir, 'test.csv') }),
  };
}

/** What {@link fixtureHubOptions} may set otherwise. */
export interface FixtureHubChoices {
  /** The teacher's rows; default the hub's private.csv of the split. */
  privateRows?: string;
  /** Whether the hub reads the split's test.csv; default true. */
  testRows?: boolean;
  /** `iss` and `aud` of the hub's API tokens; default "i" and "a". */
  issuer?: string;
  audience?: string;
}

/**
 * The options of a hub on a scratch federation that every test hub shares: its state
 * directory under the fixture, the hub's files of the split, gRPC and HTTPS on 127.0.0.1
 * at ports the system picks, and the fixture's TLS files and token key.
 */
export function fixtureHubOptions(
  fixture: { dir: string; pki: PkiLayout; split: { hubDir: string } },
  choices: FixtureHubChoices = {},
): Pick<HubOptions, 'stateDir' | 'files' | 'grpc' | 'http' | 'tls' | 'tokens'> {
  const { dir, pki, split } = fixture;
  return {
    stateDir: join(dir, 'hub-state'),
    files: splitHubFiles(split, choices),
    grpc: { host: '127.0.0.1', port: 0 },
    http: { host: '127.0.0.1', port: 0 },
    tls: { caCert: pki.caCert, cert: pki.hubCert, key: pki.hubKey },
    tokens: {
      publicKey: pki.jwtPublicKey,
      issuer: choices.issuer ?? 'i',
      audience: choices.audience ?? 'a',
    },
  };
}

/**
 * The options of participant `id` of a scratch federation that every test node shares: the
 * hub at `hubAddress`, the participant's development certificate, stream "default", state
 * under `<dir>/<id>-state` and its own, transfer and test files of the split.
 */
export function fixtureParticipantOptions(
  fixture: { dir: string; pki: PkiLayout; split: FederationSplit },
  id: string,
  hubAddress: string,
): Pick<ParticipantOptions, 'id' | 'hub' | 'tls' | 'stream' | 'stateDir' | 'files'> {
  const { dir, pki, split } = fixture;
  return {
    id,
    hub: { address: hubAddress },
    tls: {
      caCert: pki.caCert,
      cert: pki.participant(id).cert,
      key: pki.participant(id).key,
    },
    stream: 'default',
    stateDir: join(dir, `${id}-state`),
    files: {
      dataset: 'lending_club',
      ownRows: join(split.participantDirs[id]!, 'own.csv'),
      transferRows: join(split.participantDirs[id]!, 'transfer.csv'),
      testRows: join(split.participantDirs[id]!, 'test.csv'),
    },
  };
}
