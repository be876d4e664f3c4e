import type { AccessLogRecord } from '../../registry/access-log.js';
import type { RefusalAttempt } from './refusals.js';
import type { PartCount } from './split-federation.js';

/** What `distillery demo` writes to report.json. */
export interface DemoReport {
  dataset: string;
  seed: number;
  engine: string;
  split: Record<string, PartCount>;
  teacher: {
    params: number;
    hidden: number[];
    /** Test ROC AUC of the latest teacher. */
    auc: number | null;
    versions: {
      version: string;
      sequence: number;
      auc: number | null;
      validationAuc: number;
      epochsTrained: number;
      temperature: number;
      chunkCount: number;
      totalBytes: number;
      timingsMs: Record<string, number>;
    }[];
  };
  students: {
    participant: string;
    version: string;
    sequence: number;
    temperature: number;
    params: number;
    auc: number;
    prAuc: number;
    aucWithoutTeacher: number;
    prAucWithoutTeacher: number;
    teacherAuc: number | null;
    compression: number;
    ownRows: number;
    timingsMs: Record<string, number | undefined>;
  }[];
  refusals: RefusalAttempt[];
  audit: {
    entries: AccessLogRecord[];
    verify: { ok: boolean; entries: number; firstBad?: { sequence: string; problem: string } };
  };
  timingsMs: Record<string, number>;
}

const f3 = (v: number | null) => (v === null ? '  n/a' : v.toFixed(3));

/** Renders the demo's result table: students per participant and version, audit, phases. */
export function formatReport(report: DemoReport): string {
  const lines: string[] = [];
  lines.push(`Distillery demo — ${report.dataset}, seed ${report.seed}, engine ${report.engine}`);
  lines.push('');
  lines.push(
    'participant  ver    T  own rows  teacher params  teacher AUC  student params  student AUC  AUC w/o teacher  compression',
  );
  for (const s of report.students) {
    lines.push(
      [
        s.participant.padEnd(11),
        String(s.sequence).padStart(4),
        String(s.temperature).padStart(4),
        String(s.ownRows).padStart(9),
        String(report.teacher.params).padStart(15),
        f3(s.teacherAuc).padStart(12),
        String(s.params).padStart(15),
        f3(s.auc).padStart(12),
        f3(s.aucWithoutTeacher).padStart(16),
        `${s.compression.toFixed(1)}x`.padStart(12),
      ].join(' '),
    );
  }
  lines.push('');

  const counts = new Map<string, number>();
  for (const e of report.audit.entries) {
    const key = `${e.action}/${e.outcome}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const summary = [...counts.entries()].map(([k, n]) => `${k} ${n}`).join(', ');
  lines.push(`access log: ${report.audit.entries.length} entries (${summary})`);
  lines.push(
    `hash chain: ${report.audit.verify.ok ? 'intact' : `BROKEN at ${report.audit.verify.firstBad?.sequence}`}`,
  );
  for (const e of report.audit.entries.filter((x) => x.outcome !== 'allowed')) {
    lines.push(`  #${e.sequence} ${e.outcome} ${e.action} by ${e.actor}: ${e.reason ?? ''}`);
  }
  lines.push('');
  lines.push(
    'phase wall times (s): ' +
      Object.entries(report.timingsMs)
        .map(([k, ms]) => `${k} ${(ms / 1000).toFixed(1)}`)
        .join(', '),
  );
  return lines.join('\n');
}
