-- The PostgresTier table (lib/core/tiers/postgres.tier.ts, postgresTierDdl()), for teams that run DDL themselves
-- and build the tier with `createTable: false`. Defaults: schema public, table tiered_cache. Prefix CREATE TABLE
-- with UNLOGGED for the `unlogged` option. Keep in step with postgresTierDdl(). A NULL value marks a fence for
-- fills, not an entry: a deleted key's tombstone, or the namespace generation (key '__tc:gen'), which the tier
-- inserts at boot.
CREATE TABLE IF NOT EXISTS "public"."tiered_cache" (
  ns text COLLATE "C" NOT NULL,
  key text COLLATE "C" NOT NULL,
  value text,
  fence text,
  expires_at timestamptz NOT NULL,
  tags text[] NOT NULL DEFAULT '{}',
  bytes bigint NOT NULL DEFAULT 0,
  written_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (ns, key)
);
CREATE INDEX IF NOT EXISTS "tiered_cache_expires_idx" ON "public"."tiered_cache" (expires_at);
CREATE INDEX IF NOT EXISTS "tiered_cache_written_idx" ON "public"."tiered_cache" (ns, written_at);
CREATE INDEX IF NOT EXISTS "tiered_cache_tags_idx" ON "public"."tiered_cache" USING gin (tags);
