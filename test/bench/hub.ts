/** A hub for benchmarks: embedded PGlite in memory (or `BENCH_DATABASE_URL`), logs off. */
import { loadConfig } from '../../core/config/index.js';
import { openDatabase } from '../../core/db/index.js';
import { createHub, type Hub } from '../../core/hub.js';
import type { PluginSource } from '../../core/plugins/index.js';

export const BENCH_ADMIN = { email: 'bench@example.com', password: 'bench-password-1' };

/** @param options.env extra environment (plugin settings); @param options.plugins plugins to load (default none) */
export async function startBenchHub(options: { env?: Record<string, string>; plugins?: PluginSource[] } = {}): Promise<{ hub: Hub; url: string; token: string; homeId: string }> {
  const url = process.env.BENCH_DATABASE_URL;
  const database = await openDatabase(url ? { kind: 'postgres', url } : { kind: 'pglite' });
  const config = loadConfig({
    HUB_ADMIN_EMAIL: BENCH_ADMIN.email,
    HUB_ADMIN_PASSWORD: BENCH_ADMIN.password,
    LOG_LEVEL: 'silent',
    PORT: '0',
    MQTT_PORT: '0',
    HOST: '127.0.0.1',
    NODE_ENV: 'production',
    HUB_SECRET_KEY: 'bench-only-secret-key-0123456789abcdef',
    HUB_NODERED: 'false',
    ...options.env,
  });
  const hub = await createHub(config, { database, plugins: options.plugins ?? [] });
  const listening = await hub.listen();
  const login = await hub.app.request('/api/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(BENCH_ADMIN),
  });
  const { token } = (await login.json()) as { token: string };
  const home = await hub.app.request('/api/homes', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ name: 'Bench' }),
  });
  const { id: homeId } = (await home.json()) as { id: string };
  return { hub, url: listening.url, token, homeId };
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
