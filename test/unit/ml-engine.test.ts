import { createRequire } from 'node:module';
import { describe, expect, it, vi } from 'vitest';
import { hasCode } from '../../services/shared/errors.js';
import { silentLogger } from '../../services/shared/logger.js';
import { engineOrder, loadEngine } from '../../services/shared/ml/engine.js';

function installed(name: string): boolean {
  try {
    createRequire(import.meta.url).resolve(name);
    return true;
  } catch {
    return false;
  }
}
const nativeInstalled =
  installed('@tensorflow/tfjs-node') || installed('@tensorflow/tfjs-node-gpu');

describe('engineOrder', () => {
  it('tries native GPU, native CPU, WebAssembly, then plain JavaScript by default', () => {
    expect(engineOrder()).toEqual(['tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu']);
  });

  it('puts a preferred engine first and keeps the rest in order', () => {
    expect(engineOrder({ prefer: 'wasm' })).toEqual(['wasm', 'tfjs-node-gpu', 'tfjs-node', 'cpu']);
  });

  it('gives only the forced engine, whatever is preferred', () => {
    expect(engineOrder({ forced: 'cpu', prefer: 'wasm' })).toEqual(['cpu']);
  });

  it('rejects an unknown engine name with CONFIG_INVALID naming the variable', () => {
    expect.assertions(2);
    try {
      engineOrder({ forced: 'cuda' });
    } catch (err) {
      expect(hasCode(err, 'CONFIG_INVALID')).toBe(true);
      expect((err as Error).message).toContain('DISTILLERY_ENGINE');
    }
  });
});

describe('loadEngine', () => {
  it('returns one cached engine per process', async () => {
    const first = await loadEngine({ logger: silentLogger() });
    const second = await loadEngine({ logger: silentLogger() });
    expect(second).toBe(first);
    expect(first.tf.getBackend()).toBe(
      first.name === 'wasm' || first.name === 'cpu' ? first.name : 'tensorflow',
    );
  });

  it.skipIf(nativeInstalled || process.env.DISTILLERY_ENGINE !== undefined)(
    'falls back to WebAssembly when the native packages are absent, saying why',
    async () => {
      const engine = await loadEngine({ logger: silentLogger() });
      expect(engine.name).toBe('wasm');
      expect(engine.gpu).toBe(false);
      expect(engine.fallbackReason).toContain('tfjs-node-gpu: package not installed');
      expect(engine.fallbackReason).toContain('tfjs-node: package not installed');
    },
  );

  it('computes with the loaded backend', async () => {
    const { tf } = await loadEngine({ logger: silentLogger() });
    const value = tf.tidy(() =>
      tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync(),
    );
    expect(Array.from(value)).toEqual([11]);
  });
});

describe('engine fallback logging', () => {
  it('says once, in one warning, which engines were skipped and how to get them', async () => {
    const { PassThrough } = await import('node:stream');
    const pino = (await import('pino')).default;
    const { loadEngine: load } = await import('../../services/shared/ml/engine.js');
    const engine = await load({ logger: silentLogger() });
    if (!engine.fallbackReason) return; // a native engine loaded: nothing fell back here
    // A fresh module instance loads afresh and logs.
    const out = new PassThrough();
    let text = '';
    out.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    vi.resetModules();
    const fresh = await import('../../services/shared/ml/engine.js');
    await fresh.loadEngine({ logger: pino(out) });
    const lines = text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines).toHaveLength(1);
    expect(lines[0].level).toBe(40);
    expect(lines[0].msg).toBe(`tensorflow engine fell back to ${engine.name}`);
    expect(lines[0].fallbackReason).toContain('tfjs-node-gpu');
    expect(lines[0].hint).toContain('TFJS_NODE_CDN_STORAGE');
  });
});
