/**
 * The Mammotion mower driver: link a Mammotion account to a home, and its mowers become
 * `lawn_mower.<name>` entities with actions, live state, mowing sessions and polling within the
 * cloud's budgets. `PLUGIN_MAMMOTION_SIMULATOR=true` runs a local simulator with two mowers.
 *
 * @module
 */
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { hubError, HubError } from '../../core/errors/index.js';
import { configFlag, definePlugin, type PluginContext } from '../../core/plugin.js';
import { AccountLink, type SignIn } from './accounts.js';
import { accountRoutes } from './routes.js';
import { CloudError, DEFAULT_DOMESTIC_BASE_URL, DEFAULT_ID_BASE_URL, LoginRejectedError } from './cloud/index.js';
import { CutterMode } from './protocol/index.js';
import type { MowerDriver } from './driver.js';
import { SessionTracker } from './sessions.js';
import { MammotionSimulator } from './simulator/index.js';
import type { MammotionTables } from './tables.js';

const config = z.object({
  clientId: z.string().min(1).optional().describe('OAuth2 client id for the Mammotion id server (you supply it)'),
  clientSecret: z.string().min(1).optional(),
  idBaseUrl: z.url().default(DEFAULT_ID_BASE_URL),
  domesticBaseUrl: z.url().default(DEFAULT_DOMESTIC_BASE_URL),
  simulator: configFlag.default(false).describe('Run the local simulator with two mowers and link it to the first home'),
  simulatorSpeedup: z.coerce.number().min(1).max(600).default(1),
  pollSeconds: z.coerce.number().int().min(5).max(3600).default(30),
  replyTimeoutMs: z.coerce.number().int().min(100).max(60_000).default(3000),
  confirmSeconds: z.coerce.number().int().min(5).max(3600).default(120),
  linkTimeoutSeconds: z.coerce.number().int().min(5).max(300).default(30),
});

type MammotionContext = PluginContext<z.output<typeof config>>;

export default definePlugin({
  id: 'mammotion',
  version: '0.1.0',
  hub: '^0.1.0',
  description: 'Mammotion robotic mowers (Luba, Yuka) through the Mammotion cloud',
  config,
  // Billing and cluster runs count its m²: nobody else may fire one.
  reservedEvents: ['mowing_session_ended'],

  async setup(ctx) {
    const db = ctx.db.withTables<MammotionTables>();
    const sessions = new SessionTracker(ctx.db, (ended) => void ctx.bus.fire('mowing_session_ended', ended, { homeId: ended.home_id }), ctx.log);
    const links = new Map<string, AccountLink>();
    const mowers = new Map<string, MowerDriver>();
    let cloud = { clientId: ctx.config.clientId ?? '', clientSecret: ctx.config.clientSecret ?? '', idBaseUrl: ctx.config.idBaseUrl, domesticBaseUrl: ctx.config.domesticBaseUrl };
    let simulatorLogin: { email: string; password: string } | undefined;

    if (ctx.config.simulator) {
      const simulator = new MammotionSimulator({ mowers: 2, speedup: ctx.config.simulatorSpeedup, log: ctx.log.child({ simulator: true }) });
      const { httpUrl, account } = await simulator.start();
      ctx.onStop(() => simulator.stop());
      cloud = { clientId: account.clientId, clientSecret: account.clientSecret, idBaseUrl: httpUrl, domesticBaseUrl: httpUrl };
      simulatorLogin = { email: account.email, password: account.password };
      ctx.log.info({ url: httpUrl }, 'Mammotion simulator running with two mowers');
    }

    const openLink = async (row: { id: string; home_id: string; email: string }, signIn: SignIn) => {
      const link = new AccountLink(row, {
        ctx,
        db,
        cloud,
        sessions,
        timing: { replyMs: ctx.config.replyTimeoutMs, confirmMs: ctx.config.confirmSeconds * 1000 },
        onMower: (entityId, driver) => mowers.set(entityId, driver),
        onMowerGone: (entityId) => mowers.delete(entityId),
        drivenElsewhere: (iotId, accountId) => [...links.values()].some((other) => other.row.id !== accountId && other.drivers.has(iotId)),
      });
      // Kept even when connecting fails: its status tells the owner why, and poll() retries it.
      links.set(row.id, link);
      await link.connect(signIn);
      return link;
    };

    const closeLink = async (id: string, unlinked = false) => {
      await links.get(id)?.close(unlinked);
      links.delete(id);
    };
    ctx.onStop(async () => {
      for (const id of [...links.keys()]) await closeLink(id);
    });

    /**
     * Links an account with its password (the API, or the simulator's auto-link). An account
     * already linked to the home is signed in again only when it needs it (reauth_required or
     * failed); a new link that fails leaves nothing behind.
     */
    const link = async (homeId: string, email: string, password: string, userId: string | null) => {
      if (!cloud.clientId || !cloud.clientSecret) {
        throw hubError('HUB_ERR_PLUGIN_NOT_CONFIGURED', 'Set PLUGIN_MAMMOTION_CLIENT_ID and PLUGIN_MAMMOTION_CLIENT_SECRET to link Mammotion accounts');
      }
      const inserted = await db
        .insertInto('mammotion_accounts')
        .values({ home_id: homeId, email, created_by: userId })
        .onConflict((oc) => oc.columns(['home_id', 'email']).doNothing())
        .returning(['id', 'home_id', 'email'])
        .executeTakeFirst();
      const existing = inserted
        ? undefined
        : await db.selectFrom('mammotion_accounts').select(['id', 'home_id', 'email', 'status']).where('home_id', '=', homeId).where('email', '=', email).executeTakeFirstOrThrow();
      if (existing && existing.status !== 'reauth_required' && existing.status !== 'failed') throw hubError('HUB_ERR_ACCOUNT_LINKED');
      const row = inserted ?? existing!;
      if (existing) await closeLink(row.id);
      try {
        return await withDeadline(openLink(row, { password }), ctx.config.linkTimeoutSeconds * 1000);
      } catch (error) {
        await closeLink(row.id, true);
        if (inserted) await db.deleteFrom('mammotion_accounts').where('id', '=', row.id).execute();
        throw linkError(error);
      }
    };
    ctx.bus.on('home_deleted', (event) => {
      // The rows went with the home (cascade); stop what still runs for them.
      for (const accountLink of [...links.values()]) {
        if (accountLink.row.home_id === event.data.home_id) void closeLink(accountLink.row.id, true);
      }
    });

    // Accounts linked before a restart come back from their sealed refresh tokens, in the background.
    for (const row of await db.selectFrom('mammotion_accounts').select(['id', 'home_id', 'email', 'sealed_session']).execute()) {
      if (!row.sealed_session) continue;
      let refreshToken: string;
      try {
        refreshToken = ctx.secrets.open(row.sealed_session, `account:${row.id}`);
      } catch (error) {
        ctx.log.error({ err: error, account: row.id }, 'stored Mammotion session cannot be opened (was HUB_SECRET_KEY changed?); link the account again');
        await db.updateTable('mammotion_accounts').set({ status: 'reauth_required', status_detail: 'The stored session cannot be decrypted' }).where('id', '=', row.id).execute();
        continue;
      }
      openLink(row, { refreshToken }).catch((error: unknown) => ctx.log.warn({ err: error, account: row.id }, 'Mammotion account not reconnected'));
    }

    if (simulatorLogin) {
      const { email, password } = simulatorLogin;
      const linkSimulator = async (homeId: string) => {
        const linked = await db.selectFrom('mammotion_accounts').select('id').where('email', '=', email).executeTakeFirst();
        if (!linked) await link(homeId, email, password, null);
      };
      const firstHome = await ctx.db.selectFrom('homes').select('id').orderBy('created_at').executeTakeFirst();
      if (firstHome) await linkSimulator(firstHome.id);
      else ctx.log.info('the simulated mowers appear in the first home you create');
      ctx.bus.on('home_created', (event) => {
        linkSimulator(event.data.home_id).catch((error: unknown) => ctx.log.warn({ err: error }, 'simulator account not linked'));
      });
    }

    await ctx.jobs.schedule('poll', { everyMs: ctx.config.pollSeconds * 1000 }, async () => {
      for (const accountLink of links.values()) await accountLink.poll();
    });

    ctx.nodeRed.nodes(fileURLToPath(new URL('./nodes', import.meta.url)));
    accountRoutes(ctx.routes, { db, links, link, closeLink });
    registerGauges(ctx, links, mowers);
    registerActions(ctx, (entityIds) => entityIds.map((id) => mowers.get(id) ?? missing(id)));
  },
});

function registerGauges(ctx: MammotionContext, links: Map<string, AccountLink>, mowers: Map<string, MowerDriver>) {
  const perMower = (value: (driver: MowerDriver) => number | undefined) => () =>
    [...mowers.values()].flatMap((driver) => {
      const v = value(driver);
      return v === undefined ? [] : [{ labels: { mower: driver.entityId }, value: v }];
    });
  ctx.metrics.gauge({
    name: 'account_connected',
    help: '1 while the linked account is connected to the Mammotion cloud',
    labelNames: ['account'],
    collect: () => [...links.values()].map((l) => ({ labels: { account: l.row.id }, value: l.status === 'connected' ? 1 : 0 })),
  });
  ctx.metrics.gauge({ name: 'send_budget_used', help: 'Cloud sends in the rolling 12 h quota window', labelNames: ['mower'], collect: perMower((d) => d.sendBudget?.used) });
  ctx.metrics.gauge({
    name: 'send_blocked',
    help: '1 while sends to the mower are blocked (cloud 429 or the quota)',
    labelNames: ['mower'],
    collect: perMower((d) => (d.sendBudget?.blockedUntil && d.sendBudget.blockedUntil > Date.now() ? 1 : 0)),
  });
  ctx.metrics.gauge({ name: 'frames_malformed', help: 'Frames from the mower that did not decode', labelNames: ['mower'], collect: perMower((d) => d.malformed) });
}

/** What the caller of a link gets for a failure: the cloud's words, never a database's. */
function linkError(error: unknown): HubError {
  if (error instanceof HubError) return error;
  if (error instanceof LoginRejectedError) return hubError('HUB_ERR_CLOUD_LOGIN_REFUSED', 'Mammotion refused this email or password');
  if (error instanceof CloudError) return hubError('HUB_ERR_UPSTREAM', `The Mammotion cloud failed: ${error.message}`, { cause: error });
  return hubError('HUB_ERR_INTERNAL', undefined, { cause: error });
}

/** Rejects with HUB_ERR_UPSTREAM_TIMEOUT when `work` takes longer than `ms` (a broker that never answers). */
async function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(hubError('HUB_ERR_UPSTREAM_TIMEOUT', `The Mammotion cloud did not connect within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function missing(entityId: string): never {
  throw hubError('HUB_ERR_ENTITY_NOT_FOUND', `${entityId} is not a Mammotion mower`);
}

/** The actions: Home Assistant's `lawn_mower.*` and the driver's own `mammotion.*`. */
function registerActions(ctx: MammotionContext, driversOf: (entityIds: string[]) => MowerDriver[]) {
  const target = { domain: 'lawn_mower' };
  const entityId = z.union([z.string(), z.array(z.string())]).optional();
  const each = (run: (driver: MowerDriver) => Promise<void>) => async ({ entityIds }: { entityIds: string[] }) => {
    await Promise.all(driversOf(entityIds).map(run));
  };
  const simple = (domain: string, name: string, description: string, run: (driver: MowerDriver) => Promise<void>) =>
    ctx.actions.register({ domain, name, description, role: 'technician', target, schema: z.object({ entity_id: entityId }), handler: each(run) });

  simple('lawn_mower', 'start_mowing', 'Start mowing (plans the route first, or resumes an interrupted job)', (d) => d.startMowing());
  simple('lawn_mower', 'pause', 'Pause mowing (or stop returning to the dock)', (d) => d.pause());
  simple('lawn_mower', 'dock', 'Return to the dock', (d) => d.dock());
  simple('mammotion', 'resume', 'Resume a paused job', (d) => d.resume());
  simple('mammotion', 'cancel', 'End the current job', (d) => d.cancel());
  simple('mammotion', 'leave_dock', 'Drive off the dock', (d) => d.leaveDock());
  simple('mammotion', 'refresh', 'Ask the mower for a report now', (d) => d.refreshNow());

  const withData = <S extends z.ZodObject>(name: string, description: string, schema: S, run: (driver: MowerDriver, data: z.output<S>) => Promise<void>) =>
    ctx.actions.register({
      domain: 'mammotion',
      name,
      description,
      role: 'technician',
      target,
      schema: schema.extend({ entity_id: entityId }),
      handler: async ({ entityIds, data }) => {
        await Promise.all(driversOf(entityIds).map((driver) => run(driver, data as z.output<S>)));
      },
    });
  withData('set_blade_height', 'Set the cutting height', z.object({ height_mm: z.number().int().min(15).max(100).describe('Blade height, mm') }), (d, data) =>
    d.setBladeHeight(data.height_mm),
  );
  withData('set_speed', 'Set the travel speed', z.object({ speed: z.number().min(0.2).max(1.2).describe('m/s') }), (d, data) => d.setSpeed(data.speed));
  withData(
    'set_cutter_mode',
    'Set the blade speed',
    z.object({ mode: z.enum(['standard', 'economic', 'performance']) }),
    (d, data) => d.setCutterMode(CutterMode[data.mode.toUpperCase() as keyof typeof CutterMode]),
  );
  withData(
    'start_zones',
    'Mow the given areas, in this order',
    z.object({ zones: z.array(z.string().regex(/^-?\d{1,20}$/, 'an area hash')).min(1).max(50).describe('Area hashes (the mower entity lists them)') }),
    (d, data) => d.startMowing(data.zones),
  );
}
