/**
 * Connection-pool figures for either driver, taken where kysely acquires and releases
 * connections (postgres.js has no public pool statistics; PGlite's pool is one connection).
 *
 * @module
 */
import type { DatabaseConnection, Dialect, Driver } from 'kysely';

/** What the pool is doing now; the metrics endpoint reads it. */
export interface PoolStats {
  /** Connections the pool may open. */
  readonly size: number;
  /** Connections handed out and not yet released. */
  readonly inUse: number;
  /** Callers waiting for a connection. */
  readonly waiting: number;
  /** Called with how long each caller waited for its connection, in seconds. */
  onAcquired: ((waitSeconds: number) => void) | undefined;
}

/** Wraps `dialect` so that every connection acquired through it is counted in the returned stats. */
export function countConnections(dialect: Dialect, size: number): { dialect: Dialect; stats: PoolStats } {
  const stats = { size, inUse: 0, waiting: 0, onAcquired: undefined as PoolStats['onAcquired'] };
  const counted: Dialect = {
    createAdapter: () => dialect.createAdapter(),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createDriver: () => countingDriver(dialect.createDriver(), stats),
  };
  return { dialect: counted, stats };
}

function countingDriver(driver: Driver, stats: { inUse: number; waiting: number; onAcquired: PoolStats['onAcquired'] }): Driver {
  return {
    init: () => driver.init(),
    async acquireConnection(): Promise<DatabaseConnection> {
      const started = performance.now();
      stats.waiting++;
      try {
        const connection = await driver.acquireConnection();
        stats.inUse++;
        stats.onAcquired?.((performance.now() - started) / 1000);
        return connection;
      } finally {
        stats.waiting--;
      }
    },
    async releaseConnection(connection) {
      stats.inUse--;
      await driver.releaseConnection(connection);
    },
    beginTransaction: (connection, settings) => driver.beginTransaction(connection, settings),
    commitTransaction: (connection) => driver.commitTransaction(connection),
    rollbackTransaction: (connection) => driver.rollbackTransaction(connection),
    savepoint: driver.savepoint?.bind(driver),
    rollbackToSavepoint: driver.rollbackToSavepoint?.bind(driver),
    releaseSavepoint: driver.releaseSavepoint?.bind(driver),
    destroy: () => driver.destroy(),
  };
}
