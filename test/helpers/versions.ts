import type { ChannelOptions } from '@grpc/grpc-js';
import { readFile } from 'node:fs/promises';
import {
  MANIFEST_FORMAT,
  serialiseManifest,
  versionIdOf,
  type KnowledgeManifest,
} from '../../services/shared/knowledge/manifest.js';
import {
  packedManifestFields,
  packTensors,
  type TensorInput,
} from '../../services/shared/knowledge/tensor-pack.js';
import type { StateDtype } from '../../services/shared/knowledge/encoding.js';
import type { PrismaClient } from '../../services/generated/prisma/client.js';
import { publishVersion } from '../../services/registry/knowledge.js';
import type { PkiLayout } from '../../services/shared/pki/index.js';
import { createHubClient, type HubClient } from '../../services/participant/hub-client.js';

/** A synthetic version built from tensors, as the publisher builds one. */
export interface BuiltVersion {
  id: string;
  manifestJson: string;
  manifest: KnowledgeManifest;
  packed: ReturnType<typeof packTensors>;
  /** The version's blob, tensors end to end. */
  blob: Buffer;
}

/**
 * Packs `tensors` into a manifest of `stream` after `parentId`, whose transfer set claims
 * `transferRows` rows.
 */
export function buildVersionOf(
  stream: string,
  parentId: string | null,
  tensors: TensorInput[],
  chunkBytes: number,
  dtype: StateDtype = 'float32',
  transferRows = 1,
): BuiltVersion {
  const packed = packTensors(tensors, chunkBytes, { dtype });
  const manifest: KnowledgeManifest = {
    format: MANIFEST_FORMAT,
    stream,
    parentId,
    createdAt: new Date().toISOString(),
    teacher: {
      inputDim: 10,
      hidden: [64, 64],
      outputs: 2,
      params: 5000,
      weightsSha256: 'a'.repeat(64),
      epochsTrained: 1,
      validationAuc: 0.7,
      engine: 'test',
    },
    transferSet: { rows: transferRows, encodedSha256: 'b'.repeat(64) },
    preprocessing: {},
    temperature: 4,
    ...packedManifestFields(packed),
  };
  const manifestJson = serialiseManifest(manifest);
  return {
    id: versionIdOf(manifestJson),
    manifestJson,
    manifest,
    packed,
    blob: Buffer.concat(packed.chunks.map((c) => c.data)),
  };
}

/** Logits and one hidden layer of `rows` rows, their values set by `fill`. */
export function stateTensors(rows: number, fill: number, hiddenFill = fill): TensorInput[] {
  return [
    {
      name: 'logits',
      kind: 'logits',
      shape: [rows, 2],
      values: new Float32Array(rows * 2).map((_, i) => fill + i * 0.001),
    },
    {
      name: 'hidden.hidden_2',
      kind: 'hidden',
      layer: 'hidden_2',
      shape: [rows, 64],
      values: new Float32Array(rows * 64).map((_, i) => Math.sin(hiddenFill + i)),
    },
  ];
}

/** Publishes a built version straight into the registry; returns where it went. */
export function publishBuilt(prisma: PrismaClient, version: BuiltVersion) {
  return publishVersion(prisma, {
    stream: version.manifest.stream,
    id: version.id,
    manifestJson: version.manifestJson,
    rootHash: version.packed.rootHash,
    parentId: version.manifest.parentId,
    chunks: version.packed.chunks,
  });
}

/** A hub client with a participant's development certificate. */
export async function hubClientFor(
  pki: PkiLayout,
  identity: string,
  address: string,
  channelOptions?: ChannelOptions,
): Promise<HubClient> {
  return createHubClient({
    address,
    ...(channelOptions ? { channelOptions } : {}),
    caPem: await readFile(pki.caCert),
    certPem: await readFile(pki.participant(identity).cert),
    keyPem: await readFile(pki.participant(identity).key),
  });
}

/** The hub's TLS material of a development PKI, as PEM text for `startKnowledgeServer`. */
export async function hubTlsPems(
  pki: PkiLayout,
): Promise<{ caPem: string; certPem: string; keyPem: string }> {
  return {
    caPem: await readFile(pki.caCert, 'utf8'),
    certPem: await readFile(pki.hubCert, 'utf8'),
    keyPem: await readFile(pki.hubKey, 'utf8'),
  };
}
