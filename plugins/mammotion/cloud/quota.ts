/**
 * The send budget of SPEC §9: devices on firmware older than 1.30.25.1 (not yet migrated off
 * the old cloud) get at most 600 commands per rolling 12 h, so the hub never trips
 * Mammotion's own throttling; an HTTP 429 blocks the device for 12 h either way.
 *
 * @module
 */

/** Firmware from which the cloud no longer rate-limits a device. */
export const RATE_LIMIT_REMOVED_VERSION = '1.30.25.1';
/** Rolling window of the quota and length of a 429 block. */
export const TWELVE_HOURS_MS = 12 * 60 * 60 * 1000;
/** Default commands per window for old firmware. */
export const DEFAULT_SEND_LIMIT = 600;

/** A device's budget, for entity attributes and metrics. */
export interface SendBudget {
  /** Commands counted in the current window (syncs are not counted). */
  used: number;
  /** Commands allowed per window, or `null` when the device is exempt (new firmware). */
  limit: number | null;
  /** Epoch ms until which sends are refused (429 block or spent quota), or `null`. */
  blockedUntil: number | null;
}

/**
 * Compares dotted numeric versions (`1.30.25.1` vs `1.30.3`), missing parts as 0.
 * Returns `undefined` when either side is not purely dotted digits.
 */
export function compareVersions(a: string, b: string): number | undefined {
  const parse = (v: string) => (/^\d+(\.\d+)*$/.test(v.trim()) ? v.trim().split('.').map(Number) : undefined);
  const left = parse(a);
  const right = parse(b);
  if (!left || !right) return undefined;
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    const diff = (left[i] ?? 0) - (right[i] ?? 0);
    if (diff !== 0) return Math.sign(diff);
  }
  return 0;
}

/** True when the firmware is known to be at least {@link RATE_LIMIT_REMOVED_VERSION}. Unknown or unreadable counts as old. */
export function isQuotaExempt(firmware: string | undefined): boolean {
  if (!firmware) return false;
  // Firmware strings sometimes carry a prefix ("v1.30.25.1"); only the numbers matter.
  const numeric = firmware.trim().replace(/^[^\d]+/, '');
  return (compareVersions(numeric, RATE_LIMIT_REMOVED_VERSION) ?? -1) >= 0;
}

/** Per-device rolling-window counters and 429 blocks. */
export class SendQuota {
  readonly #sent = new Map<string, number[]>();
  readonly #blocked = new Map<string, number>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {}

  /** The device's budget; `exempt` devices have no limit but can still be 429-blocked. */
  budget(iotId: string, exempt: boolean): SendBudget {
    const now = this.now();
    const sent = this.#window(iotId, now);
    const block = this.#blocked.get(iotId);
    const rateBlock = block !== undefined && block > now ? block : undefined;
    const oldest = sent[0];
    const quotaBlock = !exempt && sent.length >= this.limit && oldest !== undefined ? oldest + this.windowMs : undefined;
    const blockedUntil = Math.max(rateBlock ?? 0, quotaBlock ?? 0);
    return { used: sent.length, limit: exempt ? null : this.limit, blockedUntil: blockedUntil > 0 ? blockedUntil : null };
  }

  /** Epoch ms of an active 429 block, if any. */
  rateLimitedUntil(iotId: string): number | undefined {
    const until = this.#blocked.get(iotId);
    return until !== undefined && until > this.now() ? until : undefined;
  }

  /** Counts one command. */
  record(iotId: string): void {
    const now = this.now();
    this.#window(iotId, now).push(now);
  }

  /** Blocks the device after a 429; returns the end of the block. */
  block(iotId: string, forMs: number): number {
    const until = this.now() + forMs;
    this.#blocked.set(iotId, until);
    return until;
  }

  /** The timestamps inside the window, pruned in place. */
  #window(iotId: string, now: number): number[] {
    let sent = this.#sent.get(iotId);
    if (!sent) this.#sent.set(iotId, (sent = []));
    const cutoff = now - this.windowMs;
    let drop = 0;
    while (drop < sent.length && (sent[drop] ?? 0) <= cutoff) drop++;
    if (drop > 0) sent.splice(0, drop);
    return sent;
  }
}
