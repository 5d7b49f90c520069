import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

interface ScryptCost {
  N: number;
  r: number;
  p: number;
}

// OWASP's scrypt setting (N=2^16, r=8, p=1): 64 MiB and ~0.2 s per hash on a small server.
// The parameters are stored with each hash, so raising them later leaves old hashes valid.
const COST: ScryptCost = { N: 2 ** 16, r: 8, p: 1 };
const KEY_LENGTH = 32;
const HASH_FORMAT = /^\$scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

// A hash to verify against when the account does not exist, so that a login for an unknown
// email takes as long as one with a wrong password and does not reveal which emails exist.
let decoyHash: Promise<string> | undefined;

function derive(password: string, salt: Buffer, cost: ScryptCost): Promise<Buffer> {
  const options = { ...cost, maxmem: 256 * cost.N * cost.r };
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFKC'), salt, KEY_LENGTH, options, (error, key) => (error ? reject(error) : resolve(key))),
  );
}

const unpadded = (bytes: Buffer) => bytes.toString('base64').replace(/=+$/, '');

/** Hashes a password as `$scrypt$N=…,r=…,p=…$<salt>$<key>` (unpadded base64). */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, COST);
  return `$scrypt$N=${COST.N},r=${COST.r},p=${COST.p}$${unpadded(salt)}$${unpadded(key)}`;
}

/**
 * Checks a password against a stored hash in constant time. With no stored hash (unknown
 * user) it still spends the time of one check and returns false.
 */
export async function verifyPassword(password: string, stored: string | undefined): Promise<boolean> {
  if (stored === undefined) {
    decoyHash ??= hashPassword('decoy password');
    await verifyPassword(password, await decoyHash);
    return false;
  }
  const match = HASH_FORMAT.exec(stored);
  if (!match) return false;
  const [, N, r, p, salt, key] = match as unknown as [string, string, string, string, string, string];
  const expected = Buffer.from(key, 'base64');
  const actual = await derive(password, Buffer.from(salt, 'base64'), { N: Number(N), r: Number(r), p: Number(p) });
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
