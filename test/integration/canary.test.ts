import { InterceptingCall, type Interceptor } from '@grpc/grpc-js';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/shared/logger.js';
import { readAllRows, writeRows } from '../../services/shared/data/csv.js';
import type { PkiLayout } from '../../services/shared/pki/index.js';
import { loadKnowledgeProto } from '../../services/shared/transport/proto.js';
import { loadEngine } from '../../services/shared/ml/engine.js';
import { startHub, type RunningHub } from '../../services/hub/hub.js';
import { startParticipant } from '../../services/participant/participant.js';
import { createFederationFixture, type FederationFixture } from '../helpers/federation.js';

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

describe('hub-private rows never leave the hub', () => {
  let fixture: FederationFixture;
  let dir: string;
  let pki: PkiLayout;
  let hub: RunningHub;
  let privateCsvLines: string[];
  const wire: Buffer[] = [];
  let participantFiles: Buffer[] = [];

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
      stateDir: join(dir, 'hub-state'),
      files: {
        dataset: 'lending_club',
        privateRows: privatePath,
        transferRows: join(split.hubDir, 'transfer.csv'),
        testRows: join(split.hubDir, 'test.csv'),
      },
      databaseUrl: 'memory://',
      grpc: { host: '127.0.0.1', port: 0 },
      http: { host: '127.0.0.1', port: 0 },
      tls: { caCert: pki.caCert, cert: pki.hubCert, key: pki.hubKey },
      tokens: { publicKey: pki.jwtPublicKey, issuer: 'i', audience: 'a' },
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
      id: 'bank-a',
      hub: { address: `localhost:${hub.grpcPort}` },
      tls: {
        caCert: pki.caCert,
        cert: pki.participant('bank-a').cert,
        key: pki.participant('bank-a').key,
      },
      stream: 'default',
      stateDir: join(dir, 'bank-a-state'),
      files: {
        dataset: 'lending_club',
        ownRows: join(split.participantDirs['bank-a'], 'own.csv'),
        transferRows: join(split.participantDirs['bank-a'], 'transfer.csv'),
        testRows: join(split.participantDirs['bank-a'], 'test.csv'),
      },
      student: { hidden: [8], epochs: 2, alpha: 0.9, batchSize: 256, learningRate: 1e-3, seed: 3 },
      exitAfter: 1,
      logger,
      engine,
      interceptors: [tap],
    });
    await participant.done;
    participantFiles = await filesUnder(join(dir, 'bank-a-state'));
  }, 300_000);

  afterAll(async () => {
    await hub?.close();
    await fixture?.remove();
  });

  it('sent the participant a whole version (the capture is not empty)', () => {
    const bytes = wire.reduce((n, b) => n + b.byteLength, 0);
    expect(bytes).toBeGreaterThan(100_000);
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
  });
});
