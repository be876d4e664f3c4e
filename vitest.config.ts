import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Training and TLS tests are CPU-heavy; two workers match the machines this runs on.
    maxWorkers: 2,
  },
});
