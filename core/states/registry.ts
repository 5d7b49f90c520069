/**
 * The entity registry (Home Assistant's idea): which entity id each thing that makes entities
 * holds. Ids are allocated, not derived: a device's metric or a plugin's unique id asks for an
 * id it would like, the first holder keeps it, and a later claimant whose id is taken — by
 * another device, home or owner, registered or not — gets `<id>_2`, `<id>_3`, … The mapping is
 * persisted by the state machine, so a device keeps its ids across restarts, and it goes with
 * its device or home.
 *
 * @module
 */
import { hubError } from '../errors/index.js';

/** Who holds an entity id, and for what. */
export interface RegistryEntry {
  entityId: string;
  /** Who made it: `telemetry` or `plugin:<id>` (the owner of its state). */
  owner: string;
  homeId: string;
  /** The `devices` row for telemetry; null for entities not tied to one. */
  deviceId: string | null;
  /** Stable within the owner, device and domain: a metric name, a plugin's own key. */
  uniqueId: string;
}

/** A request for an entity id. */
export interface EntityClaim {
  owner: string;
  homeId: string;
  deviceId: string | null;
  uniqueId: string;
  /** The id wanted (`domain.object_id`); its domain is part of the claim's identity. */
  preferredId: string;
}

/** Suffixes tried before giving up; far beyond what any home holds. */
const MAX_SUFFIX = 10_000;

const domainOf = (entityId: string) => entityId.slice(0, entityId.indexOf('.'));

/** The in-memory registry; {@link StateMachine} owns one and persists its changes. */
export class EntityRegistry {
  readonly #byId = new Map<string, RegistryEntry>();
  readonly #byKey = new Map<string, RegistryEntry>();
  /** Entries per owner and device, for the per-device cap. */
  readonly #perDevice = new Map<string, number>();

  /** The entry holding `entityId`, if any. */
  get(entityId: string): RegistryEntry | undefined {
    return this.#byId.get(entityId);
  }

  /** The entity id the claim's owner, device and unique id already hold, if any. */
  find(claim: EntityClaim): RegistryEntry | undefined {
    return this.#byKey.get(keyOf(claim.owner, claim.deviceId, domainOf(claim.preferredId), claim.uniqueId));
  }

  /** How many ids an owner holds for one device. */
  countFor(owner: string, deviceId: string): number {
    return this.#perDevice.get(`${owner}\n${deviceId}`) ?? 0;
  }

  /**
   * A new entry for a claim that holds nothing yet: the preferred id when free, else the first
   * free `_2`, `_3`, … `free` says whether an id is usable beyond the registry (no live entity
   * of someone else holds it).
   */
  allocate(claim: EntityClaim, free: (entityId: string) => boolean): RegistryEntry {
    for (let n = 1; n <= MAX_SUFFIX; n++) {
      const entityId = n === 1 ? claim.preferredId : `${claim.preferredId}_${n}`;
      if (entityId.length > 255) break;
      if (this.#byId.has(entityId) || !free(entityId)) continue;
      const entry: RegistryEntry = { entityId, owner: claim.owner, homeId: claim.homeId, deviceId: claim.deviceId, uniqueId: claim.uniqueId };
      this.add(entry);
      return entry;
    }
    throw hubError('HUB_ERR_VALIDATION', `No free entity id near ${claim.preferredId}`);
  }

  /** Adds (or replaces) an entry: at restore, and for each allocation. */
  add(entry: RegistryEntry): void {
    const old = this.#byId.get(entry.entityId);
    if (old) this.delete(old);
    this.#byId.set(entry.entityId, entry);
    this.#byKey.set(keyOf(entry.owner, entry.deviceId, domainOf(entry.entityId), entry.uniqueId), entry);
    if (entry.deviceId) this.#count(entry, 1);
  }

  delete(entry: RegistryEntry): void {
    if (this.#byId.get(entry.entityId) !== entry) return;
    this.#byId.delete(entry.entityId);
    this.#byKey.delete(keyOf(entry.owner, entry.deviceId, domainOf(entry.entityId), entry.uniqueId));
    if (entry.deviceId) this.#count(entry, -1);
  }

  /** Every entry matching `test`, removed; returns them. */
  deleteWhere(test: (entry: RegistryEntry) => boolean): RegistryEntry[] {
    const gone = [...this.#byId.values()].filter(test);
    for (const entry of gone) this.delete(entry);
    return gone;
  }

  #count(entry: RegistryEntry, by: 1 | -1): void {
    const key = `${entry.owner}\n${entry.deviceId}`;
    const n = (this.#perDevice.get(key) ?? 0) + by;
    if (n > 0) this.#perDevice.set(key, n);
    else this.#perDevice.delete(key);
  }
}

function keyOf(owner: string, deviceId: string | null, domain: string, uniqueId: string): string {
  return `${owner}\n${deviceId ?? ''}\n${domain}\n${uniqueId}`;
}
