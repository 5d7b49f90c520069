/** Waiting in tests: for a while, or until something a user would see has happened. */

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads until `done` accepts the value; fails with the last value after `timeoutMs`. */
export async function until<T>(read: () => T | Promise<T>, done: (value: T) => boolean, timeoutMs = 5000): Promise<T> {
  for (const started = Date.now(); ; await sleep(20)) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`condition not met; last value ${JSON.stringify(value)}`);
  }
}
