import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { fail } from '../../shared/errors.js';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { initDevelopmentPki } from '../../shared/pki/index.js';
import { issueAccessToken } from '../../shared/tokens/index.js';
import type { StudentResult } from '../../participant/distiller.js';
import type { PublishResult } from '../../hub/publisher.js';
import { callHubApi, expectOk } from '../https-client.js';
import { startService, type ServiceProcess } from './child-process.js';
import { attemptRefusedClients, type RefusalAttempt } from './refusals.js';
import { formatReport, type DemoReport } from './report.js';
import { splitFederation } from './split-federation.js';

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** Output directory; it is emptied first. Default out/demo. */
  outDir: string;
  /** Labelled CSV the federation is cut from. Default data/lending_club.csv. */
  input: string;
  dataset: string;
  seed: number;
  /** Teacher epochs for version 1, and further epochs for version 2. */
  teacherEpochs: [number, number];
  /** Softmax temperature of versions 1 and 2. */
  temperatures: [number, number];
  /** Student epochs; default the participant's step budget. */
  studentEpochs?: number;
  studentHidden: number[];
  participants: string[];
  /** Where progress lines go; default standard output. */
  print?: (line: string) => void;
}

const ISSUER = 'distillery-consortium';
const AUDIENCE = 'distillery-hub';

/**
 * Runs a whole federation on this machine: PKI, data split, a hub process, one process per
 * participant, two knowledge versions, three clients the hub must refuse, and an auditor
 * reading the access log. Writes `<outDir>/report.json` and returns the same report.
 */
export async function runDemo(options: DemoOptions): Promise<DemoReport> {
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const outDir = resolve(options.outDir);
  prepareOutputDir(outDir);
  const timings: Record<string, number> = {};
  const phase = async <T>(name: string, label: string, work: () => Promise<T>): Promise<T> => {
    print(`▸ ${label}`);
    const started = performance.now();
    const value = await work();
    timings[name] = Math.round(performance.now() - started);
    return value;
  };
  const demoStarted = performance.now();
  const services: ServiceProcess[] = [];

  try {
    const pki = await phase(
      'pki',
      'creating the development PKI (CA, hub and participant certificates, token key)',
      () =>
        initDevelopmentPki(join(outDir, 'pki'), {
          participants: options.participants,
          force: true,
        }),
    );

    const split = await phase(
      'split',
      `splitting ${options.input} by seed ${options.seed}`,
      async () =>
        splitFederation({
          input: resolve(options.input),
          dataset: options.dataset,
          outDir: join(outDir, 'parties'),
          seed: options.seed,
          participants: options.participants,
        }),
    );
    for (const [part, count] of Object.entries(split.counts)) {
      print(`    ${part.padEnd(9)} ${String(count.rows).padStart(5)} rows, ${count.positives} bad`);
    }

    const hub = await phase(
      'hubStart',
      'starting the hub (mTLS gRPC + HTTPS API, embedded registry)',
      async () => {
        const service = startService(
          'hub',
          [
            'hub',
            '--data-dir',
            split.hubDir,
            '--dataset',
            options.dataset,
            '--pki-dir',
            pki.dir,
            '--grpc-port',
            '0',
            '--http-port',
            '0',
            '--enrol',
            options.participants.join(','),
            '--seed',
            String(options.seed),
          ],
          join(outDir, 'logs', 'hub.log'),
        );
        services.push(service);
        const ready = await service.next<{ grpcPort: number; httpPort: number }>('ready');
        return { service, ...ready };
      },
    );
    const hubUrl = `https://127.0.0.1:${hub.httpPort}`;
    const grpcAddress = `localhost:${hub.grpcPort}`;
    const caPem = await readFile(pki.caCert, 'utf8');
    const signingKey = await readFile(pki.jwtPrivateKey, 'utf8');
    const tokenFor = (subject: string, role: 'operator' | 'auditor') =>
      issueAccessToken({
        privateKeyPem: signingKey,
        issuer: ISSUER,
        audience: AUDIENCE,
        subject,
        role,
        ttlSeconds: 3600,
      });
    const operatorToken = await tokenFor('demo-operator', 'operator');

    const publish = (epochs: number, temperature: number) =>
      callHubApi<PublishResult>({
        baseUrl: hubUrl,
        caPem,
        token: operatorToken,
        method: 'POST',
        path: '/v1/streams/default/versions',
        body: { epochs, temperature, hiddenLayers: ['hidden_2'] },
      }).then((r) => expectOk(r, 'publishing a version'));

    const v1 = await phase(
      'publishV1',
      `hub trains the teacher (${options.teacherEpochs[0]} epochs at most) and publishes version 1 at T=${options.temperatures[0]}`,
      () => publish(options.teacherEpochs[0], options.temperatures[0]),
    );
    print(
      `    version 1 ${v1.version.id.slice(0, 12)}…  teacher ${v1.teacher.params} params, test AUC ${fmt(v1.teacher.testAuc)}`,
    );

    const participants = await phase(
      'participantsStart',
      `starting ${options.participants.join(' and ')} as separate processes`,
      async () =>
        options.participants.map((id) => {
          const service = startService(
            id,
            [
              'participant',
              '--id',
              id,
              '--hub',
              grpcAddress,
              '--data-dir',
              split.participantDirs[id],
              '--dataset',
              options.dataset,
              '--pki-dir',
              pki.dir,
              '--student-hidden',
              options.studentHidden.join(','),
              ...(options.studentEpochs ? ['--epochs', String(options.studentEpochs)] : []),
              '--seed',
              String(options.seed),
              '--exit-after',
              '2',
            ],
            join(outDir, 'logs', `${id}.log`),
          );
          services.push(service);
          return service;
        }),
    );

    const students: StudentResult[] = [];
    const collect = async (round: number) => {
      const results = await Promise.all(
        participants.map((p) => p.next<{ result: StudentResult }>('student')),
      );
      for (const { result } of results) {
        students.push(result);
        print(
          `    ${result.participant}: version ${round} student ${result.params} params, AUC ${fmt(result.auc)} (without teacher ${fmt(result.aucWithoutTeacher)})`,
        );
      }
    };
    await phase(
      'distilV1',
      'participants subscribe, download version 1 in verified chunks and distil',
      () => collect(1),
    );

    const v2 = await phase(
      'publishV2',
      `hub trains the teacher further (${options.teacherEpochs[1]} more epochs at most, kept only if validation improves) and publishes version 2 at T=${options.temperatures[1]}`,
      () => publish(options.teacherEpochs[1], options.temperatures[1]),
    );
    print(
      `    version 2 ${v2.version.id.slice(0, 12)}…  teacher test AUC ${fmt(v2.teacher.testAuc)}, parent ${v2.version.parentId?.slice(0, 12)}…`,
    );
    await phase(
      'distilV2',
      'participants receive version 2 on their open subscription and distil again',
      () => collect(2),
    );
    await Promise.all(participants.map((p) => p.stop()));

    const refusals: RefusalAttempt[] = await phase(
      'refusals',
      'clients without a valid certificate try to fetch knowledge',
      () => attemptRefusedClients(pki, grpcAddress, v2.version.id),
    );
    for (const r of refusals)
      print(`    ${r.client}: ${r.refused ? 'refused' : 'SERVED'} (${r.status})`);

    const audit = await phase(
      'audit',
      'auditor reads the access log over HTTPS and verifies its hash chain',
      async () => {
        const auditorToken = await tokenFor('demo-auditor', 'auditor');
        const entries: DemoReport['audit']['entries'] = [];
        let cursor: string | null = null;
        do {
          const query: string = `/v1/audit/log?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
          const page: { entries: DemoReport['audit']['entries']; nextCursor: string | null } =
            expectOk(
              await callHubApi({
                baseUrl: hubUrl,
                caPem,
                token: auditorToken,
                method: 'GET',
                path: query,
              }),
              'audit log query',
            );
          entries.push(...page.entries);
          cursor = page.nextCursor;
        } while (cursor);
        const verify = expectOk(
          await callHubApi<DemoReport['audit']['verify']>({
            baseUrl: hubUrl,
            caPem,
            token: auditorToken,
            method: 'GET',
            path: '/v1/audit/verify',
          }),
          'chain verification',
        );
        return { entries, verify };
      },
    );

    await phase('shutdown', 'stopping the hub (SIGTERM)', async () => {
      const code = await hub.service.stop();
      if (code !== 0)
        throw new Error(
          `hub exited with code ${code} on SIGTERM. Its log ends:\n${hub.service.logTail()}`,
        );
    });
    timings.total = Math.round(performance.now() - demoStarted);

    const report: DemoReport = {
      dataset: options.dataset,
      seed: options.seed,
      engine: students[0]?.engine ?? 'unknown',
      split: split.counts,
      teacher: {
        params: v2.teacher.params,
        hidden: v2.teacher.hidden,
        auc: v2.teacher.testAuc,
        versions: [v1, v2].map((v) => ({
          version: v.version.id,
          sequence: v.version.sequence,
          auc: v.teacher.testAuc,
          validationAuc: v.teacher.validationAuc,
          epochsTrained: v.teacher.epochsTrained,
          temperature: v.version.temperature,
          chunkCount: v.version.chunkCount,
          totalBytes: v.version.totalBytes,
          timingsMs: v.timingsMs,
        })),
      },
      students: students.map((s) => ({
        participant: s.participant,
        version: s.versionId,
        sequence: s.sequence,
        temperature: s.temperature,
        params: s.params,
        auc: s.auc,
        prAuc: s.prAuc,
        aucWithoutTeacher: s.aucWithoutTeacher,
        prAucWithoutTeacher: s.prAucWithoutTeacher,
        teacherAuc: (s.sequence === v1.version.sequence ? v1 : v2).teacher.testAuc,
        compression: s.compression,
        ownRows: s.ownRows,
        timingsMs: s.timingsMs,
      })),
      refusals,
      audit: { entries: audit.entries, verify: audit.verify },
      timingsMs: timings,
    };
    writeFileSync(join(outDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    print('');
    print(formatReport(report));
    print(
      `report written to ${join(outDir, 'report.json')}; process logs in ${join(outDir, 'logs')}`,
    );
    return report;
  } finally {
    await Promise.all(services.map((s) => s.stop(5_000)));
  }
}

const MARKER = '.distillery-demo';

/**
 * Empties the output directory of an earlier demo run. A directory that exists, is not
 * empty and lacks the marker a demo run leaves is refused: `--out` pointed at the wrong
 * place must not delete someone's files.
 */
function prepareOutputDir(outDir: string): void {
  if (existsSync(outDir) && readdirSync(outDir).length > 0 && !existsSync(join(outDir, MARKER))) {
    throw fail('OUTPUT_DIR_NOT_EMPTY', { path: outDir, what: 'demo output' });
  }
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(join(outDir, 'logs'), { recursive: true });
  writeFileSync(
    join(outDir, MARKER),
    'Written by `distillery demo`; the next run empties this directory.\n',
  );
}

function fmt(value: number | null | undefined): string {
  return value === null || value === undefined ? 'n/a' : value.toFixed(3);
}
