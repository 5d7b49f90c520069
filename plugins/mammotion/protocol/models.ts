/**
 * Which product a device is, from its cloud device name (SPEC §8). The order of the prefixes
 * matters: specific ones (`Yuka-MN`) before generic ones (`Yuka-`).
 *
 * @module
 */

import { LUBA1_PRODUCT_KEYS } from './product-keys.js';

export type ModelFamily = 'luba1' | 'luba' | 'yuka' | 'rtk' | 'pool' | 'other';

export interface MowerModel {
  /** Human name, e.g. "Luba 2" or "Yuka Mini". */
  name: string;
  family: ModelFamily;
  /**
   * Navigation messages go to DEV_NAVIGATION (17) — every mower since Luba 2. Luba 1, RTK
   * stations and pool robots take them on DEV_MAINCTL (1).
   */
  navigationBoard: boolean;
  /** Whether the blade height can be set (Yuka-family models have a fixed deck). */
  bladeHeightAdjustable: boolean;
}

const PREFIXES: [prefix: string, name: string, family: ModelFamily][] = [
  ['Luba-VS', 'Luba 2', 'luba'],
  ['Luba-VA', 'Luba 3 (HM442)', 'luba'],
  ['Luba-LD', 'HM431', 'luba'],
  ['Luba-VP', 'Luba 2 Pro', 'luba'],
  ['Luba-MN', 'Luba mini (HM430)', 'luba'],
  ['Luba-MD', 'HM433', 'luba'],
  ['Luba-LA', 'HM432', 'luba'],
  ['Luba-MB', 'HM434', 'luba'],
  ['Luba-HM', 'HM610', 'luba'],
  ['Luba-ME', 'HM620', 'luba'],
  ['Yuka-MV', 'Yuka MiniV (MN231)', 'yuka'],
  ['Yuka-ML', 'Yuka ML (MN232)', 'yuka'],
  ['Yuka-VP', 'Yuka VP (MN241)', 'yuka'],
  ['Yuka-MN', 'Yuka Mini', 'yuka'],
  ['Yuka-YM', 'Yuka Mini 2', 'yuka'],
  ['Yuka-', 'Yuka', 'yuka'],
  ['Ezy-VT', 'MN100', 'other'],
  ['Ezy-LD', 'MN101', 'other'],
  ['Kumar-MK', 'CM900 (KM01)', 'other'],
  ['RBSA', 'RTK3 station', 'rtk'],
];

/**
 * The model of a device. A Luba 1 product key decides exactly; otherwise any other name with
 * "Luba" is taken for a Luba 1, as the vendor's own rule does (an unknown future `Luba-XX` then
 * routes like a Luba 1).
 */
export function detectModel(deviceName: string, productKey = '', luba1ProductKeys: readonly string[] = LUBA1_PRODUCT_KEYS): MowerModel {
  if (deviceName.startsWith('RTK') || deviceName.startsWith('NB')) return model('RTK station', 'rtk');
  if (deviceName.startsWith('Spino') || deviceName.startsWith('SDPX')) return model('Pool robot', 'pool');
  const head = deviceName.slice(0, 8);
  const known = PREFIXES.find(([prefix]) => head.includes(prefix));
  if (known && !luba1ProductKeys.includes(productKey)) return model(known[1], known[2]);
  if (deviceName.includes('Luba') || luba1ProductKeys.includes(productKey)) return model('Luba 1', 'luba1');
  return model('Unknown Mammotion device', 'other');
}

function model(name: string, family: ModelFamily): MowerModel {
  return {
    name,
    family,
    navigationBoard: family === 'luba' || family === 'yuka' || family === 'other',
    bladeHeightAdjustable: family === 'luba' || family === 'luba1',
  };
}
