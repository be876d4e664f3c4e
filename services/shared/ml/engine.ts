import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fail } from '../errors.js';
import { createLogger, type Logger } from '../logger.js';

/** The TensorFlow.js namespace every ML function takes, whichever package provides it. */
export type Tf = typeof import('@tensorflow/tfjs');

/** A loaded TensorFlow.js build with its backend set and ready. */
export interface Engine {
  tf: Tf;
  name: EngineName;
  /** True for the CUDA build; TensorFlow still runs on CPU if it finds no device. */
  gpu: boolean;
  /** Why the engines ahead of this one in the order were skipped; absent if none was. */
  fallbackReason?: string;
}

/** The engines, fastest first. */
export type EngineName = 'tfjs-node-gpu' | 'tfjs-node' | 'wasm' | 'cpu';

/** Options of {@link loadEngine}. */
export interface LoadEngineOptions {
  /** Where the engine choice is logged; default a new `ml-engine` logger. */
  logger?: Logger;
  /** Try this engine first, then the usual order. `DISTILLERY_ENGINE` overrides it. */
  prefer?: EngineName;
}

/** Environment variable that forces one engine, with no fallback. */
export const ENGINE_ENV = 'DISTILLERY_ENGINE';

const ENGINE_NAMES: readonly EngineName[] = ['tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'];

/** How an operator gets the native engines where their install cannot reach Google storage. */
export const NATIVE_ENGINES_HINT =
  'install @tensorflow/tfjs-node or @tensorflow/tfjs-node-gpu with TFJS_NODE_CDN_STORAGE (or TFJS_NODE_BASE_URI) pointing at an internal mirror of libtensorflow 2.9.1; see README';

/**
 * The engines to try, in order: `forced` alone when set, else `prefer` and then the rest
 * of the default order (native GPU, native CPU, WebAssembly, plain JavaScript).
 *
 * @throws CONFIG_INVALID when `forced` or `prefer` names no engine.
 */
export function engineOrder(options: { forced?: string; prefer?: string } = {}): EngineName[] {
  const check = (value: string, what: string): EngineName => {
    if (!(ENGINE_NAMES as readonly string[]).includes(value)) {
      throw fail('CONFIG_INVALID', {
        detail: `${what} is "${value}"; use one of ${ENGINE_NAMES.join(', ')}`,
      });
    }
    return value as EngineName;
  };
  if (options.forced) return [check(options.forced, ENGINE_ENV)];
  if (!options.prefer) return [...ENGINE_NAMES];
  const first = check(options.prefer, 'prefer');
  return [first, ...ENGINE_NAMES.filter((name) => name !== first)];
}

// The specifier is a variable so that TypeScript does not need the optional native
// packages' types: they are absent wherever their install could not download libtensorflow.
async function importOptional(specifier: string): Promise<Tf> {
  const module = (await import(specifier)) as { default?: Tf } & Tf;
  // A CommonJS package arrives as a namespace whose default export is module.exports.
  return typeof module.default?.tensor === 'function' ? module.default : module;
}

function describeFailure(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
    return 'package not installed';
  }
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0];
}

async function loadPure(name: 'wasm' | 'cpu'): Promise<Tf> {
  const tf = (await import('@tensorflow/tfjs')) as Tf;
  if (name === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const require = createRequire(import.meta.url);
    const dist = join(
      dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')),
      'dist',
    );
    try {
      wasm.setWasmPaths(`${dist}/`);
    } catch (err) {
      // Once the backend is initialised (by an earlier load in this process, such as another
      // test file in the same worker) its paths are fixed and setting them again throws.
      if (!/already initialized/.test((err as Error).message)) throw err;
    }
  }
  if (!(await tf.setBackend(name))) throw new Error(`backend "${name}" failed to initialise`);
  await tf.ready();
  return tf;
}

async function loadNative(name: 'tfjs-node-gpu' | 'tfjs-node'): Promise<Tf> {
  const tf = await importOptional(`@tensorflow/${name}`);
  if (!(await tf.setBackend('tensorflow'))) throw new Error('backend "tensorflow" failed');
  await tf.ready();
  return tf;
}

async function loadFirstWorking(order: EngineName[], logger: Logger): Promise<Engine> {
  const skipped: string[] = [];
  for (const name of order) {
    try {
      const tf = name === 'wasm' || name === 'cpu' ? await loadPure(name) : await loadNative(name);
      const engine: Engine = { tf, name, gpu: name === 'tfjs-node-gpu' };
      const fields = { engine: name, gpu: engine.gpu, backend: tf.getBackend() };
      if (skipped.length === 0) {
        logger.info(fields, 'tensorflow engine loaded');
      } else {
        // One line for the whole fallback, with what to do about it: a skipped native
        // engine is usually a package whose install could not download libtensorflow.
        engine.fallbackReason = skipped.join('; ');
        logger.warn(
          {
            ...fields,
            fallbackReason: engine.fallbackReason,
            hint: NATIVE_ENGINES_HINT,
          },
          `tensorflow engine fell back to ${name}`,
        );
      }
      return engine;
    } catch (err) {
      skipped.push(`${name}: ${describeFailure(err)}`);
    }
  }
  throw fail('CONFIG_INVALID', { detail: `no TensorFlow.js engine loads (${skipped.join('; ')})` });
}

let cached: Promise<Engine> | undefined;
let warnedPreference = false;

/**
 * Loads the fastest TensorFlow.js engine that works here, once per process: every later
 * call returns the same engine, because the backend is global to the process. Order:
 * `@tensorflow/tfjs-node-gpu`, `@tensorflow/tfjs-node` (both optional native packages),
 * then `@tensorflow/tfjs` on the WebAssembly backend, then on plain JavaScript. Setting
 * `DISTILLERY_ENGINE` to one of these names forces it, and fails rather than fall back.
 *
 * @throws CONFIG_INVALID when the forced engine does not load or none does.
 */
export async function loadEngine(options: LoadEngineOptions = {}): Promise<Engine> {
  const logger = options.logger ?? createLogger({ service: 'ml-engine' });
  if (cached === undefined) {
    const order = engineOrder({ forced: process.env[ENGINE_ENV], prefer: options.prefer });
    const loading = loadFirstWorking(order, logger);
    cached = loading;
    // A failed load is not kept, so that a repaired environment can try again.
    loading.catch(() => {
      if (cached === loading) cached = undefined;
    });
    return loading;
  }

  const engine = await cached;
  if (options.prefer !== undefined && options.prefer !== engine.name && !warnedPreference) {
    warnedPreference = true;
    logger.warn(
      { prefer: options.prefer, engine: engine.name },
      'tensorflow engine already chosen for this process; preference ignored',
    );
  }
  return engine;
}
