/** Request and response shapes of `/api/homes`. */
import { z } from '@hono/zod-openapi';
import { Email } from '../auth/index.js';
import { ROLES, type Home, type Role } from '../db/index.js';

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** An IANA time zone name, such as `Europe/Berlin`. */
export const TimeZone = z.string().max(64).refine(isTimeZone, 'must be an IANA time zone such as Europe/Berlin');

const Position = z
  .array(z.number())
  .min(2)
  .max(3)
  .refine(([lon, lat]) => Math.abs(lon!) <= 180 && Math.abs(lat!) <= 90, 'must be [longitude, latitude] in degrees');
const samePosition = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
const LinearRing = z
  .array(Position)
  .min(4, 'a ring needs at least 4 positions')
  .refine((ring) => samePosition(ring[0]!, ring.at(-1)!), 'a ring must end where it starts');

/** A yard's boundary: a GeoJSON Polygon or MultiPolygon geometry (WGS84). */
export const Parcel = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('Polygon'), coordinates: z.array(LinearRing).min(1) }),
    z.object({ type: z.literal('MultiPolygon'), coordinates: z.array(z.array(LinearRing).min(1)).min(1) }),
  ])
  .openapi('Parcel', { description: 'GeoJSON Polygon or MultiPolygon geometry, WGS84 [longitude, latitude]' });

const homeFields = {
  name: z.string().trim().min(1).max(200),
  address: z.string().trim().max(500).nullable(),
  latitude: z.number().min(-90).max(90).nullable(),
  longitude: z.number().min(-180).max(180).nullable(),
  timezone: TimeZone,
  parcel: Parcel.nullable(),
};

const bothOrNeitherCoordinate = (h: { latitude?: number | null; longitude?: number | null }) =>
  (h.latitude == null) === (h.longitude == null);
const coordinatesMessage = { message: 'latitude and longitude go together', path: ['latitude'] };

export const HomeInput = z
  .object({
    ...homeFields,
    address: homeFields.address.optional(),
    latitude: homeFields.latitude.optional(),
    longitude: homeFields.longitude.optional(),
    timezone: homeFields.timezone.default('UTC'),
    parcel: homeFields.parcel.optional(),
  })
  .strict()
  .refine(bothOrNeitherCoordinate, coordinatesMessage)
  .openapi('NewHome');

export const HomePatch = z
  .object(homeFields)
  .partial()
  .strict()
  .refine(
    (h) => h.latitude === undefined && h.longitude === undefined ? true : bothOrNeitherCoordinate(h),
    coordinatesMessage,
  )
  .openapi('HomePatch');

export const HomeSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    address: z.string().nullable(),
    latitude: z.number().nullable(),
    longitude: z.number().nullable(),
    timezone: z.string(),
    parcel: Parcel.nullable(),
    role: z.enum(ROLES).describe("The caller's role in this home"),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
  })
  .openapi('Home');

export const MemberInput = z
  .object({ email: Email, role: z.enum(ROLES) })
  .strict()
  .openapi('NewMember');

export const MemberSchema = z
  .object({
    user_id: z.uuid(),
    email: z.string(),
    name: z.string(),
    role: z.enum(ROLES),
    created_at: z.iso.datetime(),
  })
  .openapi('Member');

export const InvitationSchema = z
  .object({
    id: z.uuid(),
    home_id: z.uuid(),
    email: z.string(),
    role: z.enum(ROLES),
    invited_by: z.uuid(),
    created_at: z.iso.datetime(),
    expires_at: z.iso.datetime(),
  })
  .openapi('Invitation', { description: 'An invitation to join a home, as its owners see it' });

export const ReceivedInvitationSchema = z
  .object({
    id: z.uuid(),
    home: z.object({ id: z.uuid(), name: z.string() }),
    role: z.enum(ROLES),
    invited_by: z.object({ name: z.string(), email: z.string() }),
    created_at: z.iso.datetime(),
    expires_at: z.iso.datetime(),
  })
  .openapi('ReceivedInvitation', { description: 'An invitation to the caller' });

export const HomeIdParam = z.object({ id: z.uuid() });
export const InvitationParam = z.object({ id: z.uuid() });
export const HomeInvitationParam = z.object({ id: z.uuid(), invitation_id: z.uuid() });
export const MemberParam = z.object({ id: z.uuid(), user_id: z.uuid() });

export function presentHome(home: Home, role: Role): z.infer<typeof HomeSchema> {
  return {
    id: home.id,
    name: home.name,
    address: home.address,
    latitude: home.latitude,
    longitude: home.longitude,
    timezone: home.timezone,
    parcel: (home.parcel ?? null) as z.infer<typeof Parcel> | null,
    role,
    created_at: home.created_at.toISOString(),
    updated_at: home.updated_at.toISOString(),
  };
}
