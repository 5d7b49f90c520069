import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/harness/global-setup.ts'],
    // Password hashing (scrypt, 64 MiB) and PGlite start-up make some tests take seconds.
    testTimeout: 30_000,
    // The suites mostly wait on sockets, brokers and databases: on two cores, two workers
    // finish the suite in about two thirds of the time one takes (vitest's default is cores - 1).
    maxWorkers: Math.max(2, availableParallelism() - 1),
    hookTimeout: 60_000,
  },
});
