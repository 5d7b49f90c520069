/**
 * `npm start`: reads the environment, starts the hub, prints where it is, and stops it
 * cleanly on SIGINT/SIGTERM.
 */
import { loadConfig } from './config/index.js';
import { StartupError } from './errors/index.js';
import { createHub, type Hub } from './hub.js';

/** The whole shutdown, however stuck something is, must end within this. */
const SHUTDOWN_LIMIT_MS = 10_000;

function printWelcome(url: string, editor: string | undefined, hub: Hub): void {
  const broker = hub.mqtt.broker;
  const lines = [
    ``,
    `  Mowthos Hub ${hub.config.databaseUrl ? '(PostgreSQL)' : `(embedded database in ${hub.config.dataDir})`}`,
    `  ${url}`,
    `  MQTT: ${broker.kind === 'embedded' ? `embedded broker on port ${new URL(broker.url).port}` : broker.url}`,
    `  Node-RED: ${editor ?? 'off (HUB_NODERED=false)'}`,
  ];
  const admin = hub.firstRunAdmin;
  if (admin) {
    lines.push(``, `  First run: administrator ${admin.email}`);
    if (admin.generatedPassword) {
      lines.push(`  Password:  ${admin.generatedPassword}`, `  (shown only this once; sign in and change it)`);
    } else {
      lines.push(`  Password:  the one in HUB_ADMIN_PASSWORD`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n\n`);
}

async function main(): Promise<void> {
  const hub = await createHub(loadConfig(process.env));
  const { url, editor } = await hub.listen().catch(async (error: unknown) => {
    await hub.stop();
    throw error;
  });
  printWelcome(url, editor, hub);

  const shutdown = (signal: string) => {
    hub.log.info({ signal }, 'shutdown requested');
    setTimeout(() => {
      hub.log.error('shutdown took too long; exiting');
      process.exit(1);
    }, SHUTDOWN_LIMIT_MS).unref();
    hub.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        hub.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((error: unknown) => {
  if (error instanceof StartupError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(78); // EX_CONFIG: the operator has something to fix
  }
  process.stderr.write(`Hub failed to start: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
