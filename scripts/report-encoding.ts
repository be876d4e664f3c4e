// `npm run report:encoding`: what sending teacher states as float16 or int8 (per-tensor
// scale) instead of float32 does to the distilled student. For each seed, data/lending_club
// is split into a hub and a participant; the hub's publisher trains a teacher and publishes
// a float32 version; its states are then re-encoded as float16 and int8 exactly as the
// publisher would, and the participant's distiller trains the same student (same seed,
// same rows, same settings) on each. Reports student ROC AUC and PR AUC per encoding, the
// difference to float32, the version's size, and the largest error of a decoded logit.
// Writes out/report/encoding.json and prints a table. Not a test.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mean, sampleStandardDeviation } from 'simple-statistics';
import { silentLogger } from '../services/shared/logger.js';
import { loadEngine } from '../services/shared/ml/engine.js';
import { parseManifest, type KnowledgeManifest } from '../services/shared/knowledge/manifest.js';
import {
  packTensors,
  unpackTensor,
  type StateTensorInput,
} from '../services/shared/knowledge/tensor-pack.js';
import type { StateDtype } from '../services/shared/knowledge/encoding.js';
import { openRegistry } from '../services/registry/database.js';
import { ensureStream, getVersion, readChunk } from '../services/registry/knowledge.js';
import { Announcer } from '../services/hub/announcer.js';
import { loadHubData } from '../services/hub/hub-data.js';
import { KnowledgePublisher } from '../services/hub/publisher.js';
import { Distiller } from '../services/participant/distiller.js';
import { splitFederation } from '../services/cli/demo/split-federation.js';
import { splitHubFiles } from '../test/helpers/federation.js';

const SEEDS = (process.env.REPORT_ENCODING_SEEDS ?? '1,2,3').split(',').map(Number);
const ENCODINGS: StateDtype[] = ['float32', 'float16', 'int8'];
const logger = silentLogger();

/** The version's states re-encoded as `dtype`, with a manifest that describes them. */
function reencode(manifest: KnowledgeManifest, blob: Uint8Array, dtype: StateDtype) {
  const inputs: StateTensorInput[] = manifest.tensors.map((t) => ({
    name: t.name,
    kind: t.kind as StateTensorInput['kind'],
    ...(t.layer ? { layer: t.layer } : {}),
    shape: t.shape,
    values: unpackTensor(manifest, blob, t.name),
  }));
  const packed = packTensors(inputs, manifest.chunkBytes, { dtype });
  return {
    manifest: {
      ...manifest,
      tensors: packed.tensors,
      chunks: packed.chunks.map((c) => c.sha256),
      totalBytes: packed.totalBytes,
      rootHash: packed.rootHash,
    } satisfies KnowledgeManifest,
    blob: Buffer.concat(packed.chunks.map((c) => c.data)),
  };
}

async function main() {
  const engine = await loadEngine({ logger });
  const rows: Record<string, unknown>[] = [];
  for (const seed of SEEDS) {
    const dir = await mkdtemp(join(tmpdir(), 'report-encoding-'));
    const registry = await openRegistry({ databaseUrl: 'memory://', logger });
    try {
      // Opened as a hub opens its streams at start; a publisher creates none.
      await ensureStream(registry.prisma, 'default');
      const split = splitFederation({
        input: 'data/lending_club.csv',
        dataset: 'lending_club',
        outDir: join(dir, 'parties'),
        seed,
        participants: ['bank-a'],
      });
      const publisher = new KnowledgePublisher({
        registry,
        announcer: new Announcer(),
        engine,
        data: loadHubData(splitHubFiles(split), seed, logger),
        stateDir: join(dir, 'hub'),
        teacher: {
          hidden: [128, 128],
          dropout: 0.3,
          batchSize: 128,
          learningRate: 1e-3,
          patience: 5,
          seed,
        },
        logger,
      });
      const published = await publisher.publish({
        stream: 'default',
        epochs: 20,
        temperature: 4,
        hiddenLayers: ['hidden_2'],
        actor: 'report',
      });
      publisher.dispose();
      const stored = await getVersion(registry.prisma, published.version.id);
      const manifest = parseManifest(stored.id, stored.manifestJson);
      const parts: Buffer[] = [];
      for (let i = 0; i < stored.chunkCount; i++) {
        parts.push((await readChunk(registry.prisma, stored.id, i)).data);
      }
      const blob = Buffer.concat(parts);
      const exact = unpackTensor(manifest, blob, 'logits');

      const participantDir = split.participantDirs['bank-a']!;
      const distiller = new Distiller(
        engine,
        'bank-a',
        {
          dataset: 'lending_club',
          ownRows: join(participantDir, 'own.csv'),
          transferRows: join(participantDir, 'transfer.csv'),
          testRows: join(participantDir, 'test.csv'),
        },
        { hidden: [16], alpha: 0.9, batchSize: 256, seed },
        logger,
      );
      for (const encoding of ENCODINGS) {
        const version = reencode(manifest, blob, encoding);
        const decoded = unpackTensor(version.manifest, version.blob, 'logits');
        let maxError = 0;
        for (let i = 0; i < exact.length; i++) {
          maxError = Math.max(maxError, Math.abs(decoded[i]! - exact[i]!));
        }
        const result = await distiller.distil(
          version.manifest,
          version.blob,
          { id: stored.id, sequence: 1 },
          join(dir, 'students', encoding),
        );
        rows.push({
          seed,
          encoding,
          bytes: version.manifest.totalBytes,
          maxLogitError: maxError,
          teacherTestAuc: published.teacher.testAuc,
          studentAuc: result.auc,
          studentPrAuc: result.prAuc,
          aucWithoutTeacher: result.aucWithoutTeacher,
        });
        console.error(
          `seed ${seed} ${encoding}: student AUC ${result.auc.toFixed(4)} (own rows only ${result.aucWithoutTeacher.toFixed(4)})`,
        );
      }
    } finally {
      await registry.close();
      await rm(dir, { recursive: true, force: true });
    }
  }

  const summary = ENCODINGS.map((encoding) => {
    const mine = rows.filter((r) => r.encoding === encoding);
    const deltas = mine.map((r) => {
      const base = rows.find((b) => b.seed === r.seed && b.encoding === 'float32')!;
      return (r.studentAuc as number) - (base.studentAuc as number);
    });
    const aucs = mine.map((r) => r.studentAuc as number);
    return {
      encoding,
      seeds: mine.length,
      meanStudentAuc: mean(aucs),
      sdStudentAuc: aucs.length > 1 ? sampleStandardDeviation(aucs) : 0,
      meanAucChangeVsFloat32: mean(deltas),
      largestAucChangeVsFloat32: deltas.reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a), 0),
      meanBytes: mean(mine.map((r) => r.bytes as number)),
      maxLogitError: Math.max(...mine.map((r) => r.maxLogitError as number)),
    };
  });
  await mkdir('out/report', { recursive: true });
  await writeFile(
    'out/report/encoding.json',
    `${JSON.stringify({ at: new Date().toISOString(), engine: engine.name, seeds: SEEDS, summary, rows }, null, 2)}\n`,
  );
  console.log(
    `\nreport:encoding — lending_club, seeds ${SEEDS.join(', ')}, engine ${engine.name}\n`,
  );
  console.log(
    'encoding   student AUC (mean ± sd)   Δ vs float32 (mean, largest)   bytes    max |Δlogit|',
  );
  for (const s of summary) {
    console.log(
      `${s.encoding.padEnd(9)}  ${s.meanStudentAuc.toFixed(4)} ± ${s.sdStudentAuc.toFixed(4)}          ${s.meanAucChangeVsFloat32 >= 0 ? '+' : ''}${s.meanAucChangeVsFloat32.toFixed(4)}, ${s.largestAucChangeVsFloat32 >= 0 ? '+' : ''}${s.largestAucChangeVsFloat32.toFixed(4)}              ${String(Math.round(s.meanBytes)).padStart(8)}  ${s.maxLogitError.toExponential(2)}`,
    );
  }
  console.log('\nwritten to out/report/encoding.json');
}

await main();
