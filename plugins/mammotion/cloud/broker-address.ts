/**
 * The broker address of the Mammotion MQTT credentials (SPEC §2.3). The cloud answers it in
 * several forms: `mqtts://h:p`, `ssl://h:p`, `tcp://h:p` or a bare `h:p`.
 *
 * @module
 */

/** Where to connect, as mqtt.js wants it. */
export interface BrokerAddress {
  host: string;
  port: number;
  tls: boolean;
  /** `mqtts://host:port` or `mqtt://host:port`. */
  url: string;
}

/**
 * Parses the `host` field of `/v1/mqtt/auth/jwt`. mqtts/ssl ⇒ TLS, default port 8883;
 * anything else is plain MQTT, default port 1883.
 *
 * @throws Error when no host can be read.
 * @example
 * parseBrokerAddress('ssl://mqtt.example.com') // → { host: 'mqtt.example.com', port: 8883, tls: true, url: 'mqtts://mqtt.example.com:8883' }
 */
export function parseBrokerAddress(raw: string): BrokerAddress {
  const match = /^(?:([a-z][a-z0-9+.-]*):\/\/)?([^/:]+|\[[^\]]+\])(?::(\d{1,5}))?\/?$/i.exec(raw.trim());
  if (!match?.[2]) throw new Error(`Unreadable MQTT host "${raw}"`);
  const scheme = (match[1] ?? '').toLowerCase();
  const tls = scheme === 'mqtts' || scheme === 'ssl' || scheme === 'tls';
  const port = match[3] ? Number(match[3]) : tls ? 8883 : 1883;
  if (port < 1 || port > 65535) throw new Error(`Unreadable MQTT port in "${raw}"`);
  const host = match[2];
  return { host, port, tls, url: `${tls ? 'mqtts' : 'mqtt'}://${host}:${port}` };
}
