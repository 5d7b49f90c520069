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
 * Login limits: 30 attempts per client address per 10 minutes, 5 per account per 15 minutes.
 * An attempt counts before the password is checked, so parallel guesses cannot slip through
 * while the (slow) hash runs; a successful login clears its account's count.
 */
export function createLoginLimiter() {
  const byIp = new SlidingWindowLimiter(30, 10 * 60_000);
  const byAccount = new SlidingWindowLimiter(5, 15 * 60_000);
  return {
    /** Seconds to wait before this attempt may run, or 0. */
    retryAfter(ip: string | undefined, email: string): number {
      return Math.max(ip ? byIp.retryAfter(ip) : 0, byAccount.retryAfter(email));
    },
    attempted(ip: string | undefined, email: string): void {
      if (ip) byIp.hit(ip);
      byAccount.hit(email);
    },
    succeeded(email: string): void {
      byAccount.reset(email);
    },
  };
}

export type LoginLimiter = ReturnType<typeof createLoginLimiter>;
