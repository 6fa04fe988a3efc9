import type { DataSource } from 'typeorm';
import { seedProperties } from '../seed-data';
import { PropertyEntity } from './property.entity';

/** One lock for every instance of the sample on this database (pg_advisory_lock takes a bigint; hashtext gives one). */
const LOCK_NAME = 'nestjs-tiered-cache sample: schema and seed';

/**
 * Brings the database to what the app expects before anything queries it: pending migrations applied, and the
 * sample's listings inserted when the table is empty. Instances starting at the same moment queue on a session
 * advisory lock, so one migrates and seeds and the others find it done; a process that dies holding the lock
 * loses its connection and with it the lock. The seed's ON CONFLICT DO NOTHING keeps it idempotent even without
 * the lock (a database someone seeded by hand).
 */
export async function prepareDatabase(dataSource: DataSource): Promise<void> {
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  try {
    await runner.query('SELECT pg_advisory_lock(hashtext($1))', [LOCK_NAME]);
    try {
      await dataSource.runMigrations({ transaction: 'all' });
      await dataSource.transaction(async (tx) => {
        if (await tx.getRepository(PropertyEntity).exists()) return;
        await tx.createQueryBuilder().insert().into(PropertyEntity).values(seedProperties()).orIgnore().execute();
      });
    } finally {
      await runner.query('SELECT pg_advisory_unlock(hashtext($1))', [LOCK_NAME]);
    }
  } finally {
    await runner.release();
  }
}
