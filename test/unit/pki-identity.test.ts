import type { PeerCertificate } from 'node:tls';
import { describe, expect, it } from 'vitest';
import {
  identityFromPeerCertificate,
  parseIdentityUri,
  principalFromPeerCertificate,
} from '../../services/shared/pki/index.js';
import { parseSubjectAltName } from '../../services/shared/pki/identity.js';

/** A peer certificate as Node reports it, reduced to the fields identity is read from. */
function peer(fields: { subjectaltname?: string; CN?: string | string[] }): PeerCertificate {
  return {
    subject: fields.CN === undefined ? {} : { CN: fields.CN },
    subjectaltname: fields.subjectaltname,
  } as unknown as PeerCertificate;
}

describe('identityFromPeerCertificate, as Node reports certificates', () => {
  it('reads the participant SAN URI', () => {
    const cert = peer({ subjectaltname: 'URI:urn:distillery:participant:bank-a', CN: 'other' });
    expect(identityFromPeerCertificate(cert)).toBe('bank-a');
  });

  it('finds the URI among other SANs', () => {
    const text = 'DNS:bank-a.example, URI:urn:distillery:participant:bank-a, IP Address:10.0.0.1';
    expect(identityFromPeerCertificate(peer({ subjectaltname: text }))).toBe('bank-a');
  });

  it('falls back to the CN when there is no Distillery URI', () => {
    expect(identityFromPeerCertificate(peer({ CN: 'bank-b' }))).toBe('bank-b');
    const cert = peer({ subjectaltname: 'URI:https://bank-b.example/', CN: 'bank-b' });
    expect(identityFromPeerCertificate(cert)).toBe('bank-b');
  });

  it('gives null for an invalid CN, two CNs, or no certificate', () => {
    expect(identityFromPeerCertificate(peer({ CN: 'Bank B' }))).toBeNull();
    expect(identityFromPeerCertificate(peer({ CN: ['bank-a', 'bank-b'] }))).toBeNull();
    expect(identityFromPeerCertificate({})).toBeNull();
    expect(identityFromPeerCertificate(null)).toBeNull();
  });

  it('gives null for an operator or auditor URI, without falling back to the CN', () => {
    const cert = peer({ subjectaltname: 'URI:urn:distillery:operator:alice', CN: 'alice' });
    expect(identityFromPeerCertificate(cert)).toBeNull();
    expect(principalFromPeerCertificate(cert)).toEqual({ identity: 'alice', role: 'operator' });
  });

  it('gives null for conflicting or malformed Distillery URIs', () => {
    const two = 'URI:urn:distillery:participant:bank-a, URI:urn:distillery:participant:bank-b';
    expect(identityFromPeerCertificate(peer({ subjectaltname: two, CN: 'bank-a' }))).toBeNull();
    const bad = peer({ subjectaltname: 'URI:urn:distillery:participant:Bank_A', CN: 'bank-a' });
    expect(identityFromPeerCertificate(bad)).toBeNull();
  });

  it('does not split a quoted SAN value into a second name', () => {
    // Node quotes a value holding ", " so that it cannot pass for a separate entry.
    const text = 'URI:"x:y, URI:urn:distillery:participant:bank-a", DNS:bank-c.example';
    expect(parseSubjectAltName(text)).toEqual([
      { type: 'URI', value: 'x:y, URI:urn:distillery:participant:bank-a' },
      { type: 'DNS', value: 'bank-c.example' },
    ]);
    expect(identityFromPeerCertificate(peer({ subjectaltname: text, CN: 'bank-c' }))).toBe(
      'bank-c',
    );
  });
});

describe('parseIdentityUri', () => {
  it('reads role and identity and refuses other URIs', () => {
    expect(parseIdentityUri('urn:distillery:auditor:eve')).toEqual({
      identity: 'eve',
      role: 'auditor',
    });
    expect(parseIdentityUri('urn:distillery:admin:eve')).toBeNull();
    expect(parseIdentityUri('urn:distillery:participant')).toBeNull();
    expect(parseIdentityUri('urn:other:participant:bank-a')).toBeNull();
  });
});
