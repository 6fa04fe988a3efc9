// Driver choice for the PostgreSQL tier: key lookups by primary key through `pg` and `postgres`, 1 and 100 in
// flight, each with a pool of 4 connections, against a server given as PG_URL. `postgres` must be installed
// for this run only: `npm install --no-save postgres@3.4`.
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const url = process.env.PG_URL;
if (!url || /:5432\b/.test(url)) throw new Error('PG_URL: a test server of your own (never the machine\'s 5432)');
const N = Number(process.env.N ?? 20000);
const pg = require('pg');
const postgres = (await import('postgres')).default;

const setup = new pg.Client({ connectionString: url });
await setup.connect();
await setup.query('CREATE UNLOGGED TABLE IF NOT EXISTS m (ns text COLLATE "C", key text COLLATE "C", value text, expires_at timestamptz, PRIMARY KEY (ns, key))');
await setup.query("INSERT INTO m SELECT 'n', 'k' || i, repeat('x', 200), now() + interval '1 hour' FROM generate_series(0, 9999) i ON CONFLICT DO NOTHING");
await setup.end();
const SQL = 'SELECT value, floor(extract(epoch from expires_at - now()) * 1000)::float8 AS ttl FROM m WHERE ns = $1 AND key = $2 AND expires_at > now()';

async function run(name, lookup, inFlight) {
  for (let i = 0; i < 2000; i++) await lookup('k' + (i % 10000));
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < N) { const i = next++; const r = await lookup('k' + (i % 10000)); if (!r) throw new Error('miss'); }
  }));
  const ms = performance.now() - t0;
  console.log(`${name.padEnd(28)} in flight ${String(inFlight).padStart(3)}: ${Math.round(N / (ms / 1000))} lookups/s, ${(ms * 1000 / N * inFlight).toFixed(0)} µs per lookup`);
}

const pool = new pg.Pool({ connectionString: url, max: 4 });
const pgPrepared = (k) => pool.query({ name: 'get', text: SQL, values: ['n', k] }).then((r) => r.rows[0]);
const pgPlain = (k) => pool.query(SQL, ['n', k]).then((r) => r.rows[0]);
const sql = postgres(url, { max: 4 });
const pjs = (k) => sql.unsafe(SQL, ['n', k], { prepare: true }).then((r) => r[0]);
for (const f of [1, 100]) {
  await run('pg (named prepared)', pgPrepared, f);
  await run('pg (unnamed)', pgPlain, f);
  await run('postgres (prepared)', pjs, f);
}
await pool.end();
await sql.end();
