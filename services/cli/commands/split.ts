import { Command } from 'commander';
import { resolve } from 'node:path';
import { splitFederation } from '../demo/split-federation.js';
import { envOption, integerAtLeast, parseList } from '../options.js';

/** `distillery split`: cut a labelled dataset into what each party of a federation holds. */
export function splitCommand(): Command {
  return new Command('split')
    .description(
      'split a labelled CSV into hub, transfer, per-participant and test files (stratified, by seed)',
    )
    .requiredOption('--input <file>', 'labelled CSV')
    .addOption(
      envOption('--dataset <name>', 'lending_club or credit_data', 'DISTILLERY_DATASET').default(
        'lending_club',
      ),
    )
    .requiredOption('--out <dir>', 'output directory: <out>/hub, <out>/<participant>')
    .addOption(
      envOption('--participants <ids>', 'participant identities', 'DISTILLERY_PARTICIPANTS')
        .default(['bank-a', 'bank-b'])
        .argParser(parseList),
    )
    .addOption(
      envOption('--seed <n>', 'split seed', 'DISTILLERY_SEED')
        .default(0)
        .argParser(integerAtLeast(0)),
    )
    .option('--force', 'replace the files of an earlier split', false)
    .action(
      (flags: {
        input: string;
        dataset: string;
        out: string;
        participants: string[];
        seed: number;
        force: boolean;
      }) => {
        const split = splitFederation({
          input: resolve(flags.input),
          dataset: flags.dataset,
          outDir: resolve(flags.out),
          seed: flags.seed,
          participants: flags.participants,
          force: flags.force,
        });
        process.stdout.write(`${JSON.stringify(split, null, 2)}\n`);
      },
    );
}
