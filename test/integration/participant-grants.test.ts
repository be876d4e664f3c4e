import { readFile } from 'node:fs/promises';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/shared/logger.js';
import { loadEngine, type Engine } from '../../services/shared/ml/engine.js';
import { queryAccessLog } from '../../services/registry/access-log.js';
import { createGrant, listGrants, revokeGrant } from '../../services/registry/grants.js';
import { startHub, type RunningHub } from '../../services/hub/hub.js';
import { createHubClient } from '../../services/participant/hub-client.js';
import { startParticipant } from '../../services/participant/participant.js';
import {
  createFederationFixture,
  fixtureHubOptions,
  fixtureParticipantOptions,
  type FederationFixture,
} from '../helpers/federation.js';

const logger = silentLogger();
const op = { actor: 'ops' };

/**
 * A participant asks only for the tensors its distiller reads, so a narrow grant is enough,
 * and a grant whose release policy limits the states is told to use query mode.
 */
describe('participants under narrow grants', () => {
  let fixture: FederationFixture;
  let engine: Engine;
  let hub: RunningHub;

  const node = (id: 'bank-a' | 'bank-b') =>
    startParticipant({
      ...fixtureParticipantOptions(fixture, id, `localhost:${hub.grpcPort}`),
      student: { hidden: [8], epochs: 1, alpha: 0.9, batchSize: 256, learningRate: 1e-3, seed: 5 },
      logger,
      engine,
      exitAfter: 1,
      registryUrl: false,
      backoffMs: { initial: 100, max: 1000 },
    });

  beforeAll(async () => {
    fixture = await createFederationFixture('participant-grants', 5, ['bank-a', 'bank-b']);
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
        seed: 5,
      },
      logger,
      engine,
    });
    // Replace the default full grants: bank-a may read logits only, bank-b only through
    // query mode with labels.
    for (const grant of await listGrants(hub.registry.prisma)) {
      await revokeGrant(hub.registry.prisma, grant.id, op);
    }
    await createGrant(
      hub.registry.prisma,
      { participantId: 'bank-a', stream: 'default', kinds: ['logits'] },
      op,
    );
    await createGrant(
      hub.registry.prisma,
      {
        participantId: 'bank-b',
        stream: 'default',
        kinds: ['probabilities'],
        policy: { release: 'label', queryMode: true },
      },
      op,
    );
    await hub.publisher.publish({
      stream: 'default',
      epochs: 1,
      temperature: 4,
      hiddenLayers: ['hidden_1'],
      actor: 'ops',
    });
  }, 300_000);

  afterAll(async () => {
    await hub?.close();
    await fixture?.remove();
  });

  it('distils under a logits-only grant, fetching the logits and nothing else', async () => {
    const bankA = await node('bank-a');
    const [result] = await bankA.done;
    expect(result?.auc).toBeGreaterThan(0.5);
    const downloads = (
      await queryAccessLog(hub.registry.prisma, { actor: 'bank-a', action: 'download' })
    ).entries;
    expect(downloads.map((e) => e.outcome)).toEqual(['allowed']);
    expect((downloads[0]?.detail as { tensors?: string[] }).tensors).toEqual(['logits']);
  }, 180_000);

  it('tells a participant whose grant limits the states to use query mode', async () => {
    const bankB = await node('bank-b');
    await expect(bankB.done).rejects.toThrow(/query mode only/);
    const denied = (
      await queryAccessLog(hub.registry.prisma, { actor: 'bank-b', outcome: 'denied' })
    ).entries;
    expect(denied.some((e) => e.action === 'download' && /query mode/.test(e.reason ?? ''))).toBe(
      true,
    );
  }, 180_000);

  it('refuses a subscription whose saved place is past the end of the stream', async () => {
    const client = createHubClient({
      address: `localhost:${hub.grpcPort}`,
      caPem: await readFile(fixture.pki.caCert),
      certPem: await readFile(fixture.pki.participant('bank-a').cert),
      keyPem: await readFile(fixture.pki.participant('bank-a').key),
    });
    try {
      const failure = await new Promise<{ code?: number; details?: string }>((resolve) => {
        const call = client.subscribe('default', 99);
        call.on('data', () => undefined);
        call.on('error', resolve);
      });
      expect(failure.code).toBe(GrpcStatus.FAILED_PRECONDITION);
      expect(failure.details).toMatch(/ends at event 1 but the subscriber has seen up to event 99/);
    } finally {
      client.close();
    }
  }, 60_000);
});
