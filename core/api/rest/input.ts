/**
 * Input no route can use, refused once at the door with a coded 400 instead of failing deep
 * inside (a 500): text PostgreSQL cannot store, and JSON nested deeper than anything the API
 * takes (its `JSON.stringify` on the way out, e.g. an echoed validation issue, overflows the stack).
 *
 * @module
 */
import type { MiddlewareHandler } from 'hono';
import { hubError } from '../../errors/index.js';
import type { HubEnv } from './router.js';

/** Deeper than any body the API takes (GeoJSON coordinates are 4 levels inside 4). */
const MAX_JSON_DEPTH = 64;

/** PostgreSQL text and jsonb hold neither NUL nor unpaired UTF-16 surrogates. */
const isStorableText = (text: string): boolean => !text.includes('\0') && text.isWellFormed();

/** Where a problem is in a JSON value, and what it is. */
export type JsonProblem = { path: (string | number)[]; message: string; code: 'too_deep' | 'unstorable_text' };

/** A value still to look at, with the way back to the root (paths are built only for a problem). */
type Visit = { value: unknown; depth: number; key: string | number; parent: Visit | undefined };

function pathOf(visit: Visit): (string | number)[] {
  const path: (string | number)[] = [];
  for (let at: Visit | undefined = visit; at?.parent; at = at.parent) path.unshift(at.key);
  return path;
}

/**
 * The first problem in a parsed JSON value: nesting deeper than {@link MAX_JSON_DEPTH}, or text
 * (a string or a key) PostgreSQL cannot store. Walks without recursion (the depth is the
 * sender's) and without copying paths, so large bodies (road imports) cost one pass.
 */
export function jsonProblem(root: unknown): JsonProblem | undefined {
  const stack: Visit[] = [{ value: root, depth: 0, key: '', parent: undefined }];
  while (stack.length > 0) {
    const visit = stack.pop()!;
    const { value, depth } = visit;
    if (typeof value === 'string') {
      if (!isStorableText(value)) return { path: pathOf(visit), message: 'Text with a NUL character or an unpaired surrogate', code: 'unstorable_text' };
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    if (depth >= MAX_JSON_DEPTH) return { path: pathOf(visit).slice(0, 8), message: `Nested deeper than ${MAX_JSON_DEPTH} levels`, code: 'too_deep' };
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) stack.push({ value: value[i], depth: depth + 1, key: i, parent: visit });
      continue;
    }
    for (const [key, item] of Object.entries(value)) {
      if (!isStorableText(key)) return { path: pathOf(visit), message: 'A key with a NUL character or an unpaired surrogate', code: 'unstorable_text' };
      stack.push({ value: item, depth: depth + 1, key, parent: visit });
    }
  }
  return undefined;
}

const refuse = (problem: JsonProblem) => hubError('HUB_ERR_VALIDATION', undefined, { details: [problem] });

/**
 * Refuses a NUL in the URL and, in a body that is JSON (whatever its declared type: some plugin
 * routes read bodies as text), unstorable text and excessive nesting. Runs after the body limit.
 */
export function refuseUnusableInput(): MiddlewareHandler<HubEnv> {
  return async (c, next) => {
    if (/%00/.test(c.req.url)) throw refuse({ path: [], message: 'The URL holds a NUL character', code: 'unstorable_text' });
    if (c.req.raw.body === null) return next();
    const text = await c.req.text();
    // Reading consumed the stream; routers that take the raw request (plugins) read this copy.
    c.req.raw = new Request(c.req.raw, { body: text });
    if (!/^\s*[[{"]/.test(text)) return next();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return next(); // the route's own parser answers this one
    }
    const problem = jsonProblem(parsed);
    if (problem) throw refuse(problem);
    return next();
  };
}
