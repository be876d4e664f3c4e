import {
  credentials,
  Metadata,
  type ChannelOptions,
  type ClientReadableStream,
  type Interceptor,
} from '@grpc/grpc-js';
import type {
  Announcement__Output,
  Chunk__Output,
  KnowledgeClient,
} from '../shared/transport/proto.js';
import { loadKnowledgeProto } from '../shared/transport/proto.js';
import { CHANNEL_OPTIONS } from '../shared/transport/limits.js';
import type { QueryRequest } from '../generated/proto/distillery/v1/QueryRequest.js';
import type { QueryResponse__Output } from '../generated/proto/distillery/v1/QueryResponse.js';

/** Options of {@link createHubClient}. */
export interface HubClientOptions {
  /** The hub's gRPC address, `host:port`. */
  address: string;
  caPem: string | Buffer;
  certPem: string | Buffer;
  keyPem: string | Buffer;
  /** Name to check the hub's certificate against, when it differs from the host. */
  serverName?: string;
  /** grpc-js client interceptors, e.g. for metrics; none by default. */
  interceptors?: Interceptor[];
  /** Channel options over the shared CHANNEL_OPTIONS (tests, tuning); none by default. */
  channelOptions?: ChannelOptions;
  /**
   * Renew the access token this many seconds before it expires; default 60. Tokens come
   * from the hub's IssueToken call, bound to this client's certificate.
   */
  tokenRefreshSeconds?: number;
}

/** Which chunks of a version to fetch (see FetchChunksRequest). */
export interface ChunkRequest {
  /** Every chunk from this index on, unless `indices` is given; default 0. */
  fromIndex?: number;
  /** Exactly these chunks, ascending. */
  indices?: number[];
  /** Only chunks of these tensors; default every tensor the grant allows. */
  tensors?: string[];
}

/** The participant's view of a hub: the three calls of `distillery.v1.Knowledge`. */
export interface HubClient {
  subscribe(stream: string, afterSequence: number): ClientReadableStream<Announcement__Output>;
  /** The version's manifest bytes; `signal` cancels the call (a node stopping). */
  getManifest(versionId: string, signal?: AbortSignal): Promise<Buffer>;
  fetchChunks(
    versionId: string,
    request: number | ChunkRequest,
  ): ClientReadableStream<Chunk__Output>;
  /** Query mode: the teacher's states for the participant's own rows (see query-client.ts). */
  query(request: QueryRequest): Promise<QueryResponse__Output>;
  close(): void;
}

/**
 * Connects to a hub over mutually authenticated TLS with the participant's own key and
 * certificate. The connection is made lazily by grpc-js, on the first call.
 */
export function createHubClient(options: HubClientOptions): HubClient {
  const proto = loadKnowledgeProto();
  const tls = credentials.createSsl(
    Buffer.from(options.caPem),
    Buffer.from(options.keyPem),
    Buffer.from(options.certPem),
  );
  // Every call but IssueToken carries `authorization: Bearer <token>`. The token is asked
  // for on the first call, kept while it has more than `tokenRefreshSeconds` to live, and
  // is worth nothing without this client's key: the hub checks it against the certificate.
  let token: { value: string; expiresAt: number } | undefined;
  let pendingToken: Promise<string> | undefined;
  const refreshSeconds = options.tokenRefreshSeconds ?? 60;
  const currentToken = (): Promise<string> => {
    if (token && token.expiresAt - refreshSeconds > Date.now() / 1000) {
      return Promise.resolve(token.value);
    }
    pendingToken ??= new Promise<string>((resolve, reject) => {
      client.IssueToken({}, (err, response) => {
        pendingToken = undefined;
        if (err || !response) return reject(err ?? new Error('empty IssueToken response'));
        token = { value: response.accessToken, expiresAt: Number(response.expiresAt) };
        resolve(token.value);
      });
    });
    return pendingToken;
  };
  const bearer = credentials.createFromMetadataGenerator((params, callback) => {
    if (params.method_name.endsWith('IssueToken')) return callback(null, new Metadata());
    currentToken().then(
      (value) => {
        const metadata = new Metadata();
        metadata.set('authorization', `Bearer ${value}`);
        callback(null, metadata);
      },
      (err: Error) => callback(err),
    );
  });
  const channelCredentials = credentials.combineChannelCredentials(tls, bearer);
  const client: KnowledgeClient = new proto.distillery.v1.Knowledge(
    options.address,
    channelCredentials,
    {
      ...CHANNEL_OPTIONS,
      ...(options.serverName ? { 'grpc.ssl_target_name_override': options.serverName } : {}),
      ...(options.interceptors ? { interceptors: options.interceptors } : {}),
      ...options.channelOptions,
    },
  );

  return {
    subscribe: (stream, afterSequence) =>
      client.Subscribe({ stream, afterSequence: String(afterSequence) }),
    getManifest: (versionId, signal) =>
      new Promise<Buffer>((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason);
        // Cancelling is local: it ends the call also when the hub has stopped answering.
        const onAbort = () => call.cancel();
        const call = client.GetManifest({ versionId }, (err, response) => {
          signal?.removeEventListener('abort', onAbort);
          if (signal?.aborted) reject(signal.reason);
          else if (err || !response) reject(err ?? new Error('empty GetManifest response'));
          else resolve(response.manifestJson);
        });
        signal?.addEventListener('abort', onAbort, { once: true });
      }),
    fetchChunks: (versionId, request) => {
      const r = typeof request === 'number' ? { fromIndex: request } : request;
      return client.FetchChunks({
        versionId,
        fromIndex: r.fromIndex ?? 0,
        indices: r.indices ?? [],
        tensors: r.tensors ?? [],
      });
    },
    query: (request) =>
      new Promise<QueryResponse__Output>((resolve, reject) => {
        client.Query(request, (err, response) => {
          if (err || !response) reject(err ?? new Error('empty Query response'));
          else resolve(response);
        });
      }),
    close: () => client.close(),
  };
}
