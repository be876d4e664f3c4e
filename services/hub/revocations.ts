/**
 * Tells the open calls of a certificate that it was revoked. The HTTP API announces a
 * revocation here once it is committed; Subscribe and FetchChunks streams of that
 * certificate watch for it and close themselves with UNAUTHENTICATED. Calls that start later
 * are refused by the registry check, so this only concerns calls already open in this hub
 * process; a hub sharing the database with another learns of revocations made there on the
 * next call of each certificate.
 */
export class CertificateRevocations {
  private readonly watchers = new Map<string, Set<(serial: string) => void>>();

  /** Calls `onRevoked` when the certificate with this fingerprint is revoked; returns the unwatch. */
  watch(fingerprint: string, onRevoked: (serial: string) => void): () => void {
    let set = this.watchers.get(fingerprint);
    if (!set) {
      set = new Set();
      this.watchers.set(fingerprint, set);
    }
    set.add(onRevoked);
    return () => {
      set.delete(onRevoked);
      if (set.size === 0 && this.watchers.get(fingerprint) === set)
        this.watchers.delete(fingerprint);
    };
  }

  /** Announces a committed revocation; returns how many open calls were told. */
  revoked(fingerprint: string, serial: string): number {
    const set = this.watchers.get(fingerprint);
    if (!set) return 0;
    this.watchers.delete(fingerprint);
    for (const onRevoked of set) onRevoked(serial);
    return set.size;
  }
}
