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
export const MAX_JSON_DEPTH = 64;

/** PostgreSQL text and jsonb hold neither NUL nor unpaired UTF-16 surrogates. */
export const isStorableText = (text: string): boolean => !text.includes('\0') && text.isWellFormed();

type Problem = { path: (string | number)[]; message: string; code: string };

/** The first problem in a parsed JSON value, walked without recursion (the depth is the attacker's). */
function jsonProblem(root: unknown): Problem | undefined {
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value: root, path: [] }];
  while (stack.length > 0) {
    const { value, path } = stack.pop()!;
    if (path.length > MAX_JSON_DEPTH) return { path: path.slice(0, 8), message: `Nested deeper than ${MAX_JSON_DEPTH} levels`, code: 'too_deep' };
    if (typeof value === 'string') {
      if (!isStorableText(value)) return { path, message: 'Text with a NUL character or an unpaired surrogate', code: 'unstorable_text' };
    } else if (Array.isArray(value)) {
      value.forEach((item, i) => stack.push({ value: item, path: [...path, i] }));
    } else if (value !== null && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) {
        if (!isStorableText(key)) return { path, message: 'A key with a NUL character or an unpaired surrogate', code: 'unstorable_text' };
        stack.push({ value: item, path: [...path, key] });
      }
    }
  }
  return undefined;
}

const refuse = (problem: Problem) => hubError('HUB_ERR_VALIDATION', undefined, { details: [problem] });

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
