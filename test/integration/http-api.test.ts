import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/shared/logger.js';
import { initDevelopmentPki, type PkiLayout } from '../../services/shared/pki/index.js';
import { createTokenVerifier, issueAccessToken } from '../../services/shared/tokens/index.js';
import { openRegistry, type Registry } from '../../services/registry/database.js';
import { appendAccess } from '../../services/registry/access-log.js';
import { Announcer } from '../../services/hub/announcer.js';
import { buildHttpApi, type HttpApi } from '../../services/hub/http-api.js';
import { KnowledgePublisher } from '../../services/hub/publisher.js';
import { loadHubData } from '../../services/hub/hub-data.js';
import { splitFederation } from '../../services/cli/demo/split-federation.js';
import { splitHubFiles } from '../helpers/federation.js';
import { loadEngine } from '../../services/shared/ml/engine.js';

const logger = silentLogger();
const ISSUER = 'test-consortium';
const AUDIENCE = 'test-hub';

describe('hub HTTP API', () => {
  let dir: string;
  let pki: PkiLayout;
  let registry: Registry;
  let app: HttpApi;
  let signingKey: string;

  const token = (role: 'operator' | 'auditor' | 'participant', extra: { audience?: string } = {}) =>
    issueAccessToken({
      privateKeyPem: signingKey,
      issuer: ISSUER,
      audience: extra.audience ?? AUDIENCE,
      subject: `${role}-1`,
      role,
    });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'distillery-http-'));
    pki = await initDevelopmentPki(join(dir, 'pki'), { participants: ['bank-a'] });
    signingKey = await readFile(pki.jwtPrivateKey, 'utf8');
    registry = await openRegistry({ databaseUrl: 'memory://', logger });
    const split = splitFederation({
      input: 'data/lending_club.csv',
      dataset: 'lending_club',
      outDir: join(dir, 'parties'),
      seed: 0,
      participants: [],
    });
    for (let i = 0; i < 5; i++) {
      await appendAccess(registry.prisma, {
        actor: i % 2 ? 'bank-a' : 'bank-b',
        action: 'download',
        resource: `version:${String(i).repeat(64)}`,
        outcome: 'allowed',
      });
    }
    const engine = await loadEngine({ logger });
    const publisher = new KnowledgePublisher({
      registry,
      announcer: new Announcer(),
      engine,
      data: loadHubData(splitHubFiles(split, { testRows: false }), 0, logger),
      stateDir: dir,
      teacher: { hidden: [8], dropout: 0, batchSize: 32, learningRate: 1e-3, patience: 2, seed: 0 },
      logger,
    });
    app = await buildHttpApi({
      registry,
      publisher,
      verifier: createTokenVerifier({
        publicKeyPem: await readFile(pki.jwtPublicKey, 'utf8'),
        issuer: ISSUER,
        audience: AUDIENCE,
      }),
      logger,
      engine: engine.name,
    });
  });

  afterAll(async () => {
    await app?.close();
    await registry?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the access log to an auditor, filtered and paginated', async () => {
    const auth = { authorization: `Bearer ${await token('auditor')}` };
    const first = await app.inject({
      method: 'GET',
      url: '/v1/audit/log?actor=bank-a&limit=1',
      headers: auth,
    });
    expect(first.statusCode).toBe(200);
    const page1 = first.json() as { entries: { actor: string }[]; nextCursor: string };
    expect(page1.entries).toHaveLength(1);
    expect(page1.entries[0].actor).toBe('bank-a');

    const second = await app.inject({
      method: 'GET',
      url: `/v1/audit/log?actor=bank-a&limit=10&cursor=${encodeURIComponent(page1.nextCursor)}`,
      headers: auth,
    });
    const page2 = second.json() as { entries: { actor: string }[]; nextCursor: string | null };
    expect(page2.entries).toHaveLength(1);
    expect(page2.nextCursor).toBeNull();
  });

  it('answers 400, not 500, to a query holding a NUL byte', async () => {
    const res = await app.inject({
      method: 'GET',
      url: '/v1/audit/log?actor=%00',
      headers: { authorization: `Bearer ${await token('auditor')}` },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toContain('querystring.actor');
  });

  it('reports an intact chain to an auditor', async () => {
    const res = await app.inject({
      method: 'GET',
      url: '/v1/audit/verify',
      headers: { authorization: `Bearer ${await token('auditor')}` },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ ok: true });
  });

  it('refuses the audit API to an operator and logs the refusal', async () => {
    const res = await app.inject({
      method: 'GET',
      url: '/v1/audit/log',
      headers: { authorization: `Bearer ${await token('operator')}` },
    });
    expect(res.statusCode).toBe(403);
    expect(res.json().error.code).toBe('TOKEN_ROLE');
    const log = await app.inject({
      method: 'GET',
      url: '/v1/audit/log?outcome=denied',
      headers: { authorization: `Bearer ${await token('auditor')}` },
    });
    expect(log.json().entries.some((e: { actor: string }) => e.actor === 'operator-1')).toBe(true);
  });

  it('refuses a request without a token, and one for another audience', async () => {
    const none = await app.inject({ method: 'GET', url: '/v1/audit/log' });
    expect(none.statusCode).toBe(401);
    expect(none.json().error.code).toBe('TOKEN_MISSING');
    const wrong = await app.inject({
      method: 'GET',
      url: '/v1/audit/log',
      headers: { authorization: `Bearer ${await token('auditor', { audience: 'elsewhere' })}` },
    });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().error.code).toBe('TOKEN_INVALID');
  });

  it('rejects a malformed publish body with a message naming the field', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/streams/default/versions',
      headers: { authorization: `Bearer ${await token('operator')}` },
      payload: { epochs: 'many' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('REQUEST_INVALID');
    expect(res.json().error.message).toBe('invalid request: body.epochs must be integer');
  });

  it('refuses a malformed request without a token as unauthenticated, not as malformed', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/participants',
      payload: { id: 'X Y' },
    });
    expect(res.statusCode).toBe(401);
    expect(res.json().error.code).toBe('TOKEN_MISSING');
  });

  it('publishes a version in the encoding the operator asks for, and refuses an unknown one', async () => {
    const auth = { authorization: `Bearer ${await token('operator')}` };
    await registry.prisma.knowledgeStream.upsert({
      where: { name: 'default' },
      create: { name: 'default' },
      update: {},
    });
    const res = await app.inject({
      method: 'POST',
      url: '/v1/streams/default/versions',
      headers: auth,
      payload: { epochs: 1, hiddenLayers: [], encoding: 'int8' },
    });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().version.encoding).toBe('int8');
    const logits = res.json().version.tensors.find((t: { name: string }) => t.name === 'logits');
    expect(logits.dtype).toBe('int8');

    const bad = await app.inject({
      method: 'POST',
      url: '/v1/streams/default/versions',
      headers: auth,
      payload: { encoding: 'float8' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/body\.encoding/);
  }, 120_000);

  it('names an unknown field of a publish body', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/streams/default/versions',
      headers: { authorization: `Bearer ${await token('operator')}` },
      payload: { epoch: 1 },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toBe('invalid request: body has an unknown field "epoch"');
  });

  it('rejects a body that is not JSON', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/streams/default/versions',
      headers: {
        authorization: `Bearer ${await token('operator')}`,
        'content-type': 'application/json',
      },
      payload: '{"epochs": 3',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('REQUEST_INVALID');
  });

  it('answers 404 naming an unknown version id', async () => {
    const id = 'd'.repeat(64);
    const res = await app.inject({
      method: 'GET',
      url: `/v1/versions/${id}`,
      headers: { authorization: `Bearer ${await token('operator')}` },
    });
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toMatchObject({ code: 'VERSION_NOT_FOUND' });
    expect(res.json().error.message).toContain(id);
  });

  it('refuses the operator API to a participant token', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/participants',
      headers: { authorization: `Bearer ${await token('participant')}` },
      payload: { id: 'bank-z' },
    });
    expect(res.statusCode).toBe(403);
  });

  const publishWith = async (stream: string, payload: Record<string, unknown>) =>
    app.inject({
      method: 'POST',
      url: `/v1/streams/${stream}/versions`,
      headers: { authorization: `Bearer ${await token('operator')}` },
      payload,
    });

  it('refuses a publish temperature outside the range the hub CLI accepts, naming the field', async () => {
    for (const temperature of [1e-300, 0.049, 100.5]) {
      const res = await publishWith('default', { epochs: 1, temperature });
      expect(res.statusCode, String(temperature)).toBe(400);
      expect(res.json().error.code).toBe('REQUEST_INVALID');
      expect(res.json().error.message).toMatch(/^invalid request: body\.temperature must be [<>]=/);
    }
  });

  it('refuses duplicate and unknown hiddenLayers with a 400 naming them', async () => {
    const twice = await publishWith('default', {
      epochs: 1,
      hiddenLayers: ['hidden_1', 'hidden_1'],
    });
    expect(twice.statusCode).toBe(400);
    expect(twice.json().error.message).toMatch(/body\.hiddenLayers must NOT have duplicate items/);

    const unknown = await publishWith('default', { epochs: 1, hiddenLayers: ['hidden_7'] });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error.code).toBe('REQUEST_INVALID');
    expect(unknown.json().error.message).toContain('"hidden_7"');
  });

  it('refuses a publish to a stream the hub did not open, and opens none', async () => {
    const res = await publishWith('nostream', { epochs: 1, hiddenLayers: [] });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('STREAM_NOT_FOUND');
    expect(res.json().error.message).toContain('"nostream"');
    const stream = await registry.prisma.knowledgeStream.findUnique({
      where: { name: 'nostream' },
    });
    expect(stream).toBeNull();
  });

  it('takes body fields with the JSON types the caller sent, not coerced ones', async () => {
    const auth = { authorization: `Bearer ${await token('operator')}` };
    for (const id of [123, ['bank-r']]) {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/participants',
        headers: auth,
        payload: { id },
      });
      expect(res.statusCode, JSON.stringify(id)).toBe(400);
      expect(res.json().error.message).toBe('invalid request: body.id must be string');
    }
    const text = await publishWith('default', { epochs: '1' });
    expect(text.statusCode).toBe(400);
    expect(text.json().error.message).toBe('invalid request: body.epochs must be integer');
    const list = await app.inject({ method: 'GET', url: '/v1/participants', headers: auth });
    const ids = (list.json() as { participants: { id: string }[] }).participants.map((p) => p.id);
    expect(ids).not.toContain('123');
    expect(ids).not.toContain('bank-r');
  });

  it('still reads numbers in a query string, and names one that is not a number', async () => {
    const auth = { authorization: `Bearer ${await token('auditor')}` };
    const ok = await app.inject({ method: 'GET', url: '/v1/audit/log?limit=2', headers: auth });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json().entries).toHaveLength(2);
    const bad = await app.inject({ method: 'GET', url: '/v1/audit/log?limit=two', headers: auth });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toBe('invalid request: querystring.limit must be integer');
  });
});
