/**
 * Mower positions come in metres, in a local frame centred on the RTK base station (SPEC §7.4):
 * rotate by the station's yaw, then convert east/north/up around the station to WGS84.
 *
 * @module
 */

/** The RTK base station: latitude and longitude in radians, yaw of the local frame in radians. */
export interface RtkOrigin {
  lat: number;
  lon: number;
  yaw: number;
}

const A = 6378137; // WGS84 semi-major axis, m
const F = 1 / 298.257223563;
const B = A * (1 - F);
const E2 = F * (2 - F); // first eccentricity squared
const EP2 = (A * A - B * B) / (B * B); // second eccentricity squared

/** Latitude and longitude in degrees of the point `x` m, `y` m from the origin in the mower's frame. */
export function localToWgs84(origin: RtkOrigin, x: number, y: number): { latitude: number; longitude: number } {
  const east = Math.cos(origin.yaw) * x - Math.sin(origin.yaw) * y;
  const north = Math.sin(origin.yaw) * x + Math.cos(origin.yaw) * y;
  const [x0, y0, z0] = geodeticToEcef(origin.lat, origin.lon);
  const sinLat = Math.sin(origin.lat);
  const cosLat = Math.cos(origin.lat);
  const sinLon = Math.sin(origin.lon);
  const cosLon = Math.cos(origin.lon);
  const ecefX = x0 - sinLon * east - sinLat * cosLon * north;
  const ecefY = y0 + cosLon * east - sinLat * sinLon * north;
  const ecefZ = z0 + cosLat * north;
  const { lat, lon } = ecefToGeodetic(ecefX, ecefY, ecefZ);
  return { latitude: (lat * 180) / Math.PI, longitude: (lon * 180) / Math.PI };
}

function geodeticToEcef(lat: number, lon: number): [number, number, number] {
  const n = A / Math.sqrt(1 - E2 * Math.sin(lat) ** 2);
  return [n * Math.cos(lat) * Math.cos(lon), n * Math.cos(lat) * Math.sin(lon), n * (1 - E2) * Math.sin(lat)];
}

/** Bowring's method, one iteration: well under a millimetre of error at ground level. */
function ecefToGeodetic(x: number, y: number, z: number): { lat: number; lon: number } {
  const p = Math.hypot(x, y);
  const theta = Math.atan2(z * A, p * B);
  const lat = Math.atan2(z + EP2 * B * Math.sin(theta) ** 3, p - E2 * A * Math.cos(theta) ** 3);
  return { lat, lon: Math.atan2(y, x) };
}
