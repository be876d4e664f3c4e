import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  enrolParticipant,
  getParticipant,
  listParticipants,
} from '../../services/registry/participants.js';
import { hasCode } from '../../services/shared/errors.js';
import { registryTargets, type TestRegistry } from '../helpers/database.js';

describe.each(registryTargets())('participants ($name)', (target) => {
  let db: TestRegistry;

  beforeAll(async () => {
    db = await target.open();
  });
  afterAll(async () => {
    await db?.cleanup();
  });

  it('enrols a participant as active and finds it by certificate identity', async () => {
    const enrolled = await enrolParticipant(db.prisma, { id: 'bank-a', displayName: 'Bank A' });
    expect(enrolled).toMatchObject({ id: 'bank-a', displayName: 'Bank A', status: 'active' });
    expect(enrolled.enrolledAt).toBeInstanceOf(Date);
    expect(await getParticipant(db.prisma, 'bank-a')).toEqual(enrolled);
  });

  it('treats enrolling again as a no-op that may only change the display name', async () => {
    const first = await enrolParticipant(db.prisma, { id: 'bank-b', displayName: 'Bank B' });
    const again = await enrolParticipant(db.prisma, { id: 'bank-b' });
    expect(again).toEqual(first);
    const renamed = await enrolParticipant(db.prisma, { id: 'bank-b', displayName: 'B plc' });
    expect(renamed).toMatchObject({ displayName: 'B plc', enrolledAt: first.enrolledAt });
  });

  it('answers null for an identity that is not enrolled', async () => {
    expect(await getParticipant(db.prisma, 'bank-zz')).toBeNull();
  });

  it('lists participants by id', async () => {
    await enrolParticipant(db.prisma, { id: 'acme.bank' });
    const ids = (await listParticipants(db.prisma)).map((p) => p.id);
    expect(ids).toEqual([...ids].sort());
    expect(ids).toEqual(expect.arrayContaining(['acme.bank', 'bank-a', 'bank-b']));
  });

  it('refuses an identity the PKI could not have issued', async () => {
    const err = await enrolParticipant(db.prisma, { id: 'Bank A!' }).catch((e: unknown) => e);
    expect(hasCode(err, 'PKI_BAD_NAME')).toBe(true);
  });
});
