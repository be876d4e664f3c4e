import { ServerCredentials, type Server as GrpcServer } from '@grpc/grpc-js';
import { createServer, type TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import type { Logger } from '../shared/logger.js';

/** What the hub knows about a connection it refused during the TLS handshake. */
export interface RefusedConnection {
  peerAddress: string;
  /** The subject CN the client presented, unverified; null when it presented none. */
  claimedIdentity: string | null;
  /** OpenSSL's verdict, e.g. CERT_HAS_EXPIRED or UNABLE_TO_VERIFY_LEAF_SIGNATURE. */
  reason: string;
}

/** Options of {@link listenMtls}. */
export interface MtlsListenerOptions {
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  caPem: string | Buffer;
  certPem: string | Buffer;
  keyPem: string | Buffer;
  grpcServer: GrpcServer;
  /** Called for every refused handshake, before the socket is destroyed. */
  onRefused: (refusal: RefusedConnection) => Promise<void> | void;
  logger: Logger;
}

/** A listening mTLS front of a gRPC server. */
export interface MtlsListener {
  readonly port: number;
  /** Stops accepting, lets open calls finish for `graceMs`, then cuts what remains. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Serves a grpc-js server over mutually authenticated TLS, terminating TLS itself.
 *
 * grpc-js's own `ServerCredentials.createSsl(..., true)` refuses a bad client certificate
 * inside OpenSSL, where nothing in the application sees it; an auditor must see those
 * refusals. So this listener asks for the certificate without letting OpenSSL reject it,
 * checks `socket.authorized` once the handshake is complete, records and destroys every
 * connection that failed verification before a single byte of it is read, and hands only
 * verified connections to grpc-js through its connection injector. grpc-js then sees a
 * TLSSocket whose `authorized` is true, so `call.getAuthContext()` carries the verified
 * peer certificate.
 */
export async function listenMtls(options: MtlsListenerOptions): Promise<MtlsListener> {
  const { logger } = options;
  const injector = options.grpcServer.createConnectionInjector(ServerCredentials.createInsecure());
  const sockets = new Set<Socket>();

  const server = createServer({
    ca: options.caPem,
    cert: options.certPem,
    key: options.keyPem,
    requestCert: true,
    // Verification still happens; the verdict is read below instead of aborting the
    // handshake, so that the refusal can be logged with what the client presented.
    rejectUnauthorized: false,
    ALPNProtocols: ['h2'],
    minVersion: 'TLSv1.2',
  });

  const refuse = (socket: TLSSocket, reason: string) => {
    const presented = socket.getPeerCertificate?.();
    const cn = presented?.subject?.CN;
    const refusal: RefusedConnection = {
      peerAddress: `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`,
      // What a stranger claims is cut short: it is written to the log, and a certificate
      // can carry a subject of tens of kilobytes.
      claimedIdentity: typeof cn === 'string' && cn.length > 0 ? cn.slice(0, 64) : null,
      reason,
    };
    // Nothing from the socket is read while the refusal is recorded, and it is closed only
    // afterwards, so that when the client sees the refusal the log already holds it.
    socket.pause();
    Promise.resolve()
      .then(() => options.onRefused(refusal))
      .catch((err: unknown) =>
        logger.error({ err, ...refusal }, 'refused connection could not be recorded'),
      )
      .finally(() => socket.destroy());
  };

  server.on('secureConnection', (socket: TLSSocket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', (err) => logger.debug({ err }, 'client socket error'));

    if (!socket.authorized) {
      const presented = socket.getPeerCertificate();
      const hasCertificate = presented && Object.keys(presented).length > 0;
      const reason = hasCertificate
        ? String(socket.authorizationError ?? 'certificate not verified')
        : 'NO_CLIENT_CERTIFICATE';
      refuse(socket, reason);
      return;
    }
    if (socket.alpnProtocol !== 'h2') {
      refuse(socket, `ALPN_NOT_H2 (${String(socket.alpnProtocol)})`);
      return;
    }
    injector.injectConnection(socket);
  });

  // Handshakes that fail outright (wrong protocol version, garbage bytes) end here.
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    refuse(socket, err.code ?? err.message);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  logger.info({ host: options.host, port }, 'mTLS gRPC listener started');

  return {
    port,
    async close(graceMs = 2_000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      injector.drain(graceMs);
      await new Promise<void>((resolve) => {
        options.grpcServer.tryShutdown(() => resolve());
        setTimeout(() => {
          options.grpcServer.forceShutdown();
          resolve();
        }, graceMs).unref();
      });
      injector.destroy();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
