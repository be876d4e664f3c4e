import { loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProtoGrpcType } from '../../generated/proto/knowledge.js';

export type { KnowledgeClient } from '../../generated/proto/distillery/v1/Knowledge.js';
export type { KnowledgeHandlers } from '../../generated/proto/distillery/v1/Knowledge.js';
export type { Announcement__Output } from '../../generated/proto/distillery/v1/Announcement.js';
export type { Announcement } from '../../generated/proto/distillery/v1/Announcement.js';
export type { Chunk, Chunk__Output } from '../../generated/proto/distillery/v1/Chunk.js';
export type { SubscribeRequest__Output } from '../../generated/proto/distillery/v1/SubscribeRequest.js';
export type { GetManifestRequest__Output } from '../../generated/proto/distillery/v1/GetManifestRequest.js';
export type {
  ManifestResponse,
  ManifestResponse__Output,
} from '../../generated/proto/distillery/v1/ManifestResponse.js';
export type { FetchChunksRequest__Output } from '../../generated/proto/distillery/v1/FetchChunksRequest.js';

const PROTO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'proto');

let cached: ProtoGrpcType | undefined;

/**
 * Loads `distillery.v1` from proto/. The options match those the generated types were
 * produced with (scripts/generate.js): 64-bit integers as strings, defaults filled in.
 */
export function loadKnowledgeProto(): ProtoGrpcType {
  if (cached) return cached;
  const definition = loadSync('distillery/v1/knowledge.proto', {
    includeDirs: [PROTO_ROOT],
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  cached = loadPackageDefinition(definition) as unknown as ProtoGrpcType;
  return cached;
}
