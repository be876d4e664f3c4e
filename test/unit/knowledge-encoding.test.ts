import { describe, expect, it } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import { decodeTensor, encodeTensor } from '../../services/shared/knowledge/encoding.js';
import {
  chunkSpans,
  parseManifest,
  rootHashOf,
  serialiseManifest,
  versionIdOf,
  type KnowledgeManifest,
} from '../../services/shared/knowledge/manifest.js';
import {
  packTensors,
  unpackArtefact,
  unpackTensor,
} from '../../services/shared/knowledge/tensor-pack.js';
import { sha256Hex } from '../../services/shared/digest.js';
import { MAX_CHUNK_BYTES } from '../../services/shared/transport/limits.js';
import { buildVersionOf, stateTensors } from '../helpers/versions.js';

const values = Float32Array.from({ length: 5000 }, (_, i) => Math.sin(i) * 7 - 0.5);

describe('tensor encodings', () => {
  it('keeps float32 exactly, float16 to 2^-11 relative, int8 to half a step of max|v|/127', () => {
    const f32 = encodeTensor('t', values, 'float32');
    expect(Array.from(decodeTensor(f32.bytes, 'float32'))).toEqual(Array.from(values));

    const f16 = encodeTensor('t', values, 'float16');
    expect(f16.bytes.byteLength).toBe(values.length * 2);
    const half = decodeTensor(f16.bytes, 'float16');
    values.forEach((v, i) =>
      expect(Math.abs(half[i]! - v)).toBeLessThanOrEqual(Math.abs(v) / 2048),
    );

    const i8 = encodeTensor('t', values, 'int8');
    expect(i8.bytes.byteLength).toBe(values.length);
    const maxAbs = values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(i8.scale).toBeCloseTo(maxAbs / 127, 10);
    const quarter = decodeTensor(i8.bytes, 'int8', i8.scale);
    values.forEach((v, i) =>
      expect(Math.abs(quarter[i]! - v)).toBeLessThanOrEqual(i8.scale! / 2 + 1e-6),
    );
  });

  it('refuses values an encoding cannot carry, naming the tensor', () => {
    const big = Float32Array.from([1, 70_000]);
    const err = (() => {
      try {
        encodeTensor('hidden.hidden_1', big, 'float16');
      } catch (e) {
        return e;
      }
    })();
    expect(hasCode(err, 'TENSOR_NOT_ENCODABLE')).toBe(true);
    expect((err as Error).message).toContain('hidden.hidden_1');
    expect(() => encodeTensor('x', Float32Array.from([NaN]), 'int8')).toThrow(/NaN/);
  });
});

describe('per-tensor chunks', () => {
  it('gives an unchanged tensor the same chunk hashes in the next version', () => {
    const v1 = buildVersionOf('s', null, stateTensors(3000, 1, 5), 8192);
    const v2 = buildVersionOf('s', v1.id, stateTensors(3000, 2, 5), 8192);
    const hidden = (m: KnowledgeManifest) => {
      const t = m.tensors.find((x) => x.name === 'hidden.hidden_2')!;
      return m.chunks.slice(t.firstChunk!, t.firstChunk! + t.chunkCount!);
    };
    expect(hidden(v2.manifest)).toEqual(hidden(v1.manifest));
    expect(v2.manifest.chunks[0]).not.toBe(v1.manifest.chunks[0]);
    // Every chunk lies inside one tensor.
    for (const span of chunkSpans(v2.manifest)) {
      const t = v2.manifest.tensors.find((x) => x.name === span.tensor)!;
      expect(span.offset).toBeGreaterThanOrEqual(t.offset);
      expect(span.offset + span.length).toBeLessThanOrEqual(t.offset + t.byteLength);
      expect(sha256Hex(v2.blob.subarray(span.offset, span.offset + span.length))).toBe(span.sha256);
    }
  });

  it('decodes each dtype back to float32 and carries artefacts byte for byte', () => {
    const artefact = new TextEncoder().encode('{"modelTopology":{}}');
    for (const dtype of ['float32', 'float16', 'int8'] as const) {
      const v = buildVersionOf(
        's',
        null,
        [
          ...stateTensors(100, 3),
          { name: 'student/model.json', kind: 'artefact', bytes: artefact },
        ],
        1024,
        dtype,
      );
      const manifest = parseManifest(v.id, v.manifestJson);
      const logits = unpackTensor(manifest, v.blob, 'logits');
      expect(logits[1]).toBeCloseTo(3.001, dtype === 'int8' ? 1 : 2);
      expect(Buffer.from(unpackArtefact(manifest, v.blob, 'student/model.json'))).toEqual(
        Buffer.from(artefact),
      );
      expect(manifest.tensors.at(-1)).toMatchObject({ kind: 'artefact', dtype: 'uint8' });
    }
  });

  it('refuses a chunk size that would not fit one gRPC message', () => {
    expect(() => packTensors(stateTensors(10, 1), MAX_CHUNK_BYTES + 1)).toThrow(/outside 1 to/);
  });

  it('rejects a manifest whose tensors do not own consecutive chunk runs', () => {
    const v = buildVersionOf('s', null, stateTensors(200, 1), 1024);
    const broken = structuredClone(v.manifest);
    broken.tensors[1]!.firstChunk = 0;
    const json = serialiseManifest(broken);
    expect(() => parseManifest(versionIdOf(json), json)).toThrow(/not where its predecessors end/);
  });

  it('still reads format 1 manifests, whose chunks were cut across tensors', () => {
    const values1 = new Float32Array(600).map((_, i) => i);
    const blob = new Uint8Array(values1.buffer);
    const chunks = [0, 1000, 2000].map((o) =>
      sha256Hex(blob.subarray(o, Math.min(o + 1000, 2400))),
    );
    const v1: KnowledgeManifest = {
      ...buildVersionOf('s', null, stateTensors(1, 1), 1024).manifest,
      format: 'distillery.knowledge/1',
      tensors: [
        {
          name: 'logits',
          kind: 'logits',
          shape: [300, 2],
          dtype: 'float32',
          offset: 0,
          byteLength: 2400,
        },
      ],
      chunkBytes: 1000,
      chunks,
      totalBytes: 2400,
      rootHash: rootHashOf(chunks),
    };
    const json = serialiseManifest(v1);
    const parsed = parseManifest(versionIdOf(json), json);
    expect(chunkSpans(parsed).map((s) => [s.offset, s.length])).toEqual([
      [0, 1000],
      [1000, 1000],
      [2000, 400],
    ]);
    expect(unpackTensor(parsed, blob, 'logits')[599]).toBe(599);
  });
});
