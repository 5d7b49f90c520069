/**
 * Secrets at rest: AES-256-GCM under the hub's key, for what plugins must store but nobody may
 * read from a database dump (cloud refresh tokens, Node-RED credentials).
 *
 * The key is `HUB_SECRET_KEY`, or a random key generated into `<HUB_DATA_DIR>/secret.key` on
 * first start. Several hub instances sharing one database must share the key: set the variable.
 *
 * @module
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { StartupError } from '../errors/index.js';
import type { Logger } from '../log/index.js';

const VERSION = 'v1';
const KEY_FILE = 'secret.key';

/** Seals and opens short secrets. `context` binds a sealed value to where it is stored. */
export interface SecretBox {
  /** `plaintext` encrypted and authenticated, as `v1.<iv>.<ciphertext>.<tag>` (base64url). */
  seal(plaintext: string, context: string): string;
  /** The plaintext, or {@link SecretBoxError} when the value was altered, moved or sealed under another key. */
  open(sealed: string, context: string): string;
  /** A key of its own for `purpose` (hex, 256 bits), for components that encrypt by themselves. */
  derive(purpose: string): string;
}

export class SecretBoxError extends Error {
  override readonly name = 'SecretBoxError';
}

/** A box over any key material of at least 32 characters (HKDF turns it into the AES key). */
export function createSecretBox(keyMaterial: string): SecretBox {
  if (keyMaterial.length < 32) throw new SecretBoxError('the secret key must be at least 32 characters');
  const key = Buffer.from(hkdfSync('sha256', keyMaterial, 'mowthos-hub', 'secret-box v1', 32));
  return {
    derive: (purpose) => Buffer.from(hkdfSync('sha256', keyMaterial, 'mowthos-hub', `derived ${purpose}`, 32)).toString('hex'),
    seal(plaintext, context) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(context));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return [VERSION, iv, body, cipher.getAuthTag()].map((part) => (typeof part === 'string' ? part : part.toString('base64url'))).join('.');
    },
    open(sealed, context) {
      const [version, iv, body, tag] = sealed.split('.');
      if (version !== VERSION || iv === undefined || body === undefined || tag === undefined) throw new SecretBoxError('not a sealed value');
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
        decipher.setAAD(Buffer.from(context));
        decipher.setAuthTag(Buffer.from(tag, 'base64url'));
        return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
      } catch (error) {
        throw new SecretBoxError('the sealed value does not open with this key and context', { cause: error });
      }
    },
  };
}

/** The hub's box: from `HUB_SECRET_KEY`, else from (or into) the key file in the data directory. */
export async function loadSecretBox(options: { secretKey: string | undefined; dataDir: string; sharedDatabase: boolean }, log: Logger): Promise<SecretBox> {
  if (options.secretKey) return createSecretBox(options.secretKey);
  const file = path.join(options.dataDir, KEY_FILE);
  const existing = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (existing !== undefined) return boxFromFile(file, existing);
  await mkdir(options.dataDir, { recursive: true });
  const generated = randomBytes(32).toString('base64url');
  // 'wx': if another process created the file meanwhile, use its key, not ours.
  const created = await writeFile(file, `${generated}\n`, { mode: 0o600, flag: 'wx' }).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
      return false;
    },
  );
  if (created) log.info({ file }, 'generated the hub secret key (back it up, apart from the database backups)');
  if (options.sharedDatabase) log.warn('HUB_SECRET_KEY is not set: every hub instance on this database must use the same key');
  return boxFromFile(file, await readFile(file, 'utf8'));
}

function boxFromFile(file: string, contents: string): SecretBox {
  const key = contents.trim();
  if (key.length < 32) throw new StartupError(`${file} does not hold a secret key of 32+ characters; restore it from a backup, or set HUB_SECRET_KEY`);
  return createSecretBox(key);
}
