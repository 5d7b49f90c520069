/**
 * Devices still hosted on Mammotion's Aliyun IoT cloud (SPEC §1, §2.4). The hub does not
 * speak that chain yet; it recognises such devices so it can say so instead of failing
 * obscurely. The closed list of Aliyun product keys is data the user (or a later release)
 * supplies; without it no device is treated as Aliyun.
 *
 * @module
 */

/** Human-readable status for a device the transport cannot drive. */
export const ALIYUN_NOT_SUPPORTED = 'This mower is on Mammotion\'s older Aliyun cloud, which the hub does not support yet. A firmware update usually moves it to the Mammotion cloud.';

/**
 * True when `productKey` is one of the Aliyun product keys.
 *
 * @param aliyunProductKeys the known Aliyun product keys (SPEC §8 names where the list lives).
 * @example
 * isAliyunProductKey('a1ABCDEF', ['a1ABCDEF']) // → true
 */
export function isAliyunProductKey(productKey: string, aliyunProductKeys: Iterable<string> = []): boolean {
  if (!productKey) return false;
  for (const key of aliyunProductKeys) if (key === productKey) return true;
  return false;
}
