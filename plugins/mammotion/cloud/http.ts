/**
 * One HTTP exchange with a Mammotion server: global fetch with a hard timeout, the
 * `{code, msg, data}` envelope read defensively, and the transient/terminal split every
 * caller needs (SPEC §2.1: 408/429/5xx and network errors are "try later", never "bad password").
 *
 * @module
 */
import { CloudError, CloudUnavailableError } from './errors.js';

/** The envelope every Mammotion endpoint answers with. */
export interface Envelope {
  code: number;
  msg: string;
  data: unknown;
}

/** What came back: the HTTP status and the envelope, if the body was one. */
export interface CloudResponse {
  status: number;
  body: Envelope | undefined;
  /** The parsed JSON body, whatever its shape (`undefined` when not JSON). */
  json: unknown;
}

/** HTTP statuses that mean "the server could not answer now". 429 is here for auth calls; invoke reads it first. */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Body codes that mean success: 0, and 200 on some IoT endpoints. */
export function isOkCode(code: number): boolean {
  return code === 0 || code === 200;
}

/** True when the answer says the bearer token is no longer accepted (HTTP 401, or body code 401 / 460). */
export function isTokenRefusal(response: CloudResponse): boolean {
  return response.status === 401 || response.body?.code === 401 || response.body?.code === 460;
}

/** Reads an envelope out of any JSON value; `undefined` when it is not one. */
export function readEnvelope(value: unknown): Envelope | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const record = value as Record<string, unknown>;
  const code = typeof record.code === 'string' && /^-?\d+$/.test(record.code) ? Number(record.code) : record.code;
  if (typeof code !== 'number' || !Number.isFinite(code)) return undefined;
  return { code, msg: typeof record.msg === 'string' ? record.msg : '', data: record.data };
}

/**
 * Sends one request. Network failures and timeouts become {@link CloudUnavailableError};
 * any HTTP status is returned as is, for the caller to judge.
 */
export async function exchange(url: string, init: RequestInit, timeoutMs: number): Promise<CloudResponse> {
  let response: Response;
  try {
    response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    throw new CloudUnavailableError(0, `No answer from ${new URL(url).host}: ${(error as Error).message}`, undefined, { cause: error });
  }
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    throw new CloudUnavailableError(0, `Answer from ${new URL(url).host} was cut off`, response.status, { cause: error });
  }
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.status, body: readEnvelope(json), json };
}

/**
 * The envelope's data when the answer is a success; otherwise the matching error
 * (transient → {@link CloudUnavailableError}, anything else → {@link CloudError}).
 */
export function expectOk(response: CloudResponse, what: string): unknown {
  const { status, body } = response;
  if (isTransientStatus(status)) throw new CloudUnavailableError(status, `${what}: HTTP ${status}`, status);
  if (!body) throw new CloudError(status, `${what}: HTTP ${status} without a JSON envelope`, status);
  if (!isOkCode(body.code)) throw new CloudError(body.code, `${what}: ${body.msg || `code ${body.code}`}`, status);
  return body.data;
}

/** Waits, unless the signal says stop (then resolves early). */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
