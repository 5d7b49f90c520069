/** A hub as a user runs it (`npm start`): a real process, a real port, real signals. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

export interface Started {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

export function startHub(env: Record<string, string>): Started {
  const child = spawn(process.execPath, ['--import', 'tsx', 'core/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: '0', MQTT_PORT: '0', NODE_ENV: 'production', ...env },
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

export async function waitForUrl(hub: Started): Promise<string> {
  for (let i = 0; i < 600; i++) {
    const match = /^ {2}(http:\/\/\S+)$/m.exec(hub.stdout());
    if (match) return match[1]!;
    if (hub.child.exitCode !== null) throw new Error(`hub exited: ${hub.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('hub did not print its URL within 60 s');
}

