import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { definePlugin, type PluginContext } from '../../core/plugin.js';
import { createSecretBox, loadSecretBox, SecretBoxError } from '../../core/secrets/index.js';
import { createTestHub } from '../harness/index.js';

const KEY = 'a-key-for-these-tests-0123456789abcdef';

describe('secret box', () => {
  it('opens what it sealed, in the same context only', () => {
    const box = createSecretBox(KEY);
    const sealed = box.seal('refresh-token-value', 'account:1');
    expect(sealed).not.toContain('refresh-token-value');
    expect(box.open(sealed, 'account:1')).toBe('refresh-token-value');
    expect(() => box.open(sealed, 'account:2')).toThrow(SecretBoxError);
    expect(box.seal('same', 'c')).not.toBe(box.seal('same', 'c')); // a fresh IV each time
  });

  it('refuses altered values, other keys and short keys', () => {
    const sealed = createSecretBox(KEY).seal('x', 'c');
    const [v, iv, body, tag] = sealed.split('.');
    const flipped = `${v}.${iv}.${body!.startsWith('A') ? 'B' : 'A'}${body!.slice(1)}.${tag}`;
    expect(() => createSecretBox(KEY).open(flipped, 'c')).toThrow(SecretBoxError);
    expect(() => createSecretBox(`${KEY}-other`).open(sealed, 'c')).toThrow(SecretBoxError);
    expect(() => createSecretBox(KEY).open('garbage', 'c')).toThrow(SecretBoxError);
    expect(() => createSecretBox('short')).toThrow(/at least 32/);
  });

  it('generates a key file once (owner-only) and uses it on the next start', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'hub-secrets-'));
    try {
      const log = pino({ level: 'silent' });
      const first = await loadSecretBox({ secretKey: undefined, dataDir: dir, sharedDatabase: false }, log);
      const sealed = first.seal('kept', 'c');
      const file = path.join(dir, 'secret.key');
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      const key = await readFile(file, 'utf8');
      const second = await loadSecretBox({ secretKey: undefined, dataDir: dir, sharedDatabase: false }, log);
      expect(second.open(sealed, 'c')).toBe('kept');
      expect(await readFile(file, 'utf8')).toBe(key);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("keeps one plugin's secrets from another", async () => {
    const contexts: Record<string, PluginContext> = {};
    const capture = (id: string) => ({ definition: definePlugin({ id, version: '1.0.0', hub: '*', setup: (ctx) => void (contexts[id] = ctx) }) });
    const t = await createTestHub({}, { plugins: [capture('alpha'), capture('beta')] });
    try {
      const sealed = contexts.alpha!.secrets.seal('token', 'account:1');
      expect(contexts.alpha!.secrets.open(sealed, 'account:1')).toBe('token');
      expect(() => contexts.beta!.secrets.open(sealed, 'account:1')).toThrow(SecretBoxError);
    } finally {
      await t.stop();
    }
  });
});
