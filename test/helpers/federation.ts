import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
