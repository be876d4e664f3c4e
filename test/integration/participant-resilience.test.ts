// A participant against a real hub that publishes a version the participant cannot use: the
// node records the failure and goes on, a restart does not retry it, a replay passes over a
// version deprecated since, and a second node on the same data directory is refused at once.
import { InterceptingCall, type Interceptor } from '@grpc/grpc-js';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/shared/logger.js';
import { loadEngine, type Engine } from '../../services/shared/ml/engine.js';
import { issueAccessToken } from '../../services/shared/tokens/index.js';
import {
  parseManifest,
  serialiseManifest,
  versionIdOf,
  type KnowledgeManifest,
} from '../../services/shared/knowledge/manifest.js';
import { packedManifestFields, packTensors } from '../../services/shared/knowledge/tensor-pack.js';
import { getVersion, publishVersion } from '../../services/registry/knowledge.js';
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

describe('a participant given a version it cannot distil', () => {
  let fixture: FederationFixture;
  let engine: Engine;
  let hub: RunningHub;
  const nodes: RunningParticipant[] = [];
  const results: Record<string, StudentResult[]> = { 'bank-a': [], 'bank-b': [] };
  const running = new Map<RunningParticipant, boolean>();

  const participant = async (
    id: 'bank-a' | 'bank-b',
    stateDir?: string,
    via?: { port: number; interceptors: Interceptor[] },
  ) => {
    const node = await startParticipant({
      ...fixtureParticipantOptions(fixture, id, `localhost:${via?.port ?? hub.grpcPort}`),
      ...(stateDir ? { stateDir } : {}),
      ...(via ? { interceptors: via.interceptors } : {}),
      student: { hidden: [8], epochs: 1, alpha: 0.9, batchSize: 256, learningRate: 1e-3, seed: 1 },
      logger,
      engine,
      registryUrl: 'memory://',
      backoffMs: { initial: 100, max: 1000 },
      onResult: (r) => results[id]!.push(r),
    });
    nodes.push(node);
    running.set(node, true);
    node.done.then(
      () => running.set(node, false),
      () => running.set(node, false),
    );
    return node;
  };
  const store = (id: string) => new LocalStore(join(fixture.dir, `${id}-state`));
  const actions = async (id: string) => (await store(id).readEvents()).map((e) => e.action);

  const publishGood = async () =>
    (
      await hub.publisher.publish({
        stream: 'default',
        epochs: 1,
        temperature: 4,
        hiddenLayers: ['hidden_1'],
        actor: 'ops',
      })
    ).version;

  /**
   * Publishes a version whose logits are those of a transfer set one row shorter than the
   * one its manifest names, as a hub that computed its states on another copy of the
   * transfer set would: the version verifies, but no student can be distilled from it.
   */
  const publishMisfit = async (parentId: string) => {
    const parent = parseManifest(
      parentId,
      (await getVersion(hub.registry.prisma, parentId)).manifestJson,
    );
    const rows = parent.transferSet.rows - 1;
    const packed = packTensors(
      [
        {
          name: 'logits',
          kind: 'logits',
          shape: [rows, 2],
          values: new Float32Array(rows * 2).map((_, i) => Math.sin(i)),
        },
      ],
      parent.chunkBytes,
    );
    const manifest: KnowledgeManifest = {
      ...parent,
      parentId,
      createdAt: new Date().toISOString(),
      ...packedManifestFields(packed),
    };
    const manifestJson = serialiseManifest(manifest);
    const id = versionIdOf(manifestJson);
    await publishVersion(hub.registry.prisma, {
      stream: 'default',
      id,
      manifestJson,
      rootHash: packed.rootHash,
      parentId,
      chunks: packed.chunks,
      actor: 'ops',
    });
    return id;
  };

  beforeAll(async () => {
    fixture = await createFederationFixture('participant-resilience', 6, ['bank-a', 'bank-b']);
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
        seed: 6,
      },
      logger,
      engine,
    });
  }, 300_000);

  afterAll(async () => {
    for (const node of nodes) await node.stop();
    await hub?.close();
    await fixture?.remove();
  });

  it('records the failure, keeps running, distils the next version, and does not retry it on restart', async () => {
    const v1 = await publishGood();
    const first = await participant('bank-a');
    await until(() => results['bank-a']!.length === 1, 120_000, 'the v1 student');

    const misfit = await publishMisfit(v1.id);
    await until(async () => (await actions('bank-a')).length === 2, 60_000, 'the misfit event');
    const [, failed] = await store('bank-a').readEvents();
    expect(failed).toMatchObject({ sequence: 2, versionId: misfit, action: 'failed' });
    expect(failed!.error?.code).toBe('MODEL_SHAPE_MISMATCH');
    expect(failed!.error?.message).toContain('teacher logits');
    expect(running.get(first)).toBe(true);
    // The node keeps the student it had and has none of the misfit.
    expect((await store('bank-a').readState('default')).activeVersionId).toBe(v1.id);
    expect(existsSync(join(store('bank-a').studentDir(misfit), 'metrics.json'))).toBe(false);

    const v3 = await publishGood();
    await until(() => results['bank-a']!.length === 2, 120_000, 'the v3 student');
    expect(results['bank-a']!.map((r) => r.versionId)).toEqual([v1.id, v3.id]);
    expect(await actions('bank-a')).toEqual(['distilled', 'failed', 'distilled']);
    expect(running.get(first)).toBe(true);
    expect(await store('bank-a').readState('default')).toMatchObject({
      lastSequence: 3,
      activeVersionId: v3.id,
    });

    // While bank-a is stopped, a version is published and deprecated again.
    await first.stop();
    expect(running.get(first)).toBe(false);
    const v4 = await publishGood();
    const token = await issueAccessToken({
      privateKeyPem: await readFile(fixture.pki.jwtPrivateKey, 'utf8'),
      issuer: 'i',
      audience: 'a',
      subject: 'ops-1',
      role: 'operator',
    });
    const deprecated = await hub.http.inject({
      method: 'POST',
      url: `/v1/versions/${v4.id}/deprecate`,
      headers: { authorization: `Bearer ${token}` },
      payload: { reason: 'withdrawn' },
    });
    expect(deprecated.statusCode, deprecated.body).toBe(200);
    expect(deprecated.json().event).toMatchObject({ sequence: 5, currentVersionId: v3.id });

    // Restarted, it resumes after event 3: the failed event is not retried, and the version
    // deprecated since is passed over without a student.
    const second = await participant('bank-a');
    await until(async () => (await actions('bank-a')).length === 5, 60_000, 'events 4 and 5');
    expect(await actions('bank-a')).toEqual([
      'distilled',
      'failed',
      'distilled',
      'skipped (withdrawn by event 5)',
      'kept',
    ]);
    expect(results['bank-a']!.map((r) => r.versionId)).toEqual([v1.id, v3.id]);
    expect(existsSync(store('bank-a').studentDir(v4.id))).toBe(false);
    expect(running.get(second)).toBe(true);

    // A node that starts from nothing replays the whole stream the same way.
    const fresh = await participant('bank-b');
    await until(async () => (await actions('bank-b')).length === 5, 180_000, "bank-b's replay");
    expect(await actions('bank-b')).toEqual([
      'distilled',
      'failed',
      'distilled',
      'skipped (withdrawn by event 5)',
      'kept',
    ]);
    expect(results['bank-b']!.map((r) => r.versionId)).toEqual([v1.id, v3.id]);
    expect(await store('bank-b').readState('default')).toMatchObject({
      lastSequence: 5,
      activeVersionId: v3.id,
    });
    expect(running.get(fresh)).toBe(true);
  }, 600_000);

  it('refuses a second node on the same data directory before it subscribes', async () => {
    if ((await hub.registry.prisma.knowledgeVersion.count()) === 0) await publishGood();
    const stateDir = join(fixture.dir, 'shared-state');
    const holderEvents = () => new LocalStore(stateDir).readEvents();
    const holder = await participant('bank-a', stateDir);
    await until(async () => (await holderEvents()).length > 0, 120_000, "the holder's first event");
    const subscriptions = async () =>
      (await queryAccessLog(hub.registry.prisma, { actor: 'bank-a', action: 'subscribe' })).entries
        .length;
    const before = await subscriptions();
    const err = await participant('bank-a', stateDir).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'REGISTRY_LOCKED' });
    const message = (err as Error).message;
    expect(message).toContain(`participant "bank-a" at ${stateDir}`);
    expect(message).toContain(`(pid ${process.pid})`);
    expect(message).not.toContain('hub');
    expect(await subscriptions()).toBe(before);
    expect(running.get(holder)).toBe(true);

    // Once the first node has stopped, the directory is free again.
    await holder.stop();
    expect(existsSync(join(stateDir, 'participant.lock'))).toBe(false);
    const next = await participant('bank-a', stateDir);
    expect(running.get(next)).toBe(true);
    await next.stop();
  }, 300_000);

  it('stops at once during a download from a hub that has stopped answering', async () => {
    if ((await hub.registry.prisma.knowledgeVersion.count()) === 0) await publishGood();
    // A TCP relay to the hub that can be frozen, as a hub stopped (SIGSTOP) would be: the
    // connection stays open and nothing more comes back.
    const pairs: Socket[][] = [];
    let frozen = false;
    const relay = createServer((socket) => {
      const upstream = connect(hub.grpcPort, '127.0.0.1');
      socket.pipe(upstream);
      upstream.pipe(socket);
      socket.on('error', () => undefined);
      upstream.on('error', () => undefined);
      pairs.push([socket, upstream]);
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const freeze = () => {
      frozen = true;
      for (const [socket, upstream] of pairs) {
        socket!.unpipe(upstream!);
        upstream!.unpipe(socket!);
        socket!.pause();
        upstream!.pause();
      }
    };
    // The hub stops answering just as the participant asks for the version's chunks.
    const freezeOnFetch: Interceptor = (options, nextCall) =>
      new InterceptingCall(nextCall(options), {
        start(metadata, listener, next) {
          if (options.method_definition.path.endsWith('/FetchChunks')) freeze();
          next(metadata, listener);
        },
      });
    const stateDir = join(fixture.dir, 'stalled-state');
    try {
      const node = await participant('bank-b', stateDir, {
        port: (relay.address() as { port: number }).port,
        interceptors: [freezeOnFetch],
      });
      await until(() => frozen, 120_000, 'the download');
      // Within the 15 s that the command's shutdown grace allows.
      const outcome = await Promise.race([
        node.stop().then(() => 'stopped'),
        new Promise((r) => setTimeout(() => r('still stopping'), 15_000)),
      ]);
      expect(outcome).toBe('stopped');
      expect(running.get(node)).toBe(false);
      expect(existsSync(join(stateDir, 'participant.lock'))).toBe(false);
      // Nothing was handled: the next start downloads the version again.
      expect(await new LocalStore(stateDir).readEvents()).toEqual([]);
    } finally {
      for (const pair of pairs) for (const socket of pair) socket.destroy();
      await new Promise((resolve) => relay.close(resolve));
    }
  }, 300_000);
});
