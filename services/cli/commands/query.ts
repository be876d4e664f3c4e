import { Command } from 'commander';
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { readUnlabelledRows } from '../../shared/data/csv.js';
import { getDatasetSchema } from '../../shared/data/dataset-schema.js';
import { encodeRows, featureDim, parsePreprocessorSpec } from '../../shared/data/preprocessing.js';
import { parseManifest } from '../../shared/knowledge/manifest.js';
import { assertValidIdentity, pkiLayout } from '../../shared/pki/index.js';
import {
  addDatasetOption,
  addHubClientOptions,
  addTlsFileOptions,
  parseVersionId,
} from '../shared-options.js';
import { envOption, numberBetween } from '../options.js';

interface QueryFlags {
  id: string;
  hub: string;
  serverName?: string;
  stream: string;
  knowledgeVersion: string;
  input: string;
  out: string;
  temperature: number;
  dataset: string;
  pkiDir: string;
  caCert?: string;
  cert?: string;
  key?: string;
}

/**
 * `distillery query`: query mode from a partner bank. Sends the bank's own unlabelled rows
 * (a CSV, encoded with the preprocessing of a knowledge version) to the hub and writes the
 * teacher's states for them, as the bank's grant releases them, to a JSON file.
 */
export function queryCommand(): Command {
  const command = addHubClientOptions(
    new Command('query').description(
      "query mode: send the bank's own unlabelled rows to the hub and receive the teacher's states for them under the bank's grant (release policy, differential privacy and budget as the grant sets them)",
    ),
  )
    .addOption(
      envOption(
        '--stream <name>',
        'knowledge stream whose grant applies',
        'DISTILLERY_STREAM',
      ).default('default'),
    )
    .requiredOption(
      '--knowledge-version <id>',
      'knowledge version whose preprocessing encodes the rows (64 hex digits)',
      parseVersionId,
    )
    .requiredOption('--input <file>', "CSV of the bank's rows (a label column is ignored)")
    .option('--out <file>', 'where to write the answer (JSON)', 'query-answer.json')
    .option(
      '--temperature <t>',
      'temperature of released probabilities (the grant may set a floor)',
      numberBetween(1e-3, 1e3),
      1,
    );
  addDatasetOption(command);
  addTlsFileOptions(command, {
    cert: 'client certificate (default <pki-dir>/participants/<id>.crt)',
    key: 'client private key (default <pki-dir>/participants/<id>.key)',
  });
  return command.action(async (flags: QueryFlags) => {
    const id = assertValidIdentity(flags.id);
    const { createHubClient } = await import('../../participant/hub-client.js');
    const { queryTeacher } = await import('../../participant/query-client.js');
    const pki = pkiLayout(resolve(flags.pkiDir));
    const client = createHubClient({
      address: flags.hub,
      caPem: await readFile(flags.caCert ?? pki.caCert),
      certPem: await readFile(flags.cert ?? pki.participant(id).cert),
      keyPem: await readFile(flags.key ?? pki.participant(id).key),
      ...(flags.serverName ? { serverName: flags.serverName } : {}),
    });
    try {
      const manifest = parseManifest(
        flags.knowledgeVersion,
        await client.getManifest(flags.knowledgeVersion),
      );
      const spec = parsePreprocessorSpec(manifest.preprocessing);
      const rows = readUnlabelledRows(resolve(flags.input), getDatasetSchema(flags.dataset));
      const answer = await queryTeacher(client, {
        stream: flags.stream,
        x: encodeRows(spec, rows),
        features: featureDim(spec),
        temperature: flags.temperature,
      });
      const values: number[][] = [];
      for (let r = 0; r < answer.rows; r++) {
        values.push(
          Array.from(answer.values.subarray(r * answer.classes, (r + 1) * answer.classes)),
        );
      }
      const { values: _packed, ...facts } = answer;
      await writeFile(resolve(flags.out), `${JSON.stringify({ ...facts, values }, null, 2)}\n`);
      process.stdout.write(
        `${answer.rows} rows answered (${answer.kind}, mechanism ${answer.mechanism}` +
          (answer.mechanism === 'none'
            ? ')'
            : `, epsilon ${answer.epsilon.toFixed(3)} at delta ${answer.delta}, spent ${answer.epsilonSpent.toFixed(3)}, remaining ${answer.epsilonRemaining.toFixed(3)})`) +
          `; written to ${flags.out}\n`,
      );
    } finally {
      client.close();
    }
  });
}
