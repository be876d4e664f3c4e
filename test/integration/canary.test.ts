import { InterceptingCall, type Interceptor } from '@grpc/grpc-js';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/shared/logger.js';
import { readAllRows, readLabelledRows, writeRows } from '../../services/shared/data/csv.js';
import type { PkiLayout } from '../../services/shared/pki/index.js';
import { loadKnowledgeProto } from '../../services/shared/transport/proto.js';
import { loadEngine } from '../../services/shared/ml/engine.js';
import { startHub, type RunningHub } from '../../services/hub/hub.js';
import { startParticipant } from '../../services/participant/participant.js';
import {
  createFederationFixture,
  fixtureHubOptions,
  fixtureParticipantOptions,
  type FederationFixture,
} from '../helpers/federation.js';
import { getDatasetSchema } from '../../services/shared/data/dataset-schema.js';
import {
  encodeRows,
  featureDim,
  parsePreprocessorSpec,
} from '../../services/shared/data/preprocessing.js';
import { parseManifest } from '../../services/shared/knowledge/manifest.js';
import { createGrant, revokeGrant } from '../../services/registry/grants.js';
import { createHubClient } from '../../services/participant/hub-client.js';
import { queryTeacher } from '../../services/participant/query-client.js';

const logger = silentLogger();

// Values that occur nowhere in the dataset, planted in the hub's private rows only.
const NUMERIC_CANARIES = [9876543.25, 8765432.75, 7654321.5];
const CATEGORY_CANARY = 'emp_canary_zq';

/** Every way a number could travel: as text, float32 and float64, both byte orders. */
function numericNeedles(value: number): Buffer[] {
  const f32 = Buffer.alloc(4);
  const f64 = Buffer.alloc(8);
  const needles = [Buffer.from(String(value))];
  f32.writeFloatLE(value);
  needles.push(Buffer.from(f32));
  f32.writeFloatBE(value);
  needles.push(Buffer.from(f32));
  f64.writeDoubleLE(value);
  needles.push(Buffer.from(f64));
  f64.writeDoubleBE(value);
  needles.push(Buffer.from(f64));
  return needles;
}

async function filesUnder(dir: string): Promise<Buffer[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return Promise.all(
    entries.filter((e) => e.isFile()).map((e) => readFile(join(e.parentPath, e.name))),
  );
}

/** Every release policy a grant can set, each tried in query mode. */
const QUERY_POLICIES = {
  logits: { queryMode: true },
  topk: { release: 'topk', k: 1, queryMode: true },
  label: { release: 'label', queryMode: true },
  'temperature-floor': { release: 'topk', k: 2, temperatureFloor: 8, queryMode: true },
  'row-cap': { release: 'label', queryMode: true, rowCap: 200, period: 'day' },
  'dp-gaussian': {
    release: 'topk',
    k: 2,
    queryMode: true,
    dp: { mechanism: 'gaussian', epsilon: 2, delta: 1e-6, teachers: 4 },
    budget: { epsilon: 4, delta: 1e-5 },
  },
  pate: {
    release: 'label',
    queryMode: true,
    dp: { mechanism: 'pate', epsilon: 2, delta: 1e-6, teachers: 4 },
    budget: { epsilon: 4, delta: 1e-5 },
  },
};

describe('hub-private rows never leave the hub', () => {
  let fixture: FederationFixture;
  let dir: string;
  let pki: PkiLayout;
  let hub: RunningHub;
  let privateCsvLines: string[];
  const wire: Buffer[] = [];
  let participantFiles: Buffer[] = [];
  let versionBytes = 0;
  const queried: { name: string; kind: string; mechanism: string; rows: number }[] = [];

  beforeAll(async () => {
    fixture = await createFederationFixture('canary', 3);
    ({ dir, pki } = fixture);
    const split = fixture.split;

    // Plant the canaries in the hub's private file.
    const privatePath = join(split.hubDir, 'private.csv');
    const { columns, rows } = readAllRows(privatePath);
    NUMERIC_CANARIES.forEach((value, i) => {
      rows[i * 7].annual_inc = String(value);
      rows[i * 7 + 1].total_bal_il = String(value);
    });
    rows[3].emp_length = CATEGORY_CANARY;
    writeRows(privatePath, columns, rows);
    privateCsvLines = (await readFile(privatePath, 'utf8')).trim().split('\n').slice(1);

    const engine = await loadEngine({ logger });
    hub = await startHub({
      ...fixtureHubOptions(fixture, { privateRows: privatePath }),
      databaseUrl: 'memory://',
      enrol: ['bank-a'],
      teacher: {
        hidden: [32, 32],
        dropout: 0.1,
        batchSize: 128,
        learningRate: 1e-3,
        patience: 2,
        seed: 3,
      },
      logger,
      engine,
    });
    await hub.publisher.publish({
      stream: 'default',
      epochs: 2,
      temperature: 4,
      hiddenLayers: ['hidden_1', 'hidden_2'],
      actor: 'test',
    });

    // Record the protobuf bytes of every message, header and status the participant receives.
    const methods = loadKnowledgeProto().distillery.v1.Knowledge.service;
    const serialisers = new Map(
      Object.values(methods).map((m) => [m.path, m.responseSerialize as (v: unknown) => Buffer]),
    );
    const tap: Interceptor = (options, nextCall) =>
      new InterceptingCall(nextCall(options), {
        start(metadata, listener, next) {
          const serialise = serialisers.get(options.method_definition.path)!;
          next(metadata, {
            onReceiveMetadata(md, nextMd) {
              wire.push(Buffer.from(JSON.stringify(md.getMap())));
              nextMd(md);
            },
            onReceiveMessage(message, nextMessage) {
              wire.push(serialise(message));
              nextMessage(message);
            },
            onReceiveStatus(status, nextStatus) {
              wire.push(Buffer.from(status.details ?? ''));
              nextStatus(status);
            },
          });
        },
      });

    const participant = await startParticipant({
      ...fixtureParticipantOptions(fixture, 'bank-a', `localhost:${hub.grpcPort}`),
      student: { hidden: [8], epochs: 2, alpha: 0.9, batchSize: 256, learningRate: 1e-3, seed: 3 },
      exitAfter: 1,
      logger,
      engine,
      interceptors: [tap],
      // The students' rows live in memory: what the node keeps on disk is then its downloads
      // and student files, searched below, not tens of MB of empty database pages.
      registryUrl: 'memory://',
    });
    await participant.done;
    participantFiles = await filesUnder(join(dir, 'bank-a-state'));

    // Query mode under every release policy, through the same tap: bank-a sends its own
    // rows and each answer joins the bytes searched below.
    const client = createHubClient({
      address: `localhost:${hub.grpcPort}`,
      caPem: await readFile(pki.caCert),
      certPem: await readFile(pki.participant('bank-a').cert),
      keyPem: await readFile(pki.participant('bank-a').key),
      interceptors: [tap],
    });
    try {
      const versionId = (await hub.registry.prisma.knowledgeVersion.findFirstOrThrow()).id;
      const manifest = parseManifest(versionId, await client.getManifest(versionId));
      // The node fetched only the tensors its distiller reads; fetch every tensor of the
      // version as well, so that everything the hub can send is in the bytes searched.
      for await (const chunk of client.fetchChunks(versionId, 0)) void chunk;
      versionBytes = manifest.totalBytes;
      const spec = parsePreprocessorSpec(manifest.preprocessing);
      const own = readLabelledRows(
        join(split.participantDirs['bank-a'], 'own.csv'),
        getDatasetSchema('lending_club'),
      );
      const x = encodeRows(spec, own.rows.slice(0, 200));
      let previous: string | undefined;
      for (const [name, policy] of Object.entries(QUERY_POLICIES)) {
        if (previous) await revokeGrant(hub.registry.prisma, previous, { actor: 'test' });
        const grant = await createGrant(
          hub.registry.prisma,
          {
            participantId: 'bank-a',
            stream: 'default',
            kinds: ['logits', 'probabilities'],
            policy,
          },
          { actor: 'test' },
        );
        previous = grant.id;
        const answer = await queryTeacher(client, {
          stream: 'default',
          x,
          features: featureDim(spec),
          temperature: 2,
        });
        queried.push({ name, kind: answer.kind, mechanism: answer.mechanism, rows: answer.rows });
      }
    } finally {
      client.close();
    }
  }, 300_000);

  afterAll(async () => {
    await hub?.close();
    await fixture?.remove();
  });

  it('sent the participant a whole version (the capture is not empty)', () => {
    const bytes = wire.reduce((n, b) => n + b.byteLength, 0);
    expect(versionBytes).toBeGreaterThan(100_000);
    expect(bytes).toBeGreaterThan(versionBytes);
  });

  it('answered a query under every release policy (their answers are searched too)', () => {
    expect(queried.map((q) => q.name)).toEqual(Object.keys(QUERY_POLICIES));
    expect(queried.every((q) => q.rows === 200)).toBe(true);
    expect(queried.map((q) => q.mechanism)).toEqual([
      'none',
      'none',
      'none',
      'none',
      'none',
      'gaussian',
      'pate',
    ]);
    expect(queried[0].kind).toBe('logits');
    expect(queried[2].kind).toBe('label');
  });

  it('finds the canaries in the hub file itself, so the search can see them', async () => {
    const privateFile = await readFile(join(dir, 'parties', 'hub', 'private.csv'));
    for (const value of NUMERIC_CANARIES) expect(privateFile.includes(String(value))).toBe(true);
    expect(privateFile.includes(CATEGORY_CANARY)).toBe(true);
  });

  it('sends no canary value over the wire, in any encoding', () => {
    const haystacks = [...wire, ...participantFiles];
    for (const value of NUMERIC_CANARIES) {
      for (const needle of numericNeedles(value)) {
        const found = haystacks.findIndex((h) => h.includes(needle));
        expect(found, `canary ${value} (${needle.toString('hex')}) found`).toBe(-1);
      }
    }
    for (const haystack of haystacks) expect(haystack.includes(CATEGORY_CANARY)).toBe(false);
  });

  it('sends no hub-private row and no label of one: no line of the private file appears', () => {
    const haystack = Buffer.concat([...wire, ...participantFiles]);
    const leaked = privateCsvLines.filter((line) => haystack.includes(line));
    expect(leaked).toEqual([]);
    // Thousands of lines searched through every byte captured: seconds on an idle machine,
    // a minute or more on a loaded one.
  }, 300_000);
});
