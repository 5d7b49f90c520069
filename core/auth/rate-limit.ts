/**
 * Sliding-window counters for login attempts. In memory, per hub instance: with N instances
 * behind a load balancer an attacker gets N times the budget, which still stops guessing.
 */

export class SlidingWindowLimiter {
  readonly #hits = new Map<string, number[]>();

  /**
   * @param limit hits allowed per window
   * @param windowMs the window's length
   * @param maxKeys keys remembered at most; beyond it the stalest are forgotten, so a flood of
   *   distinct keys (spoofed addresses, random emails) cannot grow memory without bound
   */
  constructor(
    readonly limit: number,
    readonly windowMs: number,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = 50_000,
  ) {}

  /** Seconds until `key` may try again, or 0 if it is under the limit. */
  retryAfter(key: string): number {
    const hits = this.#recent(key);
    if (hits.length < this.limit) return 0;
    const oldestThatCounts = hits[hits.length - this.limit]!;
    return Math.max(1, Math.ceil((oldestThatCounts + this.windowMs - this.now()) / 1000));
  }

  hit(key: string): void {
    const hits = this.#recent(key);
    hits.push(this.now());
    this.#hits.delete(key); // re-insert so Map order stays least-recently-hit first
    this.#hits.set(key, hits.slice(-this.limit));
    if (this.#hits.size > this.maxKeys) this.#hits.delete(this.#hits.keys().next().value!);
  }

  reset(key: string): void {
    this.#hits.delete(key);
  }

  #recent(key: string): number[] {
    const since = this.now() - this.windowMs;
    return (this.#hits.get(key) ?? []).filter((t) => t > since);
  }
}

/**
 * The bucket a client address counts in. An IPv6 client usually holds a whole /64, so it counts
 * as one; an IPv4-mapped IPv6 address counts as its IPv4 address.
 */
export function addressKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const bare = address.replace(/%.*$/, '').toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(bare);
  if (mapped) return mapped[1]!;
  if (!bare.includes(':')) return bare;
  const [head = '', tail] = bare.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const zeros = tail === undefined ? [] : Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0');
  const prefix = [...left, ...zeros, ...right].slice(0, 4).map((group) => group.replace(/^0+(?=.)/, ''));
  return `${prefix.join(':')}::/64`;
}

/** Login limits; see {@link createLoginLimiter}. */
export const LOGIN_LIMITS = {
  /** Attempts from one address, on any accounts: stops password spraying. */
  perAddress: { limit: 30, windowMs: 10 * 60_000 },
  /** Attempts on one account from one address: stops guessing; a successful sign-in clears it. */
  perAddressAndAccount: { limit: 5, windowMs: 15 * 60_000 },
  /** Attempts on one account from addresses it has no live session from: stops guessing from many addresses. */
  perAccountFromNewAddresses: { limit: 100, windowMs: 60 * 60_000 },
} as const;

export interface LoginLimiterOptions {
  /** Whether the account holds a live session opened from this address bucket (see {@link addressKey}). */
  isKnownAddress(email: string, address: string): Promise<boolean>;
  now?: () => number;
}

/**
 * Login limits. Failures are counted per address and account, so guesses from elsewhere never
 * lock the owner out; per address, so one client cannot spray many accounts; and per account,
 * so many addresses together cannot guess freely — that last cap spares addresses the account
 * has a live session from, so it cannot lock the owner out of their usual devices either.
 * An attempt counts before the password is checked, so parallel guesses cannot slip through
 * while the (slow) hash runs.
 */
export function createLoginLimiter({ isKnownAddress, now = Date.now }: LoginLimiterOptions) {
  const limiter = ({ limit, windowMs }: { limit: number; windowMs: number }) => new SlidingWindowLimiter(limit, windowMs, now);
  const byAddress = limiter(LOGIN_LIMITS.perAddress);
  const byAddressAndAccount = limiter(LOGIN_LIMITS.perAddressAndAccount);
  const byAccount = limiter(LOGIN_LIMITS.perAccountFromNewAddresses);
  const pair = (address: string, email: string) => `${address} ${email}`;
  return {
    /**
     * Counts a sign-in attempt, or refuses it.
     *
     * @returns seconds to wait when refused, 0 when the attempt may run.
     */
    async admit(ip: string | undefined, email: string): Promise<number> {
      const address = addressKey(ip);
      // Without a socket (in-process requests) there is no address to hold to account.
      const spraying = ip ? byAddress.retryAfter(address) : 0;
      const local = Math.max(spraying, byAddressAndAccount.retryAfter(pair(address, email)));
      if (local > 0) return local;
      // Counted before anything is awaited, so parallel guesses see each other.
      if (ip) byAddress.hit(address);
      byAddressAndAccount.hit(pair(address, email));
      const global = byAccount.retryAfter(email);
      if (global === 0) {
        byAccount.hit(email);
        return 0;
      }
      return (await isKnownAddress(email, address)) ? 0 : global;
    },
    succeeded(ip: string | undefined, email: string): void {
      byAddressAndAccount.reset(pair(addressKey(ip), email));
    },
  };
}

export type LoginLimiter = ReturnType<typeof createLoginLimiter>;
