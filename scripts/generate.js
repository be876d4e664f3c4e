// Produces the generated code under services/generated/ (never edited by hand):
// the Prisma client from prisma/schema.prisma and the TypeScript types of proto/.
// Runs after every install. Prisma's schema engine is not needed for generation, and in
// bank networks (and on CI here) its binary host is unreachable, so it is pointed at
// /bin/false to stop the CLI from trying to download it.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);

function run(command, args, env = {}) {
  const result = spawnSync(command, args, {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, ...env },
  });
  if (result.status !== 0) {
    console.error(`generate: ${command} ${args.join(' ')} exited with ${result.status}`);
    process.exit(result.status ?? 1);
  }
}

if (existsSync(join(root, 'prisma', 'schema.prisma'))) {
  run(bin('prisma'), ['generate'], {
    PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? '/bin/false',
    PRISMA_HIDE_UPDATE_MESSAGE: '1',
  });
}

if (existsSync(join(root, 'proto', 'distillery', 'v1', 'knowledge.proto'))) {
  const out = join(root, 'services', 'generated', 'proto');
  rmSync(out, { recursive: true, force: true });
  // The file name goes first: --includeDirs is an array option and would swallow it.
  run(bin('proto-loader-gen-types'), [
    'distillery/v1/knowledge.proto',
    '--longs=String',
    '--enums=String',
    '--defaults',
    '--oneofs',
    '--grpcLib=@grpc/grpc-js',
    '--outDir',
    out,
    '--includeComments',
    `--includeDirs=${join(root, 'proto')}`,
  ]);

  // The generator writes extensionless relative imports; NodeNext resolution wants `.js`.
  for (const entry of readdirSync(out, { recursive: true })) {
    const file = join(out, String(entry));
    if (!file.endsWith('.ts')) continue;
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.replace(/from '(\.{1,2}\/[^']+)'/g, "from '$1.js'"));
  }
}
