import type { Participant } from '../generated/prisma/client.js';
import { fail } from '../shared/errors.js';
import type { RegistryDb } from './database.js';

export type { Participant } from '../generated/prisma/client.js';

/** What {@link enrolParticipant} needs to know about a participant. */
export interface EnrolParticipantInput {
  /** The identity its client certificate carries, for example "bank-a". */
  id: string;
  /** A name for people; kept as it was when omitted on a later enrolment. */
  displayName?: string;
}

// The names the PKI issues certificates for; anything else could never authenticate.
const PARTICIPANT_ID = /^[a-z0-9][a-z0-9.-]{0,63}$/;

/**
 * Enrols a participant, or returns it unchanged but for `displayName` if it is enrolled
 * already; enrolling twice is not an error. A new participant is `active`.
 *
 * @throws PKI_BAD_NAME for an id the PKI could not have issued a certificate to
 */
export async function enrolParticipant(
  db: RegistryDb,
  input: EnrolParticipantInput,
): Promise<Participant> {
  if (!PARTICIPANT_ID.test(input.id)) throw fail('PKI_BAD_NAME', { name: input.id });

  const displayName = input.displayName === undefined ? {} : { displayName: input.displayName };
  return db.participant.upsert({
    where: { id: input.id },
    create: { id: input.id, ...displayName },
    update: displayName,
  });
}

/** The participant with this certificate identity, or null when none is enrolled. */
export async function getParticipant(db: RegistryDb, id: string): Promise<Participant | null> {
  return db.participant.findUnique({ where: { id } });
}

/** Every enrolled participant, by id. */
export async function listParticipants(db: RegistryDb): Promise<Participant[]> {
  return db.participant.findMany({ orderBy: { id: 'asc' } });
}
