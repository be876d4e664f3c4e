import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { buildProgram } from '../../services/cli/main.js';

interface ComposeService {
  build?: unknown;
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
}

const compose = parse(readFileSync('docker-compose.yml', 'utf8')) as {
  services: Record<string, ComposeService>;
};

/** Finds the subcommand a compose `command:` names, following nested commands. */
function resolveCommand(root: Command, args: string[]): { command: Command; rest: string[] } {
  let command = root;
  let rest = args;
  for (;;) {
    const next = command.commands.find((c) => c.name() === rest[0]);
    if (!next) return { command, rest };
    command = next;
    rest = rest.slice(1);
  }
}

const distilleryServices = Object.entries(compose.services).filter(
  ([, s]) => s.build !== undefined,
);

describe('docker-compose.yml', () => {
  it('runs postgres, the hub and two participants', () => {
    expect(compose.services.postgres?.image).toMatch(/^postgres:/);
    const commands = distilleryServices.map(([, s]) => s.command?.[0]);
    expect(commands.filter((c) => c === 'hub')).toHaveLength(1);
    expect(commands.filter((c) => c === 'participant')).toHaveLength(2);
  });

  it.each(distilleryServices)(
    'service %s uses only commands and flags the CLI has',
    (_name, service) => {
      const { command, rest } = resolveCommand(buildProgram(), service.command ?? []);
      expect(command.name()).not.toBe('distillery');
      const longFlags = new Set(command.options.map((o) => o.long));
      for (const arg of rest.filter((a) => a.startsWith('--'))) {
        expect(longFlags, `${command.name()} has no flag ${arg}`).toContain(arg.split('=')[0]);
      }
    },
  );

  it.each(distilleryServices)(
    'service %s sets only environment variables its command reads',
    (_name, service) => {
      const { command } = resolveCommand(buildProgram(), service.command ?? []);
      const known = new Set(command.options.map((o) => o.envVar).filter(Boolean));
      known.add('DATABASE_URL');
      for (const variable of Object.keys(service.environment ?? {})) {
        expect(known, `${command.name()} reads no ${variable}`).toContain(variable);
      }
    },
  );

  it('gives every participant the identity its certificate is issued for', () => {
    const pki = distilleryServices.find(([, s]) => s.command?.[0] === 'pki')?.[1];
    const issued = pki?.command?.[pki.command.indexOf('--participants') + 1]?.split(',') ?? [];
    const participants = distilleryServices
      .filter(([, s]) => s.command?.[0] === 'participant')
      .map(([, s]) => s.environment?.DISTILLERY_PARTICIPANT_ID);
    for (const id of participants) expect(issued).toContain(id);
    const hub = distilleryServices.find(([, s]) => s.command?.[0] === 'hub')?.[1];
    expect(hub?.environment?.DISTILLERY_ENROL?.split(',').sort()).toEqual([...participants].sort());
  });
});
