/**
 * `npm run bench`: runs every `*.bench.ts` in this folder, one after another, each printing
 * its own figures. `npm run bench -- startup` runs only the benchmarks whose name matches.
 */
import { readdir } from 'node:fs/promises';

const filter = process.argv[2];
const files = (await readdir(import.meta.dirname)).filter((f) => f.endsWith('.bench.ts') && (!filter || f.includes(filter))).sort();
for (const file of files) {
  process.stdout.write(`\n## ${file}\n`);
  await import(`./${file}`);
}
