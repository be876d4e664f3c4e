// Stream places beyond what the registry can store (event sequences are PostgreSQL int4)
// are refused as bad requests naming the field, over gRPC and over the HTTPS API, instead of
// reaching the database and coming back as INTERNAL / 500.
import { status as GrpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bearer,
  drainStream,
  issueToken,
  startTrustHub,
  type TrustHub,
} from '../helpers/trust-hub.js';

let t: TrustHub;

beforeAll(async () => {
  t = await startTrustHub({
    purpose: 'sequence-bounds',
    participants: ['bank-a'],
    enrolled: ['bank-a'],
    versions: 1,
  });
}, 240_000);

afterAll(async () => {
  await t?.close();
});

describe('Subscribe after_sequence', () => {
  const subscribe = async (afterSequence: string) => {
    const client = t.grpc(await t.participantCert('bank-a'));
    try {
      const token = await issueToken(client);
      const stream = client.Subscribe({ stream: 'default', afterSequence }, bearer(token));
      return await drainStream(stream, 1);
    } finally {
      client.close();
    }
  };

  it.each(['2147483648', '99999999999999', '18446744073709551615'])(
    'refuses %s with INVALID_ARGUMENT naming after_sequence',
    async (afterSequence) => {
      const { items, err } = await subscribe(afterSequence);
      expect(items).toEqual([]);
      expect(err?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(err?.details).toContain('after_sequence must be an integer from 0 to 2147483647');
    },
  );

  it('still refuses a place past the stream within range as ahead of the stream', async () => {
    const { err } = await subscribe('2147483647');
    expect(err?.code).toBe(GrpcStatus.FAILED_PRECONDITION);
  });

  it('still announces from a place in range', async () => {
    const { items, err } = await subscribe('0');
    expect(err).toBeNull();
    expect(items).toHaveLength(1);
  });
});

describe('GET /v1/streams/:stream/events?after=', () => {
  it.each(['2147483648', '99999999999999', '1e400'])('refuses after=%s with 400', async (after) => {
    const operator = await t.apiToken('operator');
    const response = await t.api('GET', `/v1/streams/default/events?after=${after}`, operator);
    expect(response.status, JSON.stringify(response.body)).toBe(400);
    expect(response.body.error.message).toContain('after');
  });

  it('answers after=2147483647 with no events', async () => {
    const operator = await t.apiToken('operator');
    const response = await t.api('GET', '/v1/streams/default/events?after=2147483647', operator);
    expect(response.status).toBe(200);
    expect(response.body.events).toEqual([]);
  });
});
