/** What one plugin start registered, so that the hub can remove all of it. */

export type StopReason = 'disable' | 'shutdown' | 'failed';

export class Scope {
  readonly #disposers: { dispose: () => unknown; keepOnShutdown: boolean }[] = [];
  #closed = false;

  /**
   * Adds something to undo when the plugin stops. `keepOnShutdown` keeps what must outlive a
   * hub restart (persisted entities, job rows other instances still run) when the whole hub stops.
   */
  add(dispose: () => unknown, options: { keepOnShutdown?: boolean } = {}): void {
    if (this.#closed) {
      // A setup that timed out and carried on: undo what it registers late, at once.
      void Promise.resolve().then(dispose).catch(() => {});
      return;
    }
    this.#disposers.push({ dispose, keepOnShutdown: options.keepOnShutdown ?? false });
  }

  /** Undoes everything, last registered first; one failure does not stop the rest. */
  async dispose(reason: StopReason, onError: (error: unknown) => void): Promise<void> {
    this.#closed = true;
    while (this.#disposers.length > 0) {
      const { dispose, keepOnShutdown } = this.#disposers.pop()!;
      if (reason === 'shutdown' && keepOnShutdown) continue;
      try {
        await dispose();
      } catch (error) {
        onError(error);
      }
    }
  }
}
