import type { Interceptor } from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fail, hasCode, isDistilleryError, type DistilleryError } from '../shared/errors.js';
import { lockDirectory, type DirectoryLock } from '../registry/directory-lock.js';
import { identityFromCertificatePem } from '../shared/pki/index.js';
import type { Logger } from '../shared/logger.js';
import { loadEngine, type Engine } from '../shared/ml/engine.js';
import { isTransient } from '../shared/transport/status.js';
import { createHubClient, type HubClient } from './hub-client.js';
import {
  Distiller,
  type ParticipantDataFiles,
  type StudentResult,
  type StudentSettings,
} from './distiller.js';
import { downloadVersion } from './downloader.js';
import type { KnowledgeManifest } from '../shared/knowledge/manifest.js';
import { LocalStore } from './local-store.js';
import { createStudentRecorder } from './student-recorder.js';
import { followStream, type EventOutcome } from './stream-follower.js';
import type { Announcement__Output } from '../shared/transport/proto.js';
import { readRequiredFile } from '../shared/config-file.js';

/** Everything a participant node needs. */
export interface ParticipantOptions {
  /** The participant's identity; must match its certificate (the hub checks the certificate). */
  id: string;
  hub: { address: string; serverName?: string };
  tls: { caCert: string; cert: string; key: string };
  stream: string;
  stateDir: string;
  files: ParticipantDataFiles;
  student: StudentSettings;
  /** Stop after this many versions have been distilled; default: run until stopped. */
  exitAfter?: number;
  logger: Logger;
  engine?: Engine;
  /** Called with each student's result. */
  onResult?: (result: StudentResult) => void;
  /** grpc-js client interceptors for every call to the hub. */
  interceptors?: Interceptor[];
  /** Reconnect backoff, first and largest pause; default 500 ms and 30 s. */
  backoffMs?: { initial: number; max: number };
  /**
   * Keep using this version: it is distilled once, and newer announcements, deprecations
   * and rollbacks are recorded (events.jsonl) but not acted on.
   */
  pin?: string;
  /**
   * The participant's own registry, where its students are recorded: default PGlite under
   * `stateDir`; `memory://` or a PostgreSQL URL; false keeps no registry.
   */
  registryUrl?: string | false;
}

/** A running participant node. */
export interface RunningParticipant {
  /** Resolves when the node stops: after `exitAfter` versions, or after `stop()`. */
  readonly done: Promise<StudentResult[]>;
  /**
   * Closes the subscription and abandons a download or a student in training (its event
   * is handled again at the next start); resolves once the node has let go of its files.
   */
  stop(): Promise<void>;
}

/**
 * Starts a participant node: follows the hub's stream of events, and for every version
 * that becomes current (published, or the target of a rollback, or the fallback of a
 * deprecation) downloads and verifies it, fetching only the chunks it does not hold,
 * distils a student and evaluates it. Its place in the stream is saved after each event,
 * so a restart resumes where it stopped; when the hub goes away it reconnects with
 * exponential backoff. A pinned node keeps its pinned version.
 */
export async function startParticipant(options: ParticipantOptions): Promise<RunningParticipant> {
  const { logger } = options;
  const [caPem, certPem, keyPem] = await Promise.all([
    readRequiredFile(options.tls.caCert, 'CA certificate'),
    readRequiredFile(options.tls.cert, 'participant certificate'),
    readRequiredFile(options.tls.key, 'participant private key'),
  ]);
  const certified = identityFromCertificatePem(certPem);
  if (certified !== options.id) {
    throw fail('PKI_IDENTITY_MISMATCH', {
      path: options.tls.cert,
      actual: certified ?? '(no participant identity)',
      expected: options.id,
    });
  }
  // Taken before anything else touches the directory: a second node on it would subscribe,
  // download and write state.json and students beside the first.
  const lock = await lockParticipantDirectory(options.stateDir, options.id);
  try {
    return await runParticipant(options, { caPem, certPem, keyPem }, lock);
  } catch (err) {
    await lock.release();
    throw err;
  }
}

async function runParticipant(
  options: ParticipantOptions,
  { caPem, certPem, keyPem }: { caPem: string; certPem: string; keyPem: string },
  lock: DirectoryLock,
): Promise<RunningParticipant> {
  const { logger } = options;
  const engine = options.engine ?? (await loadEngine({ logger }));
  const students =
    options.registryUrl === false
      ? undefined
      : createStudentRecorder({
          dataDir: options.stateDir,
          ...(options.registryUrl ? { databaseUrl: options.registryUrl } : {}),
          logger,
        });
  const distiller = new Distiller(
    engine,
    options.id,
    options.files,
    options.student,
    logger,
    students,
  );
  try {
    distiller.checkFiles();
  } catch (err) {
    await students?.close();
    throw err;
  }

  const store = new LocalStore(options.stateDir);
  const client: HubClient = createHubClient({
    address: options.hub.address,
    caPem,
    certPem,
    keyPem,
    ...(options.hub.serverName ? { serverName: options.hub.serverName } : {}),
    ...(options.interceptors ? { interceptors: options.interceptors } : {}),
  });
  const results: StudentResult[] = [];
  /**
   * Fetches the tensors the distiller reads. A hub-distilled student comes too when the
   * grant covers artefacts; when it does not, the node distils without it and says so.
   */
  const downloadUsed = async (versionId: string, log: Logger, signal?: AbortSignal) => {
    let withOptional = true;
    let askedOptional = false;
    const tensors = (manifest: KnowledgeManifest) => {
      const { required, optional } = distiller.tensorsNeeded(manifest);
      askedOptional = withOptional && optional.length > 0;
      return withOptional ? [...required, ...optional] : required;
    };
    try {
      return await downloadVersion(client, store, versionId, log, { tensors, signal });
    } catch (err) {
      const denied = (err as { code?: unknown }).code === GrpcStatus.PERMISSION_DENIED;
      if (!denied || !askedOptional) throw err;
      withOptional = false;
      const retried = await downloadVersion(client, store, versionId, log, { tensors, signal });
      log.warn(
        { refused: (err as Error).message },
        "the hub's own student is not granted to this participant; distilling without it",
      );
      return retried;
    }
  };
  const studentFor = async (
    versionId: string,
    sequence: number,
    log: Logger,
    signal?: AbortSignal,
  ) => {
    log.info('version announced');
    const downloaded = await downloadUsed(versionId, log, signal);
    log.info(
      {
        bytes: downloaded.bytesReceived,
        chunksFetched: downloaded.chunksFetched,
        chunksHeld: downloaded.chunksHeld,
        durationMs: downloaded.durationMs,
      },
      'version downloaded and verified',
    );
    const result = await distiller.distil(
      downloaded.manifest,
      downloaded.blob,
      { id: versionId, sequence },
      store.studentDir(versionId),
      signal,
    );
    result.timingsMs.download = downloaded.durationMs;
    results.push(result);
    log.info(
      {
        params: result.params,
        auc: result.auc,
        aucWithoutTeacher: result.aucWithoutTeacher,
        compression: result.compression,
      },
      'student distilled',
    );
    options.onResult?.(result);
  };
  const enough = () => options.exitAfter !== undefined && results.length >= options.exitAfter;
  const hasStudent = (versionId: string) =>
    existsSync(join(store.studentDir(versionId), 'metrics.json'));

  const pin = options.pin;
  if (pin) {
    // A pinned node uses the pinned version whatever the stream announces: it distils it
    // once, then only records the stream's events.
    const state = await store.readState(options.stream);
    if (!hasStudent(pin)) await studentFor(pin, 0, logger.child({ version: pin, pinned: true }));
    if (state.activeVersionId !== pin) await store.writeState({ ...state, activeVersionId: pin });
  }

  const follower = followStream({
    client,
    store,
    stream: options.stream,
    logger,
    ...(options.backoffMs ? { backoffMs: options.backoffMs } : {}),
    onEvent: async (event, state, context): Promise<EventOutcome> => {
      const log = logger.child({
        event: event.event,
        eventSequence: Number(event.sequence),
        version: event.versionId,
        sequence: Number(event.versionSequence),
      });
      if (pin) {
        log.info({ pinned: pin }, 'stream event recorded; pinned version kept');
        return { action: `ignored (pinned ${pin})`, stop: enough() };
      }
      const target = event.currentVersionId || (event.event === 'published' ? event.versionId : '');
      if (!target) {
        log.warn('the stream has no current version; keeping the student in use');
        return { action: 'kept (no current version)' };
      }
      if (target === state.activeVersionId) return { action: 'kept' };
      if (event.event !== 'published' && hasStudent(target)) {
        log.info({ current: target }, 'switched back to a version distilled before');
        return { action: 'switched', activeVersionId: target };
      }
      // Replaying after a restart, the events that follow are often known already: a version
      // deprecated or rolled away from since is not worth a student.
      const withdrawn = context.later.find((later) => withdraws(later, target));
      if (withdrawn) {
        log.info(
          { current: target, withdrawnBy: Number(withdrawn.sequence) },
          'version withdrawn later in the stream; not distilled',
        );
        return { action: `skipped (withdrawn by event ${withdrawn.sequence})` };
      }
      // One that is withdrawn while its student trains is abandoned as well.
      const withdrawal = new AbortController();
      context.onLater((later) => {
        if (withdraws(later, target)) withdrawal.abort(later);
      });
      const sequence = target === event.versionId ? Number(event.versionSequence) : 0;
      try {
        await studentFor(
          target,
          sequence,
          log.child({ current: target }),
          AbortSignal.any([context.signal, withdrawal.signal]),
        );
      } catch (err) {
        if (context.signal.aborted) throw err;
        if (withdrawal.signal.aborted) {
          const by = (withdrawal.signal.reason as Announcement__Output).sequence;
          log.info(
            { current: target, withdrawnBy: Number(by) },
            'version withdrawn while being distilled; abandoned',
          );
          return { action: `skipped (withdrawn by event ${by})` };
        }
        if (!failsOnlyThisVersion(err)) throw err;
        // One version the node cannot use (its states do not fit the transfer set, training
        // diverges on it, its chunks fail verification) must not stop the node: it keeps the
        // student it has and goes on to the next event, and a restart does not retry it.
        log.error(
          { current: target, err: { code: err.code, message: err.message } },
          'distilling the version failed; keeping the student in use and following the stream',
        );
        return { action: 'failed', error: { code: err.code, message: err.message } };
      }
      return { action: 'distilled', activeVersionId: target, stop: enough() };
    },
  });

  const done = (async () => {
    if (!(pin && enough())) {
      try {
        await follower.done;
      } catch (err) {
        if (isDistilleryError(err) || isTransient(err)) throw err;
        throw describeHubError(err);
      }
    }
    return results;
  })().finally(async () => {
    await follower.stop();
    client.close();
    await students?.close();
    await lock.release();
  });
  // Failures surface through `done`; this keeps an unobserved rejection from crashing.
  done.catch(() => undefined);

  return {
    done,
    async stop() {
      await follower.stop();
      await done.catch(() => undefined);
    },
  };
}

/**
 * Holds `<dataDir>/participant.lock` for this process, so that a second node started on the
 * same directory is refused at once, naming the participant and the process that holds it.
 */
async function lockParticipantDirectory(dataDir: string, id: string): Promise<DirectoryLock> {
  await mkdir(dataDir, { recursive: true });
  try {
    return await lockDirectory(join(dataDir, 'participant'));
  } catch (err) {
    if (!hasCode(err, 'REGISTRY_LOCKED')) throw err;
    throw fail(
      'REGISTRY_LOCKED',
      { path: `of participant "${id}" at ${dataDir}`, pid: (err as DistilleryError).params.pid },
      { cause: err },
    );
  }
}

/**
 * True when a later event takes the stream off `target`: `target` is deprecated, or the
 * stream is rolled back to another version.
 */
function withdraws(later: Announcement__Output, target: string): boolean {
  if (later.event === 'deprecated') return later.versionId === target;
  return later.event === 'rolled_back' && later.currentVersionId !== target;
}

/**
 * True for an error that concerns the version being distilled, not the node: anything the
 * participant raised on purpose (bad states, divergence, verification) except its own
 * registry failing. Transport and authorisation errors of the hub are not: the follower
 * retries the first and stops on the second.
 */
function failsOnlyThisVersion(err: unknown): err is DistilleryError {
  return isDistilleryError(err) && !err.code.startsWith('REGISTRY_');
}

/** Names what the hub refused, in words an operator of the bank's node can act on. */
function describeHubError(err: unknown) {
  const e = err as { code?: number; details?: string; message?: string };
  const detail = e.details ?? e.message ?? String(err);
  return Object.assign(
    new Error(
      `hub refused the participant: ${detail} (gRPC status ${GrpcStatus[e.code ?? 2] ?? e.code})`,
    ),
    {
      code: e.code,
      cause: err,
    },
  );
}
