/** Pieces every route definition uses to describe itself in the OpenAPI document. */
import { z } from '@hono/zod-openapi';
import type { PublicUser } from '../../auth/principal.js';
import { ERRORS, type ErrorCode } from '../../errors/index.js';

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(ERRORS) as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
      details: z.unknown().optional(),
    }),
  })
  .openapi('Error');

/** A JSON response or request body. */
export function json<T extends z.ZodType>(schema: T, description: string) {
  return { content: { 'application/json': { schema } }, description };
}

/** A required JSON request body. */
export function jsonBody<T extends z.ZodType>(schema: T) {
  return { content: { 'application/json': { schema } }, required: true } as const;
}

const ERROR_DESCRIPTIONS = {
  400: 'Invalid input (HUB_ERR_VALIDATION with the issues in details, or HUB_ERR_MALFORMED_JSON)',
  401: 'Not authenticated',
  403: 'Not allowed',
  404: 'Not found, or not visible to the caller',
  409: 'Conflicts with the current state',
  413: 'Body too large',
  415: 'Body is not JSON',
  422: 'A service behind the hub refused the input (e.g. cloud credentials)',
  429: 'Rate limited; see Retry-After',
  502: 'A cloud service behind the hub failed',
  504: 'A device did not answer in time',
} as const;

/** The error responses a route can give, in the one error shape. */
export function errors(...statuses: (keyof typeof ERROR_DESCRIPTIONS)[]) {
  return Object.fromEntries(statuses.map((s) => [s, json(ErrorSchema, ERROR_DESCRIPTIONS[s])])) as Record<
    number,
    ReturnType<typeof json<typeof ErrorSchema>>
  >;
}

export const UserSchema = z
  .object({
    id: z.uuid(),
    email: z.string(),
    name: z.string(),
    is_admin: z.boolean(),
    can_automate: z.boolean().describe('May open the Node-RED editor (administrators always may)'),
    disabled: z.boolean(),
    created_at: z.iso.datetime(),
  })
  .openapi('User');

/** A user as the API shows it. */
export function presentUser(user: PublicUser): z.infer<typeof UserSchema> {
  return { ...user, created_at: user.created_at.toISOString() };
}
