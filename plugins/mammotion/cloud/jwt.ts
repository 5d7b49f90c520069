/**
 * Reading JWT claims without verifying them. The hub is the token's holder, not its
 * audience: it only needs `exp` (when to refresh) and `iot` (where the IoT API lives).
 *
 * @module
 */

/** Claims of a Mammotion access token that the driver reads. */
export interface MammotionTokenClaims {
  /** Expiry, absolute unix seconds. */
  exp?: number;
  /** Base URL of the Mammotion IoT API. */
  iot?: string;
  robot?: unknown;
  [claim: string]: unknown;
}

/** The payload of a JWT, or `undefined` when the token is not JWT-shaped. Never throws. */
export function decodeJwtPayload(token: string): MammotionTokenClaims | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return payload !== null && typeof payload === 'object' && !Array.isArray(payload) ? (payload as MammotionTokenClaims) : undefined;
  } catch {
    return undefined;
  }
}

/** The `exp` claim as epoch milliseconds, if the token has a numeric one. */
export function jwtExpiryMs(token: string): number | undefined {
  const exp = decodeJwtPayload(token)?.exp;
  return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
}

/**
 * The IoT API base URL from the `iot` claim, without a trailing slash. The claim is used as a
 * URL prefix; whether it always carries a scheme is unverified (SPEC §12), so a bare host
 * gets `https://`, as other clients do.
 *
 * @example
 * iotBaseUrl('api-iot-business-eu-dcdn.mammotion.com') // → 'https://api-iot-business-eu-dcdn.mammotion.com'
 */
export function iotBaseUrl(claim: string): string {
  const trimmed = claim.trim().replace(/\/+$/, '');
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `https://${trimmed}`;
}
