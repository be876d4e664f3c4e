export {
  clientContents,
  createCertificateAuthority,
  describeCertificatePem,
  issueClientCertificate,
  issueServerCertificate,
  type CertificateAuthority,
  type CreateCertificateAuthorityOptions,
  type IssueClientCertificateOptions,
  type IssuedCertificate,
  type IssueServerCertificateOptions,
  type SignedCertificate,
  type ValidityOptions,
} from './certificates.js';
export {
  createCertificateSigningRequest,
  readCertificateSigningRequest,
  signCertificateSigningRequest,
  type CertificateRequestFacts,
  type CreateCertificateSigningRequestOptions,
  type SignCertificateSigningRequestOptions,
  type SignedRequest,
} from './csr.js';
export {
  ensurePrivateDirectory,
  readPemFile,
  writePrivateFile,
  writePublicFile,
  type PemLabel,
} from './files.js';
export { fingerprintOfDer, x5tS256OfDer } from './fingerprint.js';
export {
  assertValidIdentity,
  CERTIFICATE_ROLES,
  identityFromCertificatePem,
  identityFromPeerCertificate,
  identityUri,
  isValidIdentity,
  parseIdentityUri,
  principalFromPeerCertificate,
  type CertificatePrincipal,
  type CertificateRole,
} from './identity.js';
export {
  initDevelopmentPki,
  issueParticipantFiles,
  pkiLayout,
  type ClientFiles,
  type InitDevelopmentPkiOptions,
  type IssueParticipantFilesOptions,
  type PkiLayout,
} from './layout.js';
