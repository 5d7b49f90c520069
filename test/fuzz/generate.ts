/**
 * Request generation for the REST fuzz suite: a seeded PRNG, values from a route's JSON Schema
 * (mostly valid, so requests get past validation to the handlers), and the hostile mutations
 * issue 12 lists. Deterministic for a seed, so a failure replays with `FUZZ_SEED`.
 */

/** mulberry32: small, fast, good enough to spread cases; the same seed gives the same run. */
export class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(below: number): number {
    return Math.floor(this.next() * below);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

/** The subset of JSON Schema (OpenAPI 3.1) that zod-openapi emits for the hub's routes. */
export interface Schema {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  prefixItems?: Schema[];
  enum?: unknown[];
  const?: unknown;
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  default?: unknown;
}

/** Ids the fuzzer aims at: the victim home's real ids, by kind, and strangers'. */
export interface Targets {
  /** Every id of the victim's home (home, users, device, rule, token, jobs, entities …). */
  victimIds: string[];
  victimEntityIds: string[];
  victimHomeId: string;
}

/** Strings that break parsers, queries, paths and pages. */
export const HOSTILE_STRINGS = [
  '../../../../etc/passwd',
  '..%2F..%2F..%2Fetc%2Fpasswd',
  '....//....//etc/passwd',
  "' OR '1'='1' --",
  "'; drop table users; --",
  '" OR ""="',
  '%_\\',
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  '{{7*7}}${7*7}',
  'nul\u0000byte',
  'lone \ud800 surrogate',
  '\u202eright-to-left',
  '',
  ' ',
  'sensor.',
  'a.b.c',
  'lawn_mower.',
  'x'.repeat(300),
];

const HOSTILE_NUMBERS = [-1, -0, 0, -1e308, 1e308, 2 ** 53 + 1, 0.5, -2147483649, 2147483648];

/** Raw JSON fragments (not expressible as JS values): NaN, infinities, deep nesting. */
const RAW_FRAGMENTS = ['NaN', 'Infinity', '-Infinity', '1e400', '-1e400', '['.repeat(20_000) + ']'.repeat(20_000), '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000)];

/** The mutations a request may get; `none` sends the generated (probably valid) value. */
export const MUTATIONS = [
  'none',
  'wrong_type',
  'missing_field',
  'huge_string',
  'huge_array',
  'deep_json',
  'unknown_enum',
  'nan_or_infinite',
  'negative_number',
  'hostile_string',
  'extra_field',
  'invalid_utf8',
  'not_json',
] as const;
export type Mutation = (typeof MUTATIONS)[number];

/** Marks a spot in a JSON value whose text is replaced by a raw fragment after stringifying. */
const RAW = '\u0001RAW\u0001';

export interface Components {
  schemas?: Record<string, Schema>;
}

function resolve(schema: Schema | undefined, components: Components): Schema {
  let s = schema ?? {};
  for (let i = 0; s.$ref && i < 10; i++) s = components.schemas?.[s.$ref.split('/').at(-1)!] ?? {};
  if (s.allOf) return s.allOf.reduce<Schema>((merged, part) => ({ ...merged, ...resolve(part, components) }), {});
  return s;
}

function typeOf(schema: Schema): string | undefined {
  const types = [schema.type].flat().filter((t): t is string => typeof t === 'string' && t !== 'null');
  return types[0];
}

function randomUuid(rng: Rng): string {
  const hex = () => rng.int(16).toString(16);
  const part = (n: number) => Array.from({ length: n }, hex).join('');
  return `${part(8)}-${part(4)}-4${part(3)}-a${part(3)}-${part(12)}`;
}

/** An id-like value: mostly the victim's real ids (the attack), else strangers'. */
export function idValue(rng: Rng, targets: Targets, key: string): string {
  if (key.includes('entity')) return rng.chance(0.8) ? rng.pick(targets.victimEntityIds) : `sensor.fuzz_${rng.int(1000)}`;
  if (key === 'home_id' && rng.chance(0.6)) return targets.victimHomeId;
  return rng.chance(0.75) ? rng.pick(targets.victimIds) : randomUuid(rng);
}

function isIdKey(key: string): boolean {
  return key === 'id' || key.endsWith('_id') || key === 'entity_id' || key === 'home';
}

/** A value that (probably) satisfies the schema, with the victim's ids where ids go. */
export function sample(schemaIn: Schema | undefined, rng: Rng, targets: Targets, components: Components, key = '', depth = 0): unknown {
  const schema = resolve(schemaIn, components);
  const choices = schema.anyOf ?? schema.oneOf;
  if (choices?.length) return sample(rng.pick(choices), rng, targets, components, key, depth);
  if (schema.const !== undefined) return schema.const;
  if (schema.enum?.length) return rng.pick(schema.enum);
  if (isIdKey(key) && (typeOf(schema) === 'string' || schema.format === 'uuid')) return idValue(rng, targets, key);
  switch (typeOf(schema)) {
    case 'object': {
      const out: Record<string, unknown> = {};
      if (depth > 6) return out;
      const required = new Set(schema.required ?? []);
      for (const [name, prop] of Object.entries(schema.properties ?? {})) {
        if (required.has(name) || rng.chance(0.5)) out[name] = sample(prop, rng, targets, components, name, depth + 1);
      }
      return out;
    }
    case 'array': {
      if (schema.prefixItems) return schema.prefixItems.map((item) => sample(item, rng, targets, components, key, depth + 1));
      const n = Math.max(schema.minItems ?? 0, Math.min(schema.maxItems ?? 3, rng.int(4)));
      return Array.from({ length: n }, () => sample(schema.items, rng, targets, components, key, depth + 1));
    }
    case 'integer':
    case 'number': {
      const min = schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + 1 : 0);
      const max = schema.maximum ?? (schema.exclusiveMaximum !== undefined ? schema.exclusiveMaximum - 1 : min + 100);
      const n = min + rng.next() * Math.max(0, max - min);
      return typeOf(schema) === 'integer' ? Math.round(n) : n;
    }
    case 'boolean':
      return rng.chance(0.5);
    case 'string':
      return sampleString(schema, rng, key);
    default:
      return rng.chance(0.5) ? 'x' : 1;
  }
}

function sampleString(schema: Schema, rng: Rng, key: string): string {
  switch (schema.format) {
    case 'uuid':
      return randomUuid(rng);
    case 'email':
      return `fuzz${rng.int(1e6)}@example.com`;
    case 'date-time':
      return new Date(Date.UTC(2024, rng.int(12), 1 + rng.int(28))).toISOString();
    case 'uri':
    case 'url':
      return 'http://127.0.0.1:9/x';
  }
  if (key.includes('email')) return `fuzz${rng.int(1e6)}@example.com`;
  if (key.includes('timezone') || key.includes('time_zone')) return 'Europe/Berlin';
  const length = Math.max(schema.minLength ?? 1, Math.min(schema.maxLength ?? 12, 1 + rng.int(12)));
  return 'fuzz' + 'abcdefghij'.repeat(2).slice(0, Math.max(0, length - 4));
}

type Path = (string | number)[];

/** Every place inside a value (containers included), for a mutation to land on. */
function places(value: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (Array.isArray(value)) value.forEach((v, i) => places(v, [...at, i], out));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) places(v, [...at, k], out);
  return out;
}

function setAt(root: unknown, path: Path, value: unknown): unknown {
  if (path.length === 0) return value;
  let node = root as Record<string | number, unknown>;
  for (const step of path.slice(0, -1)) node = node[step] as Record<string | number, unknown>;
  node[path.at(-1)!] = value;
  return root;
}

function removeAt(root: unknown, path: Path): unknown {
  if (path.length === 0) return undefined;
  let node = root as Record<string | number, unknown>;
  for (const step of path.slice(0, -1)) node = node[step] as Record<string | number, unknown>;
  if (Array.isArray(node)) node.splice(Number(path.at(-1)), 1);
  else delete node[path.at(-1)!];
  return root;
}

export interface Body {
  mutation: Mutation;
  /** The bytes sent; undefined = no body. */
  bytes: Uint8Array<ArrayBuffer> | undefined;
  contentType: string;
}

const encoder = new TextEncoder();

/** A request body: a sample of the schema, perhaps mutated. */
export function body(schema: Schema | undefined, rng: Rng, targets: Targets, components: Components, mutation: Mutation): Body {
  let value = schema ? sample(schema, rng, targets, components) : rng.chance(0.5) ? {} : undefined;
  const spots = places(value);
  const spot = rng.pick(spots);
  let raw: string | undefined;
  let contentType = 'application/json';
  switch (mutation) {
    case 'none':
      break;
    case 'wrong_type':
      value = setAt(value, spot, rng.pick([{}, [], true, null, 0, 'string', [[]], { '': '' }]));
      break;
    case 'missing_field':
      value = removeAt(value, rng.pick(spots.filter((p) => p.length > 0).concat([[]])));
      break;
    case 'huge_string':
      value = setAt(value, spot, rng.pick(['x'.repeat(200_000), 'é'.repeat(100_000), 'x'.repeat(1_200_000)]));
      break;
    case 'huge_array':
      value = setAt(value, spot, Array.from({ length: rng.pick([1_000, 30_000]) }, (_, i) => (rng.chance(0.5) ? i : `x${i}`)));
      break;
    case 'deep_json':
      raw = RAW_FRAGMENTS[rng.pick([5, 6])];
      value = setAt(value, spot, RAW);
      break;
    case 'unknown_enum':
      value = setAt(value, spot, rng.pick(['UNKNOWN', 'admin', 'root', 'owner', '__proto__', 'constructor']));
      break;
    case 'nan_or_infinite':
      raw = rng.pick(RAW_FRAGMENTS.slice(0, 5));
      value = setAt(value, spot, RAW);
      break;
    case 'negative_number':
      value = setAt(value, spot, rng.pick(HOSTILE_NUMBERS));
      break;
    case 'hostile_string':
      value = setAt(value, spot, rng.pick(HOSTILE_STRINGS));
      break;
    case 'extra_field':
      if (value && typeof value === 'object' && !Array.isArray(value)) {
        Object.assign(value, rng.pick([{ is_admin: true }, { role: 'admin' }, { home_id: targets.victimHomeId }, { owner: 'api' }]));
      }
      break;
    case 'invalid_utf8':
      return { mutation, bytes: invalidUtf8(JSON.stringify(setAt(value ?? {}, spot, RAW) ?? null)), contentType };
    case 'not_json':
      contentType = rng.pick(['text/plain', 'application/x-www-form-urlencoded', 'application/json', 'multipart/form-data; boundary=x']);
      return { mutation, bytes: encoder.encode(rng.pick(['name=x&home_id=1', '{"a":', '\u0000\u0001', '<x/>', ''])), contentType };
  }
  if (value === undefined) return { mutation, bytes: undefined, contentType };
  let text = JSON.stringify(value);
  if (raw !== undefined) text = text.replace(JSON.stringify(RAW), raw);
  return { mutation, bytes: encoder.encode(text), contentType };
}

/** JSON text with the raw-value marker replaced by a string holding bytes that are not UTF-8. */
function invalidUtf8(text: string): Uint8Array<ArrayBuffer> {
  const [before, after = ''] = text.split(JSON.stringify(RAW));
  return new Uint8Array([...encoder.encode(before + '"bad'), 0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82, ...encoder.encode('x"' + after)]);
}

/** A path parameter: the victim's ids, unknown ids, traversal, huge, metacharacters. */
export function pathParam(rng: Rng, targets: Targets, name: string): string {
  const roll = rng.int(10);
  if (roll < 5) return encodeURIComponent(idValue(rng, targets, name));
  return rng.pick([
    encodeURIComponent(randomUuid(rng)),
    '..%2F..%2Fetc%2Fpasswd',
    '..',
    '%2e%2e',
    'a'.repeat(5_000),
    "'%20OR%201=1--",
    '%3Cscript%3Ealert(1)%3C%2Fscript%3E',
    '%00',
    '%FF%FE',
    '%E0%A4%A',
    '-1',
    'NaN',
    '1e400',
    encodeURIComponent('sensor.x; drop table states'),
  ]);
}

/** A query string for the route's declared query parameters, some hostile. */
export function query(params: { name: string; schema?: Schema }[], rng: Rng, targets: Targets, components: Components, hostile: boolean): string {
  const parts: string[] = [];
  for (const p of params) {
    if (!rng.chance(0.7)) continue;
    let value: unknown = sample(p.schema, rng, targets, components, p.name);
    if (hostile && rng.chance(0.5)) value = rng.pick([...HOSTILE_STRINGS, ...HOSTILE_NUMBERS, 'NaN', 'true', '[]', '%FF', 'x'.repeat(20_000)]);
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    parts.push(`${encodeURIComponent(p.name)}=${text === '%FF' ? text : encodeURIComponent(text.toWellFormed())}`);
  }
  if (hostile && rng.chance(0.2)) parts.push(`${rng.pick(['home_id', 'user_id', 'role', '__proto__'])}=${encodeURIComponent(targets.victimHomeId)}`);
  return parts.length ? `?${parts.join('&')}` : '';
}
