/**
 * The Mammotion simulator: the cloud's two faces (HTTP and MQTT, `cloud.ts`) with simulated
 * mowers (`mower.ts`) behind them, on loopback. The hub's plugin talks to it exactly as to the
 * real cloud; tests, benchmarks and `npm run simulator` use it.
 *
 * @module
 */
import type { Logger } from '../../../core/log/index.js';
import { detectModel } from '../protocol/index.js';
import { MammotionCloudSimulator, type SimulatedAccount } from './cloud.js';
import { SimulatedMower, type MowerSpec } from './mower.js';

export { MammotionCloudSimulator, type CloudFaults, type SimulatedAccount } from './cloud.js';
export { SimulatedMower, type MowerSpec } from './mower.js';

/** One mower of the fleet. */
export interface SimulatedMowerSetup extends Partial<Omit<MowerSpec, 'model' | 'userAccount'>> {
  iotId: string;
  deviceName: string;
  productKey?: string;
}

export interface SimulatorOptions {
  /** The mowers, or how many of the default fleet (Luba 2, Yuka Mini, Luba 1, Luba mini, …). */
  mowers?: number | SimulatedMowerSetup[];
  account?: Partial<SimulatedAccount>;
  /** Simulated seconds per real second (a 20 min job in 20 s at 60). Default 1. */
  speedup?: number;
  /** How often the mowers move, in real milliseconds. Default 1000. */
  tickMs?: number;
  log?: Logger;
}

const FLEET = ['Luba-VS', 'Yuka-MN', 'Luba-', 'Luba-MN'];

/** The default fleet: mower `n` (from 1) gets a model, a name and firmware. */
export function defaultMower(n: number): SimulatedMowerSetup {
  const prefix = FLEET[(n - 1) % FLEET.length]!;
  return {
    iotId: `sim-iot-${String(n).padStart(4, '0')}`,
    deviceName: `${prefix}SIM${String(n).padStart(4, '0')}`,
    productKey: 'simPK',
    // The Luba 1 keeps old firmware so that the send quota applies to it.
    firmware: prefix === 'Luba-' ? '1.10.5.7' : '1.30.25.8',
    origin: { lat: (51.5 * Math.PI) / 180, lon: (-0.12 * Math.PI) / 180 + n * 1e-6 },
  };
}

export class MammotionSimulator {
  readonly cloud: MammotionCloudSimulator;
  readonly mowers = new Map<string, SimulatedMower>();
  readonly #speedup: number;
  readonly #tickMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: SimulatorOptions = {}) {
    this.cloud = new MammotionCloudSimulator({ account: options.account, log: options.log });
    this.#speedup = options.speedup ?? 1;
    this.#tickMs = options.tickMs ?? 1000;
    const setups = typeof options.mowers === 'number' || options.mowers === undefined ? range(options.mowers ?? 2).map(defaultMower) : options.mowers;
    for (const setup of setups) this.#add(setup);
    this.cloud.handleInvokes((iotId, frame) => this.mowers.get(iotId)?.receive(frame, Date.now()));
  }

  /** Starts the cloud faces and the mowers' clock; returns where clients connect. */
  async start(): Promise<{ httpUrl: string; mqttUrl: string; account: SimulatedAccount }> {
    const urls = await this.cloud.start();
    this.#timer = setInterval(() => this.tick(), this.#tickMs);
    this.#timer.unref();
    return { ...urls, account: this.cloud.account };
  }

  /** Advances every mower by one tick (the timer calls it; tests may too). */
  tick(): void {
    const now = Date.now();
    for (const mower of this.mowers.values()) mower.tick((this.#tickMs / 1000) * this.#speedup, now);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.cloud.stop();
  }

  #add(setup: SimulatedMowerSetup): void {
    const { iotId, deviceName, productKey = 'simPK', firmware = '1.30.25.8', ...spec } = setup;
    this.cloud.addDevice({ iotId, deviceName, productKey, firmware });
    const mower = new SimulatedMower(
      { ...spec, deviceName, firmware, model: detectModel(deviceName), userAccount: this.cloud.account.userAccount },
      (frame) => {
        this.cloud.publishFrame(productKey, deviceName, frame).catch(() => {}); // a frame lost while the broker restarts is lost, as in the field
      },
    );
    this.mowers.set(iotId, mower);
  }
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}
