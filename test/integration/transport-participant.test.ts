import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/shared/logger.js';
import { loadEngine, type Engine } from '../../services/shared/ml/engine.js';
import { issueAccessToken } from '../../services/shared/tokens/index.js';
import { parseManifest } from '../../services/shared/knowledge/manifest.js';
import { getVersion } from '../../services/registry/knowledge.js';
import { queryAccessLog } from '../../services/registry/access-log.js';
import { startHub, type RunningHub } from '../../services/hub/hub.js';
import type { StudentResult } from '../../services/participant/distiller.js';
import { LocalStore } from '../../services/participant/local-store.js';
import {
  startParticipant,
  type RunningParticipant,
} from '../../services/participant/participant.js';
import {
  createFederationFixture,
  fixtureHubOptions,
  fixtureParticipantOptions,
  type FederationFixture,
} from '../helpers/federation.js';
import { until } from '../helpers/wait.js';

const logger = silentLogger();

/**
 * A real hub publishing float16 and int8 versions, one participant following the stream
 * and one pinned to the first version, and an operator deprecating over the HTTP API.
 */
describe('participants follow, pin, and fall back on deprecation', () => {
  let fixture: FederationFixture;
  let engine: Engine;
  let hub: RunningHub;
  const nodes: RunningParticipant[] = [];
  const results: Record<string, StudentResult[]> = { 'bank-a': [], 'bank-b': [] };

  const participant = (id: 'bank-a' | 'bank-b', pin?: string) =>
    startParticipant({
      ...fixtureParticipantOptions(fixture, id, `localhost:${hub.grpcPort}`),
      student: { hidden: [8], epochs: 1, alpha: 0.9, batchSize: 256, learningRate: 1e-3, seed: 1 },
      logger,
      engine,
      backoffMs: { initial: 100, max: 1000 },
      ...(pin ? { pin } : {}),
      onResult: (r) => results[id]!.push(r),
    });

  const publish = (encoding: 'float16' | 'int8') =>
    hub.publisher.publish({
      stream: 'default',
      epochs: 1,
      temperature: 4,
      hiddenLayers: ['hidden_1'],
      actor: 'ops',
      encoding,
    });

  beforeAll(async () => {
    fixture = await createFederationFixture('transport-participant', 4, ['bank-a', 'bank-b']);
    engine = await loadEngine({ logger });
    hub = await startHub({
      ...fixtureHubOptions(fixture),
      databaseUrl: 'memory://',
      enrol: ['bank-a', 'bank-b'],
      teacher: {
        hidden: [16],
        dropout: 0,
        batchSize: 256,
        learningRate: 1e-3,
        patience: 2,
        seed: 4,
      },
      encoding: 'float16',
      logger,
      engine,
    });
  }, 300_000);

  afterAll(async () => {
    for (const node of nodes) await node.stop();
    await hub?.close();
    await fixture?.remove();
  });

  it('distils float16 and int8 versions, keeps a pinned one, and falls back when the current one is deprecated', async () => {
    const v1 = (await publish('float16')).version;
    const manifest1 = parseManifest(
      v1.id,
      (await getVersion(hub.registry.prisma, v1.id)).manifestJson,
    );
    expect(manifest1.tensors.map((t) => t.dtype)).toEqual(['float16', 'float16', 'float16']);

    nodes.push(await participant('bank-a'));
    nodes.push(await participant('bank-b', v1.id));
    await until(
      () => results['bank-a']!.length === 1 && results['bank-b']!.length === 1,
      120_000,
      'v1 students',
    );

    const v2 = (await publish('int8')).version;
    const manifest2 = parseManifest(
      v2.id,
      (await getVersion(hub.registry.prisma, v2.id)).manifestJson,
    );
    expect(manifest2.tensors.every((t) => t.dtype === 'int8' && (t.scale ?? 0) > 0)).toBe(true);
    await until(() => results['bank-a']!.length === 2, 120_000, 'the v2 student');

    const token = await issueAccessToken({
      privateKeyPem: await readFile(fixture.pki.jwtPrivateKey, 'utf8'),
      issuer: 'i',
      audience: 'a',
      subject: 'ops-1',
      role: 'operator',
    });
    const response = await hub.http.inject({
      method: 'POST',
      url: `/v1/versions/${v2.id}/deprecate`,
      headers: { authorization: `Bearer ${token}` },
      payload: { reason: 'int8 student under target' },
    });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json().event).toMatchObject({
      event: 'deprecated',
      versionId: v2.id,
      currentVersionId: v1.id,
    });

    const storeA = new LocalStore(join(fixture.dir, 'bank-a-state'));
    const storeB = new LocalStore(join(fixture.dir, 'bank-b-state'));
    await until(
      async () => (await storeA.readEvents()).length === 3,
      60_000,
      "bank-a's third event",
    );
    await until(
      async () => (await storeB.readEvents()).length === 3,
      60_000,
      "bank-b's third event",
    );

    // The follower distilled both and went back to v1's student without training again.
    expect((await storeA.readEvents()).map((e) => [e.sequence, e.event, e.action])).toEqual([
      [1, 'published', 'distilled'],
      [2, 'published', 'distilled'],
      [3, 'deprecated', 'switched'],
    ]);
    expect((await storeA.readState('default')).activeVersionId).toBe(v1.id);
    expect(results['bank-a']!.map((r) => r.versionId)).toEqual([v1.id, v2.id]);

    // The pinned node distilled v1 once and only recorded what followed.
    expect(results['bank-b']!.map((r) => r.versionId)).toEqual([v1.id]);
    expect((await storeB.readEvents()).map((e) => e.action)).toEqual([
      `ignored (pinned ${v1.id})`,
      `ignored (pinned ${v1.id})`,
      `ignored (pinned ${v1.id})`,
    ]);

    const log = await queryAccessLog(hub.registry.prisma, { action: 'version.deprecate' });
    expect(log.entries).toHaveLength(1);
    expect(log.entries[0]).toMatchObject({ actor: 'ops-1', resource: `version:${v2.id}` });
  }, 600_000);
});
