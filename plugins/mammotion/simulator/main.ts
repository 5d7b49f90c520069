/**
 * `npm run simulator`: the Mammotion simulator on its own, for pointing a hub (or anything that
 * speaks the Mammotion cloud) at it. SIMULATOR_MOWERS (2), SIMULATOR_SPEEDUP (1).
 */
import pino from 'pino';
import { MammotionSimulator } from './index.js';

const log = pino({ level: process.env.LOG_LEVEL ?? 'info' });
const simulator = new MammotionSimulator({
  mowers: Number(process.env.SIMULATOR_MOWERS ?? 2),
  speedup: Number(process.env.SIMULATOR_SPEEDUP ?? 1),
  log,
});
const { httpUrl, mqttUrl, account } = await simulator.start();
const mowers = [...simulator.mowers.values()].map((m) => m.deviceName).join(', ');
process.stdout.write(
  [
    `Mammotion simulator: HTTP ${httpUrl}, MQTT ${mqttUrl}`,
    `Mowers: ${mowers}`,
    `Account: ${account.email} / ${account.password}`,
    'Point a hub at it with:',
    `  PLUGIN_MAMMOTION_CLIENT_ID=${account.clientId} PLUGIN_MAMMOTION_CLIENT_SECRET=${account.clientSecret} \\`,
    `  PLUGIN_MAMMOTION_ID_BASE_URL=${httpUrl} PLUGIN_MAMMOTION_DOMESTIC_BASE_URL=${httpUrl} npm start`,
    'and link the account above to a home: POST /api/plugins/mammotion/accounts {"home_id", "email", "password"}',
    '',
  ].join('\n'),
);
const stop = () => void simulator.stop().finally(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
