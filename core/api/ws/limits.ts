/**
 * What one WebSocket client may hold and send, so a single account cannot make the hub keep
 * unbounded listeners or answer an unbounded stream of commands.
 *
 * @module
 */

/** The WebSocket API's limits, from `HUB_WS_*` (see core/config). */
export interface WebSocketLimits {
  /** Subscriptions (`subscribe_events`, `subscribe_entities`) one connection may hold at once. */
  maxSubscriptions: number;
  /** Authenticated connections one user may hold on this hub instance. */
  maxConnectionsPerUser: number;
  /** Commands per second a connection may send on average. */
  commandRate: number;
  /** Commands a connection may send at once after being quiet (HA clients send a burst at start). */
  commandBurst: number;
  /** How often open connections' credentials are checked again, in milliseconds. */
  recheckMs: number;
}

/**
 * A token bucket: holds up to `capacity` tokens, refilled at `ratePerSecond`; each command
 * takes one. Refilled lazily on use, so idle connections cost no timers.
 */
export class TokenBucket {
  #tokens: number;
  #refilledAt: number;

  constructor(
    private readonly capacity: number,
    private readonly ratePerSecond: number,
    private readonly now: () => number = Date.now,
  ) {
    this.#tokens = capacity;
    this.#refilledAt = now();
  }

  /** Takes a token if there is one. @returns false when the caller must be refused. */
  take(): boolean {
    const now = this.now();
    this.#tokens = Math.min(this.capacity, this.#tokens + ((now - this.#refilledAt) / 1000) * this.ratePerSecond);
    this.#refilledAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
