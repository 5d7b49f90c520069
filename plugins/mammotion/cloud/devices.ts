/**
 * Device discovery answers (SPEC §2.2) read into one record per device. The domestic list is
 * authoritative for `deviceName → iotId`; the IoT "device page" adds the `productKey` the MQTT
 * topics need. Fields are read leniently: unknown extras are ignored, a record without an
 * `iotId` is dropped.
 *
 * @module
 */

/** A device as the Mammotion account sees it. */
export interface DiscoveredDevice {
  iotId: string;
  deviceName: string;
  /** Empty when only the domestic list knows the device (it then has no Mammotion-direct topics). */
  productKey: string;
  deviceId?: string;
  deviceType?: string;
  series?: string;
  productSeries?: string;
  generation?: string;
  owned?: boolean;
  /** Raw cloud status code (1 online, 3 offline in the IoT platform's convention). */
  status?: number;
  /** `status` read as online/offline; `undefined` when the code is not one we know. */
  online?: boolean;
}

type Row = Record<string, unknown>;

const text = (value: unknown): string | undefined =>
  typeof value === 'string' ? value : typeof value === 'number' && Number.isFinite(value) ? String(value) : undefined;

const integer = (value: unknown): number | undefined => {
  const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isInteger(n) ? n : undefined;
};

/** Status 1 = online, 3 = offline (0 inactive and 8 disabled also mean "not reachable"). */
export function onlineFromStatus(status: number | undefined): boolean | undefined {
  if (status === 1) return true;
  if (status === 0 || status === 3 || status === 8) return false;
  return undefined;
}

/** The rows of a list answer: a bare array, or `{records|list|data: [...]}`. */
export function rowsOf(data: unknown): Row[] {
  const list = Array.isArray(data)
    ? data
    : data !== null && typeof data === 'object'
      ? ((data as Row).records ?? (data as Row).list ?? (data as Row).data)
      : undefined;
  return Array.isArray(list) ? list.filter((row): row is Row => row !== null && typeof row === 'object' && !Array.isArray(row)) : [];
}

function fromRow(row: Row): DiscoveredDevice | undefined {
  const iotId = text(row.iotId);
  if (!iotId) return undefined;
  const status = integer(row.status);
  const device: DiscoveredDevice = { iotId, deviceName: text(row.deviceName) ?? '', productKey: text(row.productKey) ?? '' };
  const optional = { deviceId: text(row.deviceId), deviceType: text(row.deviceType), series: text(row.series), productSeries: text(row.productSeries), generation: text(row.generation) };
  for (const [key, value] of Object.entries(optional)) if (value !== undefined) (device as unknown as Row)[key] = value;
  if (typeof row.owned === 'boolean' || typeof row.owned === 'number') device.owned = Boolean(row.owned);
  if (status !== undefined) {
    device.status = status;
    const online = onlineFromStatus(status);
    if (online !== undefined) device.online = online;
  }
  return device;
}

/**
 * Merges the domestic list and the IoT device page by `iotId`. The domestic list wins for
 * names; the page supplies product keys; a device listed by only one side is kept.
 */
export function mergeDeviceLists(domestic: unknown, page: unknown[]): DiscoveredDevice[] {
  const byId = new Map<string, DiscoveredDevice>();
  for (const row of rowsOf(domestic)) {
    const device = fromRow(row);
    if (device) byId.set(device.iotId, device);
  }
  for (const row of page.flatMap((data) => rowsOf(data))) {
    const device = fromRow(row);
    if (!device) continue;
    const known = byId.get(device.iotId);
    if (!known) {
      byId.set(device.iotId, device);
      continue;
    }
    known.productKey ||= device.productKey;
    known.deviceName ||= device.deviceName;
    if (known.owned === undefined && device.owned !== undefined) known.owned = device.owned;
    // The IoT platform's status is the one its MQTT status topic will keep up to date.
    if (device.status !== undefined) {
      known.status = device.status;
      if (device.online !== undefined) known.online = device.online;
    }
  }
  return [...byId.values()];
}
