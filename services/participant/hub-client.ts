import { credentials, type ClientReadableStream, type Interceptor } from '@grpc/grpc-js';
import type {
  Announcement__Output,
  Chunk__Output,
  KnowledgeClient,
} from '../shared/transport/proto.js';
import { loadKnowledgeProto } from '../shared/transport/proto.js';
import { CHANNEL_OPTIONS } from '../shared/transport/limits.js';

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
}

/** The participant's view of a hub: the three calls of `distillery.v1.Knowledge`. */
export interface HubClient {
  subscribe(stream: string, afterSequence: number): ClientReadableStream<Announcement__Output>;
  getManifest(versionId: string): Promise<Buffer>;
  fetchChunks(versionId: string, fromIndex: number): ClientReadableStream<Chunk__Output>;
  close(): void;
}

/**
 * Connects to a hub over mutually authenticated TLS with the participant's own key and
 * certificate. The connection is made lazily by grpc-js, on the first call.
 */
export function createHubClient(options: HubClientOptions): HubClient {
  const proto = loadKnowledgeProto();
  const channelCredentials = credentials.createSsl(
    Buffer.from(options.caPem),
    Buffer.from(options.keyPem),
    Buffer.from(options.certPem),
  );
  const client: KnowledgeClient = new proto.distillery.v1.Knowledge(
    options.address,
    channelCredentials,
    {
      ...CHANNEL_OPTIONS,
      ...(options.serverName ? { 'grpc.ssl_target_name_override': options.serverName } : {}),
      ...(options.interceptors ? { interceptors: options.interceptors } : {}),
    },
  );

  return {
    subscribe: (stream, afterSequence) =>
      client.Subscribe({ stream, afterSequence: String(afterSequence) }),
    getManifest: (versionId) =>
      new Promise<Buffer>((resolve, reject) => {
        client.GetManifest({ versionId }, (err, response) => {
          if (err || !response) reject(err ?? new Error('empty GetManifest response'));
          else resolve(response.manifestJson);
        });
      }),
    fetchChunks: (versionId, fromIndex) => client.FetchChunks({ versionId, fromIndex }),
    close: () => client.close(),
  };
}
