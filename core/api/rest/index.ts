/**
 * The REST layer: the Hono app every `/api` route is mounted on, with what all routes share —
 * request ids and logging, the body limit, authentication by default, and the one error shape.
 *
 * @module
 */
import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { HubError, hubError, type ErrorCode } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';

import { createRouter, type HubEnv, type HubRouter } from './router.js';
import { refuseUnusableInput } from './input.js';
import { cors, securityHeadersMiddleware } from './security.js';

export { healthRoutes, PUBLIC_HEALTH_ROUTES } from './health.js';
export { errors, json, jsonBody, presentUser, UserSchema } from './openapi.js';
export { createRouter, type HubEnv, type HubRouter } from './router.js';
export { jsonProblem, type JsonProblem } from './input.js';
export { cameOverTls, securityHeaders } from './security.js';

// Hono's own exceptions come from its validators and body gates; give each the hub's code.
const HTTP_EXCEPTION_CODES: Partial<Record<number, ErrorCode>> = {
  400: 'HUB_ERR_MALFORMED_JSON',
  401: 'HUB_ERR_UNAUTHENTICATED',
  403: 'HUB_ERR_FORBIDDEN',
  404: 'HUB_ERR_NOT_FOUND',
  413: 'HUB_ERR_PAYLOAD_TOO_LARGE',
  415: 'HUB_ERR_UNSUPPORTED_MEDIA_TYPE',
};

function toHubError(error: unknown): HubError | undefined {
  if (error instanceof HubError) return error;
  if (error instanceof HTTPException) {
    const code = HTTP_EXCEPTION_CODES[error.status];
    if (code) return hubError(code);
  }
  return undefined;
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;

function requestContext(rootLog: Logger): MiddlewareHandler<HubEnv> {
  return async (c, next) => {
    const incoming = c.req.header('x-request-id');
    const reqId = incoming && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    const log = rootLog.child({ reqId });
    c.set('reqId', reqId);
    c.set('log', log);
    const started = performance.now();
    await next();
    c.header('X-Request-Id', reqId);
    log.info(
      { method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(performance.now() - started) },
      'request',
    );
  };
}

export interface AppOptions {
  log: Logger;
  /** Largest request body, in bytes. */
  bodyLimit: number;
  /** A larger limit for some routes (plugin imports), by method and path; for administrators only. */
  bodyLimitFor?: (method: string, path: string) => number | undefined;
  /** Authenticates the caller of a non-public route, or throws HUB_ERR_UNAUTHENTICATED. */
  authenticate: MiddlewareHandler<HubEnv>;
  /** Routes open without authentication, as `METHOD /path`. Everything else needs a caller. */
  publicRoutes: ReadonlySet<string>;
  /** Runs around every request (metrics). */
  observe?: MiddlewareHandler<HubEnv>;
  /** Whether `X-Forwarded-Proto` tells that a request came over TLS (for HSTS). */
  trustProxy: boolean;
  /** Origins whose pages may call the API from a browser (CORS); empty = none. */
  corsOrigins: readonly string[];
}

/** Creates the hub's HTTP app. Routers are mounted on it by the hub. */
export function createApp(options: AppOptions): HubRouter {
  const app = createRouter();
  app.use('*', securityHeadersMiddleware(options.trustProxy));
  app.use('*', requestContext(options.log));
  if (options.observe) app.use('*', options.observe);
  // Before authentication: a preflight carries no credentials.
  app.use('*', cors(options.corsOrigins));
  const limiters = new Map<number, MiddlewareHandler>();
  const limiter = (maxSize: number) => {
    let limit = limiters.get(maxSize);
    if (!limit) {
      limit = bodyLimit({
        maxSize,
        onError: () => {
          throw hubError('HUB_ERR_PAYLOAD_TOO_LARGE', `The request body is larger than ${maxSize} bytes`);
        },
      });
      limiters.set(maxSize, limit);
    }
    return limit;
  };
  // Authentication first: the body limit reads a body sent without a length into memory, and
  // that must not happen for an anonymous caller.
  app.use('/api/*', async (c, next) => {
    if (options.publicRoutes.has(`${c.req.method} ${c.req.path}`)) return next();
    return options.authenticate(c, next);
  });
  app.use('/api/*', (c, next) => {
    // Raised limits are for bulk imports, which administrators do: nobody else may make the hub hold that much.
    const raised = c.var.principal?.isAdmin ? options.bodyLimitFor?.(c.req.method, c.req.path) : undefined;
    return limiter(Math.max(raised ?? 0, options.bodyLimit))(c, next);
  });
  app.use('/api/*', refuseUnusableInput());

  app.notFound((c) => {
    const error = hubError('HUB_ERR_NOT_FOUND', `No route for ${c.req.method} ${c.req.path}`);
    return c.json(error.toBody(), 404);
  });
  app.onError((error, c) => {
    const known = toHubError(error);
    if (known) return c.json(known.toBody(), known.status as ContentfulStatusCode, known.headers);
    (c.var.log ?? options.log).error({ err: error }, 'unhandled error');
    return c.json(hubError('HUB_ERR_INTERNAL').toBody(), 500);
  });
  return app;
}
