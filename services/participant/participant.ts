import type { ClientReadableStream, Interceptor } from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { fail, isDistilleryError } from '../shared/errors.js';
import { identityFromCertificatePem } from '../shared/pki/index.js';
import type { Logger } from '../shared/logger.js';
import { loadEngine, type Engine } from '../shared/ml/engine.js';
import type { Announcement__Output } from '../shared/transport/proto.js';
import { isTransient } from '../shared/transport/status.js';
import { createHubClient, type HubClient } from './hub-client.js';
import {
  Distiller,
  type ParticipantDataFiles,
  type StudentResult,
  type StudentSettings,
} from './distiller.js';
import { downloadVersion } from './downloader.js';
import { LocalStore } from './local-store.js';
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
}

/** A running participant node. */
export interface RunningParticipant {
  /** Resolves when the node stops: after `exitAfter` versions, or after `stop()`. */
  readonly done: Promise<StudentResult[]>;
  /** Closes the subscription; a student in training is finished first. */
  stop(): Promise<void>;
}

/**
 * Starts a participant node: subscribes to the hub's stream, and for every announced
 * version downloads and verifies it, distils a student and evaluates it. Its place in the
 * stream is saved after each version, so a restart resumes where it stopped; when the hub
 * goes away it reconnects with exponential backoff.
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
  const engine = options.engine ?? (await loadEngine({ logger }));
  const distiller = new Distiller(engine, options.id, options.files, options.student, logger);
  distiller.checkFiles();

  const store = new LocalStore(options.stateDir);
  const client: HubClient = createHubClient({
    address: options.hub.address,
    caPem,
    certPem,
    keyPem,
    ...(options.hub.serverName ? { serverName: options.hub.serverName } : {}),
    ...(options.interceptors ? { interceptors: options.interceptors } : {}),
  });
  const backoff = options.backoffMs ?? { initial: 500, max: 30_000 };
  const results: StudentResult[] = [];
  let stopping = false;
  let current: ClientReadableStream<Announcement__Output> | undefined;
  let wake: (() => void) | undefined;

  const processAnnouncement = async (a: Announcement__Output) => {
    const sequence = Number(a.sequence);
    const log = logger.child({ version: a.versionId, sequence });
    log.info('version announced');
    const downloaded = await downloadVersion(client, store, a.versionId, log);
    log.info(
      {
        bytes: downloaded.bytesReceived,
        resumedFromChunk: downloaded.resumedFromChunk,
        durationMs: downloaded.durationMs,
      },
      'version downloaded and verified',
    );
    const result = await distiller.distil(
      downloaded.manifest,
      downloaded.blob,
      { id: a.versionId, sequence },
      store.studentDir(a.versionId),
    );
    result.timingsMs.download = downloaded.durationMs;
    await store.writeState({ stream: options.stream, lastSequence: sequence });
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

  /** One subscription, until it ends; resolves true when the node should stop. */
  const subscribeOnce = async (): Promise<boolean> => {
    let { lastSequence } = await store.readState(options.stream);
    const stream = client.subscribe(options.stream, lastSequence);
    current = stream;
    for await (const announcement of stream as AsyncIterable<Announcement__Output>) {
      const sequence = Number(announcement.sequence);
      if (sequence <= lastSequence) continue;
      await processAnnouncement(announcement);
      lastSequence = sequence;
      if (options.exitAfter !== undefined && results.length >= options.exitAfter) return true;
      if (stopping) return true;
    }
    return stopping;
  };

  const run = async (): Promise<StudentResult[]> => {
    let pause = backoff.initial;
    while (!stopping) {
      try {
        if (await subscribeOnce()) break;
        // The hub ended the stream without an error: it is shutting down. Reconnect.
        pause = backoff.initial;
      } catch (err) {
        if (stopping && (err as { code?: number }).code === GrpcStatus.CANCELLED) break;
        // Local failures (bad data, a version that fails verification) are ours, not the hub's.
        if (isDistilleryError(err)) throw err;
        if (!isTransient(err)) throw describeHubError(err);
        logger.warn(
          {
            err: { code: (err as { code?: number }).code, message: (err as Error).message },
            pauseMs: pause,
          },
          'hub unreachable; retrying',
        );
      }
      // The pause keeps the process alive (no unref): while the hub is away, waiting for it
      // is all the node has to do. stop() ends the pause early.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pause);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      pause = Math.min(pause * 2, backoff.max);
    }
    return results;
  };

  const done = run().finally(() => {
    current?.cancel();
    client.close();
  });
  // Failures surface through `done`; this keeps an unobserved rejection from crashing.
  done.catch(() => undefined);

  return {
    done,
    async stop() {
      stopping = true;
      current?.cancel();
      wake?.();
      await done.catch(() => undefined);
    },
  };
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
