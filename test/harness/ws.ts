/** A raw WebSocket client for protocol tests: send messages, await the ones you expect. */
import WebSocket from 'ws';

export class WsClient {
  readonly messages: Record<string, unknown>[] = [];
  #waiters: { match: (m: Record<string, unknown>) => boolean; resolve: (m: Record<string, unknown>) => void }[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (raw) => {
      const parsed = JSON.parse(raw.toString()) as Record<string, unknown> | Record<string, unknown>[];
      for (const message of Array.isArray(parsed) ? parsed : [parsed]) {
        this.messages.push(message);
        const waiter = this.#waiters.find((w) => w.match(message));
        if (waiter) {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          waiter.resolve(message);
        }
      }
    });
    this.closed = new Promise((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static async open(url: string): Promise<WsClient> {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/api/websocket`);
    const client = new WsClient(socket);
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    return client;
  }

  /** Opens a connection and completes the auth phase. */
  static async authenticated(url: string, token: string): Promise<WsClient> {
    const client = await WsClient.open(url);
    await client.next((m) => m.type === 'auth_required');
    client.send({ type: 'auth', access_token: token });
    const reply = await client.next((m) => m.type === 'auth_ok' || m.type === 'auth_invalid');
    if (reply.type !== 'auth_ok') throw new Error(`auth failed: ${JSON.stringify(reply)}`);
    return client;
  }

  send(message: unknown): void {
    this.socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** The first message (already received or still to come) that matches. */
  next(match: (m: Record<string, unknown>) => boolean, timeoutMs = 5000): Promise<Record<string, unknown>> {
    const seen = this.messages.find(match);
    if (seen) {
      this.messages.splice(this.messages.indexOf(seen), 1);
      return Promise.resolve(seen);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no matching message in time')), timeoutMs);
      this.#waiters.push({
        match,
        resolve: (m) => {
          clearTimeout(timer);
          this.messages.splice(this.messages.indexOf(m), 1);
          resolve(m);
        },
      });
    });
  }

  /** Sends a command and returns its result message. */
  async command(message: { id: number; type: string; [key: string]: unknown }): Promise<Record<string, unknown>> {
    this.send(message);
    return this.next((m) => m.id === message.id && (m.type === 'result' || m.type === 'pong'));
  }

  close(): void {
    this.socket.close();
  }
}

/**
 * Runs `work` with `ws` as the global WebSocket, which home-assistant-js-websocket (written for
 * browsers) opens its connections with; the global is put back afterwards.
 */
export async function withGlobalWebSocket<T>(work: () => Promise<T>): Promise<T> {
  const globals = globalThis as { WebSocket?: unknown };
  const previous = globals.WebSocket;
  globals.WebSocket = WebSocket;
  try {
    return await work();
  } finally {
    globals.WebSocket = previous;
  }
}
