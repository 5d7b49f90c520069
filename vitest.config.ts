import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/harness/global-setup.ts'],
    // Password hashing (scrypt, 64 MiB) and PGlite start-up make some tests take seconds.
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
