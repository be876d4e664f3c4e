import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { DemoReport } from '../../services/cli/demo/report.js';

describe('npm run demo, with few epochs', () => {
  let out: string;
  let report: DemoReport;
  let stdout = '';

  afterAll(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });

  it('runs the whole federation and exits 0', async () => {
    out = await mkdtemp(join(tmpdir(), 'distillery-demo-'));
    const result = spawnSync(
      process.execPath,
      [
        'bin/distillery.js',
        'demo',
        '--out',
        out,
        '--teacher-epochs',
        '3',
        '--more-teacher-epochs',
        '2',
        '--student-epochs',
        '4',
        '--seed',
        '1',
      ],
      { encoding: 'utf8', timeout: 540_000, env: { ...process.env, DATABASE_URL: '' } },
    );
    stdout = result.stdout;
    expect(result.status, `${result.stdout}\n${result.stderr}`).toBe(0);
    report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as DemoReport;
  }, 600_000);

  it('reports a student per participant and version, each at least 10x smaller than the teacher', () => {
    const keys = report.students.map((s) => `${s.participant}@${s.sequence}`).sort();
    expect(keys).toEqual(['bank-a@1', 'bank-a@2', 'bank-b@1', 'bank-b@2']);
    for (const s of report.students) {
      expect(s.compression).toBeGreaterThanOrEqual(10);
      expect(s.params * s.compression).toBeCloseTo(report.teacher.params, 0);
      expect(s.auc).toBeGreaterThan(0.5);
      expect(s.aucWithoutTeacher).toBeGreaterThan(0);
      expect(s.aucWithoutTeacher).toBeLessThanOrEqual(1);
    }
    expect(new Set(report.students.map((s) => s.version)).size).toBe(2);
    expect(report.teacher.auc).toBeGreaterThan(0.5);
  });

  it('refuses all three clients without a valid certificate', () => {
    expect(report.refusals).toHaveLength(3);
    for (const r of report.refusals) expect(r.refused).toBe(true);
  });

  it('gives the auditor one entry per subscription, download and denial, with certificate identities', () => {
    const entries = report.audit.entries;
    for (const participant of ['bank-a', 'bank-b']) {
      const mine = entries.filter((e) => e.actor === participant);
      expect(mine.filter((e) => e.action === 'subscribe').length).toBeGreaterThanOrEqual(1);
      // Both versions, each logged when its download starts; a download cut short on a
      // loaded machine resumes with a call (and an entry) of its own.
      const downloads = mine.filter((e) => e.action === 'download' && e.outcome === 'allowed');
      expect(new Set(downloads.map((e) => e.resource)).size).toBe(2);
    }
    const handshakeDenials = entries.filter(
      (e) => e.action === 'handshake' && e.outcome === 'denied',
    );
    // One refusal per client; a refused channel may be retried once more before it closes.
    expect(new Set(handshakeDenials.map((e) => e.actor))).toEqual(
      new Set(['anonymous', 'unverified:bank-a', 'unverified:bank-b']),
    );
    expect(handshakeDenials.map((e) => e.reason)).toEqual(
      expect.arrayContaining(['NO_CLIENT_CERTIFICATE', 'CERT_HAS_EXPIRED']),
    );
    expect(report.audit.verify.ok).toBe(true);
  });

  it('prints the result table', () => {
    expect(stdout).toContain('student AUC');
    expect(stdout).toMatch(/bank-a\s+1/);
    expect(stdout).toContain('hash chain: intact');
  });
});
