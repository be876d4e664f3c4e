export { parseBearer } from './bearer.js';
export { ACCESS_TOKEN_TYPE, issueAccessToken, type IssueAccessTokenOptions } from './issue.js';
export { isRole, requireRole, ROLES, type Role } from './roles.js';
export {
  generateSigningKey,
  keyIdOfJwk,
  TOKEN_ALGORITHM,
  type SigningKeyMaterial,
} from './signing-key.js';
export {
  createTokenVerifier,
  type TokenVerifier,
  type TokenVerifierOptions,
  type VerifiedToken,
} from './verify.js';
export {
  createParticipantTokenVerifier,
  issueParticipantToken,
  KNOWLEDGE_AUDIENCE,
  PARTICIPANT_TOKEN_TTL_SECONDS,
  type IssueParticipantTokenOptions,
  type ParticipantTokenVerifier,
  type VerifiedParticipantToken,
} from './participant-token.js';
export {
  generateHubSigningKey,
  loadOrCreateHubSigningKey,
  type HubSigningKey,
} from './key-store.js';
