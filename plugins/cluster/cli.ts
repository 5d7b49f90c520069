/**
 * `npm run cluster -- <command> <file> [options]`: loads road extracts and address lists into a
 * running hub's cluster planner, over its REST API.
 *
 *   import-roads <file>      .geojson/.json, .osm/.xml or .osm.pbf → POST /api/plugins/cluster/roads
 *   import-addresses <file>  .csv, or an OSM file's addressed buildings and address points
 *                            → POST /api/plugins/cluster/addresses
 *
 * Counts go to stderr; the hub's answer (or, with --dry-run, the body that would be sent) goes
 * to stdout as JSON, so the output can be piped. Exit codes: 0 done, 1 the hub refused or could
 * not be reached, 2 bad usage or an unreadable file.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { addressesFromFile, OsmFormatError, roadImport } from './osm/index.js';

const USAGE = `Usage: npm run cluster -- <command> <file> [options]

Commands:
  import-roads <file>       a road extract: .geojson/.json, .osm/.xml or .osm.pbf
  import-addresses <file>   addresses: a .csv (address,city,state|postcode,latitude,longitude)
                            or an OSM file (its buildings and points with addr:housenumber + addr:street)

Options:
  --name <name>     the road extract's name (import-roads; default: the file's base name)
  --url <url>       the hub (default: $HUB_URL or http://localhost:8080)
  --token <token>   an API token, mhub_… (default: $HUB_TOKEN)
  --dry-run         print the JSON body instead of sending it
  -h, --help        this text

Map data © OpenStreetMap contributors, ODbL 1.0 (https://www.openstreetmap.org/copyright).
`;

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      url: { type: 'string' },
      token: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const [command, file, ...extra] = positionals;
  if (!command || !file || extra.length > 0) throw new UsageError('expected a command and one file');

  const data = await readFile(file).catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read ${file}: ${error.code ?? error.message}`);
  });
  let path: string;
  let body: unknown;
  if (command === 'import-roads') {
    const { payload, extract } = roadImport(data, file, values.name);
    const { nodes, ways, missingNodes } = extract.stats;
    report(`${file}: ${payload.source}, ${nodes} nodes, ${ways} ways → ${payload.roads.features.length} road lines${missingNodes ? ` (${missingNodes} node references missing from the file)` : ''}; bbox ${JSON.stringify(payload.bbox)}`);
    path = '/api/plugins/cluster/roads';
    body = payload;
  } else if (command === 'import-addresses') {
    if (values.name !== undefined) throw new UsageError('--name is for import-roads');
    const payload = addressesFromFile(data, file);
    const footprints = payload.addresses.filter((address) => address.footprint).length;
    const unplaced = payload.addresses.filter((address) => address.latitude === null).length;
    report(`${file}: ${payload.addresses.length} addresses (${footprints} with a building footprint${unplaced ? `, ${unplaced} without coordinates` : ''})`);
    path = '/api/plugins/cluster/addresses';
    body = payload;
  } else {
    throw new UsageError(`unknown command ${command}`);
  }

  if (values['dry-run']) {
    process.stdout.write(`${JSON.stringify(body)}\n`);
    return 0;
  }
  const token = values.token ?? process.env.HUB_TOKEN;
  if (!token) throw new UsageError('no API token: pass --token or set HUB_TOKEN');
  const url = new URL(path, values.url ?? process.env.HUB_URL ?? 'http://localhost:8080');
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
  } catch (error) {
    report(`cannot reach the hub at ${url.origin}: ${((error as Error).cause as Error | undefined)?.message ?? (error as Error).message}`);
    return 1;
  }
  const text = await response.text();
  process.stdout.write(`${text}${text.endsWith('\n') ? '' : '\n'}`);
  if (!response.ok) {
    report(`the hub answered ${response.status}`);
    return 1;
  }
  return 0;
}

function report(line: string): void {
  process.stderr.write(`${line}\n`);
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  // Bad arguments and unreadable files are the user's to fix: a message, not a stack trace.
  if (error instanceof OsmFormatError) {
    report(error.message);
    process.exitCode = 2;
  } else if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    report(`${(error as Error).message}\n\n${USAGE}`);
    process.exitCode = 2;
  } else {
    throw error;
  }
}
