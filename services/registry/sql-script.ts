/**
 * Splits a PostgreSQL script into its statements, each without the closing semicolon.
 *
 * Raw queries go to the driver as single prepared statements, which PostgreSQL refuses to
 * hold more than one command, so a migration file must be sent a statement at a time.
 * Semicolons inside string literals (`'…'`, `E'…'`), quoted identifiers, dollar-quoted
 * bodies (`$fn$…$fn$`) and comments do not end a statement. Pieces holding nothing but
 * comments and white space are dropped.
 *
 * @param script the whole file, as Prisma writes `migration.sql`
 */
export function splitSqlScript(script: string): string[] {
  const statements: string[] = [];
  let start = 0;
  let hasCode = false;
  let i = 0;

  const flush = (end: number) => {
    if (hasCode) statements.push(script.slice(start, end).trim());
    start = end + 1;
    hasCode = false;
  };

  while (i < script.length) {
    const ch = script[i];
    const next = script[i + 1];

    if (ch === '-' && next === '-') {
      const eol = script.indexOf('\n', i);
      i = eol === -1 ? script.length : eol + 1;
    } else if (ch === '/' && next === '*') {
      i = skipBlockComment(script, i);
    } else if (ch === "'") {
      const escapes = i > 0 && /[eE]/.test(script[i - 1]) && !isWordChar(script[i - 2]);
      i = skipQuoted(script, i, "'", escapes);
      hasCode = true;
    } else if (ch === '"') {
      i = skipQuoted(script, i, '"', false);
      hasCode = true;
    } else if (ch === '$' && !isWordChar(script[i - 1])) {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(script.slice(i, i + 64));
      if (tag) {
        const close = script.indexOf(tag[0], i + tag[0].length);
        i = close === -1 ? script.length : close + tag[0].length;
      } else {
        i += 1;
      }
      hasCode = true;
    } else if (ch === ';') {
      flush(i);
      i += 1;
    } else {
      if (!/\s/.test(ch)) hasCode = true;
      i += 1;
    }
  }
  flush(script.length);
  return statements;
}

function isWordChar(ch: string | undefined): boolean {
  return ch !== undefined && /[A-Za-z0-9_$]/.test(ch);
}

// Block comments nest in PostgreSQL, unlike in C.
function skipBlockComment(script: string, from: number): number {
  let depth = 0;
  let i = from;
  while (i < script.length) {
    if (script.startsWith('/*', i)) {
      depth += 1;
      i += 2;
    } else if (script.startsWith('*/', i)) {
      depth -= 1;
      i += 2;
      if (depth === 0) return i;
    } else {
      i += 1;
    }
  }
  return i;
}

// A doubled quote stands for itself; in E'' strings a backslash escapes the next character.
function skipQuoted(script: string, from: number, quote: string, escapes: boolean): number {
  let i = from + 1;
  while (i < script.length) {
    const ch = script[i];
    if (escapes && ch === '\\') {
      i += 2;
    } else if (ch === quote && script[i + 1] === quote) {
      i += 2;
    } else if (ch === quote) {
      return i + 1;
    } else {
      i += 1;
    }
  }
  return i;
}
