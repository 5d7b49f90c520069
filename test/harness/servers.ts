/**
 * Private server processes for tests that must stop and start a real server: a Mosquitto or a
 * PostgreSQL of their own on a free port, never the shared ones other suites use.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { sleep } from './wait.js';

export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface PrivateServer {
  /** Where clients connect. */
  url: string;
  /** The server's working directory (configuration and data). */
  dir: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Stops the server and removes its directory. */
  remove(): Promise<void>;
}

/**
 * A Mosquitto on a free port. `config` lines are added to the listener line; `files` are
 * written into its directory first (refer to them as `${dir}/name` through the callback).
 */
/** A private Mosquitto, which can also be sent new files and told to reload them (SIGHUP). */
export interface PrivateMosquitto extends PrivateServer {
  reload(files: Record<string, string>): Promise<void>;
}

export async function privateMosquitto(config: (dir: string) => string[], files: Record<string, string> = {}): Promise<PrivateMosquitto> {
  const dir = await mkdtemp(path.join(tmpdir(), 'hub-mosquitto-'));
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text, { mode: 0o600 });
  const port = await freePort();
  // `user root`: when the test runs as root, stay root so the broker can read the 0600 files.
  await writeFile(path.join(dir, 'mosquitto.conf'), [`listener ${port} 127.0.0.1`, 'user root', 'persistence false', ...config(dir), ''].join('\n'));
  const url = `mqtt://127.0.0.1:${port}`;
  let broker: ChildProcess | undefined;
  const server: PrivateMosquitto = {
    url,
    dir,
    async reload(newFiles) {
      for (const [name, text] of Object.entries(newFiles)) await writeFile(path.join(dir, name), text, { mode: 0o600 });
      broker?.kill('SIGHUP');
    },
    async start() {
      broker = spawn('mosquitto', ['-c', path.join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
      for (let i = 0; i < 200; i++) {
        // Any answer (even "not authorised") means it is listening.
        const up = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 1000 }).then(
          (c) => c.endAsync().then(() => true),
          (error: Error) => !/ECONNREFUSED/.test(error.message),
        );
        if (up) return;
        await sleep(25);
      }
      throw new Error(`mosquitto did not start on ${url}`);
    },
    async stop() {
      if (!broker || broker.exitCode !== null) return;
      const exited = new Promise((resolve) => broker!.once('exit', resolve));
      broker.kill();
      await exited;
    },
    async remove() {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}

const POSTGRES_BIN = ['/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/17/bin'].find((dir) =>
  existsSync(`${dir}/pg_ctl`),
);

/** Runs a PostgreSQL tool as the postgres user (the server refuses to run as root). */
function pgTool(tool: string, ...args: string[]): void {
  if (!POSTGRES_BIN) throw new Error('PostgreSQL server binaries (pg_ctl, initdb) not found under /usr/lib/postgresql/<15|16|17>/bin');
  const asPostgres = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--'] : [];
  const [command, ...rest] = [...asPostgres, `${POSTGRES_BIN}/${tool}`, ...args];
  execFileSync(command!, rest, { stdio: 'ignore' });
}

/** A fresh PostgreSQL cluster (trust auth, user postgres) on a free port, started. */
export async function privatePostgres(): Promise<PrivateServer> {
  const parent = await mkdtemp(path.join(tmpdir(), 'hub-pg-'));
  await chmod(parent, 0o777); // the postgres user creates the cluster inside
  const dir = path.join(parent, 'data');
  const port = await freePort();
  pgTool('initdb', '-D', dir, '-A', 'trust', '-U', 'postgres');
  let running = false;
  const server: PrivateServer = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dir,
    async start() {
      pgTool('pg_ctl', '-D', dir, '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, '-w', 'start');
      running = true;
    },
    async stop() {
      if (!running) return;
      pgTool('pg_ctl', '-D', dir, '-m', 'fast', '-w', 'stop');
      running = false;
    },
    async remove() {
      await server.stop();
      await rm(parent, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}
