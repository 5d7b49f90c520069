/** Home Assistant's context: ties an action to the events and state changes it caused. */

export interface Context {
  id: string;
  /** The context that triggered this one (an automation reacting to an event), or null. */
  parent_id: string | null;
  /** The user who started it; null when the hub or an automation did. */
  user_id: string | null;
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A ULID, as Home Assistant uses for context ids: time-ordered, 26 characters. */
export function ulid(now = Date.now()): string {
  let time = '';
  for (let t = now, i = 0; i < 10; i++, t = Math.floor(t / 32)) time = CROCKFORD[t % 32] + time;
  const random = crypto.getRandomValues(new Uint8Array(16));
  let rest = '';
  for (const byte of random) rest += CROCKFORD[byte % 32];
  return time + rest;
}

export function createContext(from: { user_id?: string | null; parent_id?: string | null } = {}): Context {
  return { id: ulid(), parent_id: from.parent_id ?? null, user_id: from.user_id ?? null };
}
