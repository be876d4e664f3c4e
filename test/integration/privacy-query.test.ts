import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readAllRows, readLabelledRows, writeRows } from '../../services/shared/data/csv.js';
import { getDatasetSchema } from '../../services/shared/data/dataset-schema.js';
import {
  encodeRows,
  featureDim,
  parsePreprocessorSpec,
} from '../../services/shared/data/preprocessing.js';
import { silentLogger } from '../../services/shared/logger.js';
import { parseManifest } from '../../services/shared/knowledge/manifest.js';
import { loadEngine } from '../../services/shared/ml/engine.js';
import { calibrateEnsembleRelease } from '../../services/shared/privacy/aggregate.js';
import { composeRdp, rdpToEpsilon } from '../../services/shared/privacy/rdp-accountant.js';
import { issueAccessToken } from '../../services/shared/tokens/issue.js';
import type { PkiLayout } from '../../services/shared/pki/index.js';
import { startHub, type RunningHub } from '../../services/hub/hub.js';
import { createGrant } from '../../services/registry/grants.js';
import { createHubClient, type HubClient } from '../../services/participant/hub-client.js';
import { queryTeacher } from '../../services/participant/query-client.js';
import {
  createFederationFixture,
  fixtureHubOptions,
  type FederationFixture,
} from '../helpers/federation.js';

const logger = silentLogger();
const ISSUER = 'privacy-test';
const AUDIENCE = 'distillery-api';

// A value no encoded lending_club row holds, planted in bank-a's query inputs: it must not
// be stored anywhere in the registry.
const INPUT_CANARY = 31337.125;

/** bank-a: DP-Gaussian ensemble, top-2 probabilities, budget for two calls but not three. */
const DP_POLICY = {
  release: 'topk',
  k: 2,
  queryMode: true,
  dp: { mechanism: 'gaussian', epsilon: 1, delta: 1e-6, teachers: 5 },
  budget: { epsilon: 1.6, delta: 1e-5 },
};
/** bank-b: label only, no DP, a cap of 200 rows a day. */
const LABEL_POLICY = { release: 'label', queryMode: true, rowCap: 200, period: 'day' };

describe('query mode over mTLS with release policies and the privacy ledger', () => {
  let fixture: FederationFixture;
  let pki: PkiLayout;
  let hub: RunningHub;
  const clients: Record<string, HubClient> = {};
  let ownX: Float32Array;
  let features: number;
  let operatorToken: string;
  let auditorToken: string;

  beforeAll(async () => {
    fixture = await createFederationFixture('privacy-query', 5, ['bank-a', 'bank-b']);
    pki = fixture.pki;
    const { split } = fixture;
    const engine = await loadEngine({ logger });
    hub = await startHub({
      ...fixtureHubOptions(fixture, { testRows: false, issuer: ISSUER, audience: AUDIENCE }),
      databaseUrl: 'memory://',
      enrol: ['bank-a', 'bank-b'],
      // On "other" the participants hold only the plain start-up grant: no query mode.
      streams: ['default', 'other'],
      teacher: {
        hidden: [16],
        dropout: 0,
        batchSize: 128,
        learningRate: 3e-3,
        patience: 2,
        seed: 5,
      },
      logger,
      engine,
    });
    const published = await hub.publisher.publish({
      stream: 'default',
      epochs: 2,
      temperature: 2,
      hiddenLayers: [],
      actor: 'test',
    });
    await createGrant(
      hub.registry.prisma,
      {
        participantId: 'bank-a',
        stream: 'default',
        kinds: ['probabilities'],
        policy: DP_POLICY,
      },
      { actor: 'operator-test' },
    );
    await createGrant(
      hub.registry.prisma,
      {
        participantId: 'bank-b',
        stream: 'default',
        kinds: ['probabilities'],
        policy: LABEL_POLICY,
      },
      { actor: 'operator-test' },
    );

    for (const id of ['bank-a', 'bank-b']) {
      const files = pki.participant(id);
      clients[id] = createHubClient({
        address: `localhost:${hub.grpcPort}`,
        caPem: await readFile(pki.caCert),
        certPem: await readFile(files.cert),
        keyPem: await readFile(files.key),
      });
    }
    // bank-a encodes its own rows with the preprocessing the version ships.
    const manifestBytes = await clients['bank-a'].getManifest(published.version.id);
    const manifest = parseManifest(published.version.id, manifestBytes);
    const spec = parsePreprocessorSpec(manifest.preprocessing);
    features = featureDim(spec);
    const own = readLabelledRows(
      join(split.participantDirs['bank-a'], 'own.csv'),
      getDatasetSchema('lending_club'),
    );
    ownX = encodeRows(spec, own.rows.slice(0, 100));
    ownX[3] = INPUT_CANARY;

    const key = await readFile(pki.jwtPrivateKey, 'utf8');
    const token = (role: 'operator' | 'auditor') =>
      issueAccessToken({
        privateKeyPem: key,
        issuer: ISSUER,
        audience: AUDIENCE,
        subject: `${role}-1`,
        role,
      });
    operatorToken = await token('operator');
    auditorToken = await token('auditor');
  }, 300_000);

  afterAll(async () => {
    for (const client of Object.values(clients)) client.close();
    await hub?.close();
    await fixture?.remove();
  });

  const refusal = async (promise: Promise<unknown>): Promise<ServiceError> => {
    try {
      await promise;
    } catch (err) {
      return err as ServiceError;
    }
    throw new Error('the call was not refused');
  };

  it('answers bank-a with noisy ensemble probabilities and charges the ledger', async () => {
    const answer = await queryTeacher(clients['bank-a'], { stream: 'default', x: ownX, features });
    expect(answer.rows).toBe(100);
    expect(answer.kind).toBe('probabilities');
    expect(answer.mechanism).toBe('gaussian');
    const expected = calibrateEnsembleRelease({
      mechanism: 'gaussian',
      epsilon: 1,
      delta: 1e-6,
      rows: 100,
      teachers: 5,
    });
    expect(answer.sigma).toBeCloseTo(expected.sigma, 9);
    // The first release alone, read at the budget's δ.
    expect(answer.epsilonSpent).toBeCloseTo(rdpToEpsilon(expected.rdp, 1e-5).epsilon, 9);
    expect(answer.epsilonRemaining).toBeCloseTo(1.6 - answer.epsilonSpent, 9);
    for (let r = 0; r < 100; r++) {
      const [p0, p1] = [answer.values[2 * r], answer.values[2 * r + 1]];
      expect(p0).toBeGreaterThanOrEqual(0);
      expect(p1).toBeGreaterThanOrEqual(0);
      expect(p0 + p1).toBeCloseTo(1, 5);
    }
    const entries = await hub.registry.prisma.privacyLedgerEntry.findMany({
      where: { participantId: 'bank-a' },
    });
    expect(entries).toHaveLength(1);
    expect(entries[0].rows).toBe(100);
    expect(entries[0].releaseId).toBe(answer.releaseId);
    expect(entries[0].mechanism).toBe('gaussian');
  });

  it('composes spending with the accountant and refuses the call that would exceed the budget', async () => {
    const one = calibrateEnsembleRelease({
      mechanism: 'gaussian',
      epsilon: 1,
      delta: 1e-6,
      rows: 100,
      teachers: 5,
    }).rdp;
    const two = rdpToEpsilon(composeRdp(one, one), 1e-5).epsilon;
    const three = rdpToEpsilon(composeRdp(one, one, one), 1e-5).epsilon;
    // The budget of 1.6 admits two calls and not three (checked, not assumed).
    expect(two).toBeLessThan(1.6);
    expect(three).toBeGreaterThan(1.6);

    const second = await queryTeacher(clients['bank-a'], { stream: 'default', x: ownX, features });
    expect(second.epsilonSpent).toBeCloseTo(two, 9);
    const err = await refusal(
      queryTeacher(clients['bank-a'], { stream: 'default', x: ownX, features }),
    );
    expect(err.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(err.details).toMatch(/privacy budget of bank-a exhausted/);

    const log = await hub.registry.prisma.accessLogEntry.findMany({
      where: { actor: 'bank-a', action: 'query' },
      orderBy: { sequence: 'asc' },
    });
    expect(log.map((e) => e.outcome)).toEqual(['allowed', 'allowed', 'denied']);
    expect(log[2].reason).toMatch(/budget of bank-a exhausted/);
    expect(
      await hub.registry.prisma.privacyLedgerEntry.count({ where: { participantId: 'bank-a' } }),
    ).toBe(2);
  });

  it('keeps the participant rows only for the call: the registry holds their count, never them', async () => {
    const haystack = JSON.stringify(
      await Promise.all([
        hub.registry.prisma.accessLogEntry.findMany(),
        hub.registry.prisma.privacyLedgerEntry.findMany(),
      ]),
      (_, v) => (typeof v === 'bigint' ? String(v) : v),
    );
    expect(haystack).toContain('"rows":100');
    expect(haystack).not.toContain(String(INPUT_CANARY));
    const f32 = Buffer.alloc(4);
    f32.writeFloatLE(INPUT_CANARY);
    const chunks = await hub.registry.prisma
      .$queryRawUnsafe<{ n: bigint }[]>(
        `SELECT count(*) AS n FROM chunk_blob WHERE position($1::bytea in data) > 0`,
        f32,
      )
      .catch(() => [{ n: 0n }]);
    expect(Number(chunks[0].n)).toBe(0);
  });

  it('answers bank-b with labels only and enforces its row cap', async () => {
    const x = ownX.slice(0, 100 * features);
    x[3] = 0;
    const answer = await queryTeacher(clients['bank-b'], { stream: 'default', x, features });
    expect(answer.kind).toBe('label');
    expect(answer.mechanism).toBe('none');
    for (let r = 0; r < 100; r++) {
      expect([answer.values[2 * r], answer.values[2 * r + 1]].sort()).toEqual([0, 1]);
    }
    const more = new Float32Array(150 * features);
    more.set(x);
    more.set(x.subarray(0, 50 * features), 100 * features);
    const err = await refusal(
      queryTeacher(clients['bank-b'], { stream: 'default', x: more, features }),
    );
    expect(err.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(err.details).toBe(
      'bank-b may receive 200 rows per day; 100 were released already and this call asks for 150',
    );
    // 50 rows still fit.
    const rest = await queryTeacher(clients['bank-b'], {
      stream: 'default',
      x: x.slice(0, 50 * features),
      features,
    });
    expect(rest.rows).toBe(50);
  });

  it('serves `distillery query` from the command line, up to the cap', async () => {
    const own = readAllRows(join(fixture.split.participantDirs['bank-b'], 'own.csv'));
    const input = join(fixture.dir, 'bank-b-query.csv');
    writeRows(input, own.columns, own.rows.slice(0, 50));
    const out = join(fixture.dir, 'bank-b-answer.json');
    const versionId = (await hub.registry.prisma.knowledgeVersion.findFirstOrThrow()).id;
    const args = [
      'bin/distillery.js',
      'query',
      '--id',
      'bank-b',
      '--hub',
      `localhost:${hub.grpcPort}`,
      '--pki-dir',
      join(fixture.dir, 'pki'),
      '--knowledge-version',
      versionId,
      '--input',
      input,
      '--out',
      out,
    ];
    // Asynchronously: the hub answers from this very process.
    const cli = () =>
      new Promise<{ status: number; stdout: string; stderr: string }>((done) => {
        execFile(process.execPath, args, { timeout: 120_000 }, (err, stdout, stderr) =>
          done({ status: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
        );
      });
    const run = await cli();
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^50 rows answered \(label, mechanism none\)/);
    const answer = JSON.parse(await readFile(out, 'utf8'));
    expect(answer.values).toHaveLength(50);
    expect(answer.kind).toBe('label');
    // The cap is spent now: the same command is refused with the hub's message.
    const again = await cli();
    expect(again.status).not.toBe(0);
    expect(again.stderr).toMatch(/bank-b may receive 200 rows per day; 200 were released already/);
  });

  it('refuses a participant whose grants do not turn query mode on', async () => {
    const err = await refusal(
      queryTeacher(clients['bank-a'], { stream: 'other', x: ownX.slice(0, features), features }),
    );
    expect(err.code).toBe(GrpcStatus.PERMISSION_DENIED);
    expect(err.details).toMatch(/no grant with query mode/);
    const denied = await hub.registry.prisma.accessLogEntry.findMany({
      where: { actor: 'bank-a', action: 'query', outcome: 'denied', resource: 'stream:other' },
    });
    expect(denied).toHaveLength(1);
  });

  it('refuses rows of the wrong width', async () => {
    const err = await refusal(
      queryTeacher(clients['bank-a'], { stream: 'default', x: new Float32Array(10), features: 10 }),
    );
    expect(err.code).toBe(GrpcStatus.INVALID_ARGUMENT);
  });

  it('shows budgets and the ledger to operators and auditors over HTTP', async () => {
    for (const token of [operatorToken, auditorToken]) {
      const budgets = await hub.http.inject({
        method: 'GET',
        url: '/v1/privacy/budgets',
        headers: { authorization: `Bearer ${token}` },
      });
      expect(budgets.statusCode).toBe(200);
      const body = budgets.json();
      const a = body.participants.find((p: { participant: string }) => p.participant === 'bank-a');
      expect(a.budgets).toEqual([expect.objectContaining({ epsilon: 1.6, delta: 1e-5 })]);
      expect(a.releases).toBe(2);
      expect(a.rows).toBe(200);
      expect(a.spent.epsilon).toBeGreaterThan(1);
      expect(a.spent.epsilon).toBeLessThan(1.6);
      expect(a.remaining).toBeCloseTo(1.6 - a.spent.epsilon, 9);
      const b = body.participants.find((p: { participant: string }) => p.participant === 'bank-b');
      expect(b.releases).toBe(3);
      expect(b.remaining).toBeNull();
      expect(body.hub.releasesWithoutNoise).toBe(3);
      expect(body.hub.epsilon).toBeCloseTo(a.spent.epsilon, 6);
    }
    const ledger = await hub.http.inject({
      method: 'GET',
      url: '/v1/privacy/ledger?participant=bank-a',
      headers: { authorization: `Bearer ${auditorToken}` },
    });
    expect(ledger.statusCode).toBe(200);
    const entries = ledger.json().entries;
    expect(entries).toHaveLength(2);
    expect(entries[0]).toMatchObject({ participant: 'bank-a', mechanism: 'gaussian', rows: 100 });
    expect(entries[0].parameters).toMatchObject({ teachers: 5, release: 'topk' });

    const anonymous = await hub.http.inject({ method: 'GET', url: '/v1/privacy/budgets' });
    expect(anonymous.statusCode).toBe(401);
  });
});
