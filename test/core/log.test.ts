import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../core/log/index.js';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { lines, log: createLogger({ logLevel: 'info', production: true }, stream) };
}

describe('logger', () => {
  it('redacts secrets at the top level and nested in objects', () => {
    const { lines, log } = capture();
    log.info(
      {
        password: 'hunter22',
        body: { token: 'tok-123', nested: { client_secret: 'cs-456' } },
        req: { headers: { authorization: 'Bearer abc', cookie: 'hub_session=xyz', 'set-cookie': 'a=b' } },
        stripeSecretKey: 'sk_test_789',
        email: 'kept@example.com',
      },
      'event',
    );
    const line = lines.join('');
    for (const secret of ['hunter22', 'tok-123', 'cs-456', 'Bearer abc', 'hub_session=xyz', 'a=b', 'sk_test_789']) {
      expect(line).not.toContain(secret);
    }
    expect(line).toContain('kept@example.com');
    expect(JSON.parse(line).req.headers.authorization).toBe('[redacted]');
  });

  it('carries context into child loggers as JSON', () => {
    const { lines, log } = capture();
    log.child({ plugin: 'demo' }).child({ reqId: 'r-1' }).warn('careful');
    expect(JSON.parse(lines[0]!)).toMatchObject({ plugin: 'demo', reqId: 'r-1', msg: 'careful', level: 40 });
  });
});
