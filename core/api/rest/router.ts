/** The router type every concern's routes are built on. */
import { OpenAPIHono, type Hook } from '@hono/zod-openapi';
import type { z } from 'zod';
import type { Principal } from '../../auth/principal.js';
import { hubError } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';

/** What every handler finds on `c.var`. */
export interface HubEnv {
  Variables: {
    /** The authenticated caller; the auth middleware sets it on every non-public route. */
    principal: Principal;
    /** The request's logger, carrying `reqId`. */
    log: Logger;
    reqId: string;
  };
}

export type HubRouter = OpenAPIHono<HubEnv>;

/** Turns a failed zod validation of any request part into HUB_ERR_VALIDATION with the issues. */
const validationHook: Hook<unknown, HubEnv, string, unknown> = (result) => {
  if (!result.success) {
    const issues = (result.error as z.ZodError).issues.map(({ path, message, code }) => ({ path, message, code }));
    throw hubError('HUB_ERR_VALIDATION', undefined, { details: issues });
  }
};

/** Creates a router for one concern's routes; mount it on the app with `app.route('/api', router)`. */
export function createRouter(): HubRouter {
  return new OpenAPIHono<HubEnv>({ defaultHook: validationHook });
}

