/**
 * `npm run mosquitto-files -- <dir>`: writes `passwd`, `hub-passwd`, `acl` and
 * `mosquitto.conf` for Mosquitto from the hub's database (`DATABASE_URL`), with the hub's own
 * login taken from `MQTT_URL` (`mqtt://<user>:<password>@host:<hub port>`) and the devices'
 * port from `HUB_MQTT_DEVICE_URL`. Run Mosquitto with that configuration (or copy its lines)
 * and send it SIGHUP after each run: it then also disconnects clients whose password changed
 * or whose device is gone.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { loadConfig } from '../config/index.js';
import { migrate, openDatabase, CORE_MIGRATIONS_DIR } from '../db/index.js';
import { createLogger } from '../log/index.js';
import { mosquittoConfig, mosquittoFiles } from './mosquitto-files.js';

const dir = process.argv[2];
const config = loadConfig(process.env);
const hubUrl = config.mqttUrl ? new URL(config.mqttUrl) : undefined;
if (!dir || !hubUrl?.username || !hubUrl.password) {
  process.stderr.write('Usage: MQTT_URL=mqtt://<hub user>:<password>@<broker>:<hub port> [HUB_MQTT_DEVICE_URL=mqtt://<host>:<device port>] [DATABASE_URL=…] npm run mosquitto-files -- <directory>\n');
  process.exit(64);
}
const ports = { hub: Number(hubUrl.port) || 1883, devices: Number(config.mqttDeviceUrl && new URL(config.mqttDeviceUrl).port) || 1883 };
const database = await openDatabase(
  config.databaseUrl ? { kind: 'postgres', url: config.databaseUrl } : { kind: 'pglite', dataDir: path.join(config.dataDir, 'pglite') },
);
try {
  await migrate(database.db, [{ scope: 'core', dir: CORE_MIGRATIONS_DIR }], createLogger({ ...config, logLevel: 'warn' }));
  const files = await mosquittoFiles(database.db, config.mqttRoot, {
    username: decodeURIComponent(hubUrl.username),
    password: decodeURIComponent(hubUrl.password),
  });
  await mkdir(dir, { recursive: true });
  const secret = async (name: string, text: string) => {
    await writeFile(path.join(dir, name), text, { mode: 0o600 });
    await chmod(path.join(dir, name), 0o600);
  };
  await secret('passwd', files.passwordFile);
  await secret('hub-passwd', files.hubPasswordFile);
  await writeFile(path.join(dir, 'acl'), files.aclFile);
  process.stdout.write(`Wrote passwd, hub-passwd and acl in ${dir}\n`);
  if (ports.hub === ports.devices) {
    process.stdout.write(
      `No mosquitto.conf: devices and the hub both use port ${ports.hub}. Give the hub a port of its own (MQTT_URL) and devices theirs (HUB_MQTT_DEVICE_URL) to bind client ids to devices.\n`,
    );
  } else {
    await writeFile(path.join(dir, 'mosquitto.conf'), mosquittoConfig(path.resolve(dir), ports, config.mqttMaxPacketBytes));
    process.stdout.write(`Wrote mosquitto.conf (devices on ${ports.devices}, the hub on ${ports.hub})\n`);
  }
} finally {
  await database.close();
}
