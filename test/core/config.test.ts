import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../core/config/index.js';

describe('loadConfig', () => {
  it('starts from defaults that need nothing', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 8080,
      dataDir: path.resolve('data'),
      databaseUrl: undefined,
      mqttPort: 1883,
      admin: { email: 'admin@localhost', password: undefined },
      openRegistration: false,
      bodyLimit: 1024 * 1024,
      logLevel: 'info',
    });
  });

  it('reads and converts variables', () => {
    const config = loadConfig({
      PORT: '9000',
      DATABASE_URL: 'postgres://hub@db:5432/hub',
      HUB_OPEN_REGISTRATION: 'true',
      HUB_ADMIN_EMAIL: 'Ops@Example.com',
      LOG_LEVEL: 'debug',
    });
    expect(config).toMatchObject({
      port: 9000,
      databaseUrl: 'postgres://hub@db:5432/hub',
      openRegistration: true,
      admin: { email: 'ops@example.com' },
      logLevel: 'debug',
    });
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ PORT: '', DATABASE_URL: '' })).toMatchObject({ port: 8080, databaseUrl: undefined });
  });

  it('names every bad variable and what it allows', () => {
    let error: unknown;
    try {
      loadConfig({ PORT: 'eighty', LOG_LEVEL: 'loud', DATABASE_URL: 'mysql://x/y', HUB_OPEN_REGISTRATION: 'maybe' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).toContain('PORT must be a number (got "eighty")');
    expect(message).toMatch(/LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent \(got "loud"\)/);
    expect(message).toMatch(/DATABASE_URL must start with postgres: or postgresql:/);
    expect(message).toContain('HUB_OPEN_REGISTRATION must be true or false (got "maybe")');
  });

  it('reads CORS origins, and refuses anything but bare origins', () => {
    expect(loadConfig({}).corsOrigins).toEqual([]);
    expect(loadConfig({ HUB_CORS_ORIGINS: 'https://app.example.com, http://localhost:5173' }).corsOrigins).toEqual(['https://app.example.com', 'http://localhost:5173']);
    for (const bad of ['*', 'app.example.com', 'https://app.example.com/', 'https://app.example.com/path', 'ftp://x.example.com']) {
      expect(() => loadConfig({ HUB_CORS_ORIGINS: bad }), bad).toThrow(/HUB_CORS_ORIGINS must be origins/);
    }
  });

  it('reads the MQTT packet size limit, and refuses one below 1 KiB or over MQTT\'s largest packet', () => {
    expect(loadConfig({}).mqttMaxPacketBytes).toBe(256 * 1024);
    expect(loadConfig({ HUB_MQTT_MAX_PACKET_BYTES: '65536' }).mqttMaxPacketBytes).toBe(65_536);
    expect(() => loadConfig({ HUB_MQTT_MAX_PACKET_BYTES: '100' })).toThrow(/HUB_MQTT_MAX_PACKET_BYTES must be between 1024 and 268435455 \(got "100"\)/);
    expect(() => loadConfig({ HUB_MQTT_MAX_PACKET_BYTES: '300000000' })).toThrow(/HUB_MQTT_MAX_PACKET_BYTES must be between/);
    expect(() => loadConfig({ HUB_MQTT_MAX_PACKET_BYTES: '1.5' })).toThrow(/HUB_MQTT_MAX_PACKET_BYTES must be a whole number of bytes/);
  });

  it('never echoes a rejected password', () => {
    expect(() => loadConfig({ HUB_ADMIN_PASSWORD: 'short' })).toThrow(/HUB_ADMIN_PASSWORD must be at least 8 characters$/m);
    expect(() => loadConfig({ HUB_ADMIN_PASSWORD: 'short' })).not.toThrow(/short"/);
  });

  it('rejects a port out of range', () => {
    expect(() => loadConfig({ PORT: '70000' })).toThrow(/PORT must be between 0 \(any free port\) and 65535/);
  });
});
