/** `npm start` as a user runs it: a real process, a real port, real signals. */
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, waitForUrl } from '../harness/process.js';

describe('npm start', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'hub-main-'));
  });
  afterAll(() => rm(dataDir, { recursive: true, force: true }));

  it('prints the URL and a one-time admin password, serves health, and exits 0 on SIGTERM', async () => {
    const hub = startHub({ HUB_DATA_DIR: dataDir });
    const url = await waitForUrl(hub);
    const password = /Password: {2}(\S+)/.exec(hub.stdout())?.[1];
    expect(hub.stdout()).toContain('First run: administrator admin@localhost');
    expect(password).toMatch(/^[a-z2-7]{32}$/);
    // The one-time password goes to the terminal, never into the log lines.
    const logLines = hub.stdout().split('\n').filter((l) => l.startsWith('{'));
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('\n')).not.toContain(password);

    const health = await fetch(`${url}/api/health`);
    expect(await health.json()).toMatchObject({ status: 'ok', db: { kind: 'pglite' } });
    const login = await fetch(`${url}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'admin@localhost', password }),
    });
    expect(login.status).toBe(200);

    const signalled = Date.now();
    hub.child.kill('SIGTERM');
    expect(await hub.exited).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(10_000);
  });

  it('keeps its data and prints no password on the next start', async () => {
    const hub = startHub({ HUB_DATA_DIR: dataDir });
    await waitForUrl(hub);
    expect(hub.stdout()).not.toContain('First run');
    hub.child.kill('SIGINT');
    expect(await hub.exited).toBe(0);
  });

  it('stops with a message naming a bad variable', async () => {
    const hub = startHub({ HUB_DATA_DIR: dataDir, PORT: 'http', LOG_LEVEL: 'chatty' });
    expect(await hub.exited).toBe(78);
    expect(hub.stderr()).toMatch(/PORT must be a number \(got "http"\)/);
    expect(hub.stderr()).toMatch(/LOG_LEVEL must be one of/);
    expect(hub.stderr()).not.toMatch(/\bat \S+\.ts:\d+/); // a message, not a stack trace
  });

  it('says so when the port is taken', async () => {
    const blocker = createServer().listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const { port } = blocker.address() as AddressInfo;
    try {
      const hub = startHub({ HUB_DATA_DIR: dataDir, PORT: String(port) });
      expect(await hub.exited).toBe(78);
      expect(hub.stderr()).toContain(`Port ${port} is already in use; set PORT to a free port`);
      const mqtt = startHub({ HUB_DATA_DIR: dataDir, MQTT_PORT: String(port) });
      expect(await mqtt.exited).toBe(78);
      expect(mqtt.stderr()).toContain(`MQTT port ${port} is already in use; set MQTT_PORT to a free port, or MQTT_URL`);
    } finally {
      blocker.close();
    }
  });
});
