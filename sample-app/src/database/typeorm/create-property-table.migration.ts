import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The sample's schema, as a migration rather than `synchronize: true`: synchronize diffs and alters the schema on
 * every start, which two instances starting together would do at the same time. Migrations run under the
 * advisory lock of prepareDatabase(), so exactly one instance applies this.
 */
export class CreatePropertyTable1767225600000 implements MigrationInterface {
  name = 'CreatePropertyTable1767225600000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE "property" (
        "id" varchar(64) PRIMARY KEY,
        "tenant_id" varchar(64) NOT NULL,
        "address" text NOT NULL,
        "price" integer NOT NULL CHECK ("price" >= 0),
        "state" varchar(16) NOT NULL CHECK ("state" IN ('listed', 'under_offer', 'sold')),
        "updated_at" timestamptz NOT NULL
      )`);
    await q.query(`CREATE INDEX "property_tenant_id_idx" ON "property" ("tenant_id")`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE "property"`);
  }
}
