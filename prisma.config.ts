import { defineConfig } from 'prisma/config';

// Read by the Prisma CLI only; the hub opens its database through services/registry.
// The URL is optional so that `prisma generate` works without a database; migrate and
// introspection commands need DATABASE_URL.
const url = process.env.DATABASE_URL;

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  ...(url ? { datasource: { url } } : {}),
});
