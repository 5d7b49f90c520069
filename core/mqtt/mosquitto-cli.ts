/**
 * `npm run mosquitto-files -- <dir>`: writes `passwd` and `acl` for Mosquitto from the hub's
 * database (`DATABASE_URL`), with the hub's own login taken from `MQTT_URL`
 * (`mqtt://<user>:<password>@host`). Point Mosquitto's `password_file` and `acl_file` at them
 * and send it SIGHUP after each run.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { loadConfig } from '../config/index.js';
import { migrate, openDatabase, CORE_MIGRATIONS_DIR } from '../db/index.js';
import { createLogger } from '../log/index.js';
import { mosquittoFiles } from './mosquitto-files.js';

const dir = process.argv[2];
const config = loadConfig(process.env);
const hubUrl = config.mqttUrl ? new URL(config.mqttUrl) : undefined;
if (!dir || !hubUrl?.username || !hubUrl.password) {
  process.stderr.write('Usage: MQTT_URL=mqtt://<hub user>:<password>@<broker> [DATABASE_URL=…] npm run mosquitto-files -- <directory>\n');
  process.exit(64);
}
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
  await writeFile(path.join(dir, 'passwd'), files.passwordFile, { mode: 0o600 });
  await chmod(path.join(dir, 'passwd'), 0o600);
  await writeFile(path.join(dir, 'acl'), files.aclFile);
  process.stdout.write(`Wrote ${path.join(dir, 'passwd')} and ${path.join(dir, 'acl')}\n`);
} finally {
  await database.close();
}
