/** The Mammotion plugin for test hubs, pointed at a simulator instead of Mammotion's cloud. */
import { fileURLToPath } from 'node:url';
import type { PluginSource } from '../../core/plugins/index.js';
import mammotion from '../../plugins/mammotion/index.js';
import type { MammotionSimulator } from '../../plugins/mammotion/simulator/index.js';

/** The plugin as `createTestHub`'s `plugins` option takes it. */
export const mammotionPlugin: PluginSource = { definition: mammotion, dir: fileURLToPath(new URL('../../plugins/mammotion', import.meta.url)) };

/**
 * Starts the simulator and returns the plugin's settings for it: the simulated account's
 * OAuth client and the simulator's address as both of Mammotion's base URLs.
 */
export async function startSimulatorEnv(simulator: MammotionSimulator): Promise<Record<string, string>> {
  const { httpUrl, account } = await simulator.start();
  return {
    PLUGIN_MAMMOTION_CLIENT_ID: account.clientId,
    PLUGIN_MAMMOTION_CLIENT_SECRET: account.clientSecret,
    PLUGIN_MAMMOTION_ID_BASE_URL: httpUrl,
    PLUGIN_MAMMOTION_DOMESTIC_BASE_URL: httpUrl,
  };
}
