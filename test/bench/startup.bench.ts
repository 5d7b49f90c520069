/**
 * Start-up of `npm start` on the embedded database: time from spawn to the first healthy
 * `/api/health`, and the process's peak resident memory, for a first run (empty data
 * directory: PGlite initdb, migrations, first admin) and for a later run (existing data).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

async function startOnce(dataDir: string): Promise<{ ms: number; rssAtReady: number; rssAfterLoad: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', 'core/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HUB_DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: '0', MQTT_PORT: '0', NODE_ENV: 'production', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  let url: string | undefined;
  while (!url) {
    url = /^ {2}(http:\/\/\S+)$/m.exec(out)?.[1];
    if (child.exitCode !== null) throw new Error('hub exited during start-up');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  while ((await fetch(`${url}/api/health`).catch(() => undefined))?.status !== 200) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const ms = performance.now() - started;
  const rssAtReady = await peakRssMiB(child.pid!);
  // Some load, to see where memory settles once requests have run.
  await Promise.all(Array.from({ length: 200 }, () => fetch(`${url}/api/health`).then((r) => r.arrayBuffer())));
  const rssAfterLoad = await peakRssMiB(child.pid!);
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  return { ms, rssAtReady, rssAfterLoad };
}

const fmt = (n: number) => n.toFixed(0).padStart(6);
console.log(`runs: ${RUNS}   (peak RSS = VmHWM of the hub process, MiB)`);
console.log('case          start ms   peak RSS at ready   after 200 requests');
for (const kind of ['first run', 'later run'] as const) {
  const results = [];
  for (let i = 0; i < RUNS; i++) {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'hub-bench-'));
    try {
      if (kind === 'later run') await startOnce(dataDir);
      results.push(await startOnce(dataDir));
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(
    `${kind.padEnd(12)} ${fmt(median(results.map((r) => r.ms)))}   ${fmt(median(results.map((r) => r.rssAtReady)))}              ${fmt(median(results.map((r) => r.rssAfterLoad)))}   (medians)`,
  );
}
