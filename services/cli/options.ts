import { InvalidArgumentError, Option } from 'commander';

/**
 * Helpers for declaring command-line options. Every option that an operator may want to
 * set in a container also reads an environment variable, named on the option itself, so
 * that `--help` lists both and docker-compose.yml can be checked against them.
 */

/** An option with an environment variable fallback. */
export function envOption(flags: string, description: string, env: string): Option {
  return new Option(flags, description).env(env);
}

/** Parses a TCP port (0 picks a free one). */
export function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new InvalidArgumentError(`"${value}" is not a port number (0-65535)`);
  }
  return port;
}

/** Parses a whole number of at least `min`. */
export function integerAtLeast(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) {
      throw new InvalidArgumentError(`"${value}" is not a whole number of at least ${min}`);
    }
    return n;
  };
}

/** Parses a number in [min, max]. */
export function numberBetween(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) {
      throw new InvalidArgumentError(`"${value}" is not a number between ${min} and ${max}`);
    }
    return n;
  };
}

/** Parses a comma-separated list of layer widths, e.g. "256,256". */
export function parseWidths(value: string): number[] {
  const widths = value.split(',').map((part) => Number(part.trim()));
  if (widths.length === 0 || widths.some((w) => !Number.isInteger(w) || w < 1 || w > 4096)) {
    throw new InvalidArgumentError(`"${value}" is not a list of layer widths such as 256,256`);
  }
  return widths;
}

/** Parses a comma-separated list of identities; an empty string gives an empty list. */
export function parseList(value: string): string[] {
  return value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
}

/** Splits `host:port` (IPv6 in brackets), checking both parts. */
export function parseAddress(value: string): string {
  const match = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  if (!match || Number(match[2]) > 65_535) {
    throw new InvalidArgumentError(`"${value}" is not an address of the form host:port`);
  }
  return value;
}
