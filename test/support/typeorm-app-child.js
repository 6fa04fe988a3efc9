'use strict';
/**
 * An ORM-invalidation test instance in a Node process of its own, from the built package (dist/ and
 * dist/typeorm): TypeORM + TieredCacheModule + TieredCacheTypeOrmModule, driven over IPC by
 * EngineProcess.fork (engine-process.ts), its options in TC_OPTIONS ({ id, op, args } → { id, ok, value | error }).
 */
require('reflect-metadata');
const { NestFactory } = require('@nestjs/core');
const { DataSource } = require('typeorm');
const lib = require('../../dist');
const typeormLib = require('../../dist/typeorm');
const { typeOrmTestModule, UserSchema } = require('./typeorm-app');

const config = JSON.parse(process.env.TC_OPTIONS || '{}');
/** Factory runs per cache key: how the parent tells a load from the database from a cache hit. */
const loads = {};

(async () => {
  const app = await NestFactory.createApplicationContext(typeOrmTestModule({ lib, typeormLib, ...config }), { logger: false });
  const cache = app.get(lib.CacheManagerService);
  const ds = app.get(DataSource);
  const users = ds.getRepository(UserSchema);
  const load = (key, fn) => async () => {
    loads[key] = (loads[key] ?? 0) + 1;
    return fn();
  };
  const ops = {
    /** getOrSet of one user's detail, tagged like the app would; null when there is no such user. */
    cacheUser: (id) => cache.getOrSet(`user:detail:${id}`, load(`user:detail:${id}`, async () => (await users.findOneBy({ id })) ?? null), { ttl: '10m', tags: [`user:${id}`, 'users'] }),
    /** getOrSet of a tenant's user list. */
    cacheList: (tenantId) => cache.getOrSet(`users:list:${tenantId}:all`, load(`users:list:${tenantId}:all`, () => users.find({ where: { tenantId }, order: { id: 'ASC' } })), { ttl: '10m' }),
    /** getOrSet of any key with a constant value. */
    cacheValue: (key, value) => cache.getOrSet(key, load(key, async () => value), { ttl: '10m' }),
    loads: (key) => loads[key] ?? 0,
    inL1: (key) => cache.engine.peekLocal(key) !== undefined,
    /** A full read (L1, then Redis): undefined once both dropped the key. */
    get: (key) => cache.get(key),
    /** A committed rename through save(), in a transaction of its own. */
    rename: (id, name) => ds.transaction(async (m) => {
      const u = await m.findOneByOrFail(UserSchema, { id });
      u.name = name;
      await m.save(UserSchema, u);
      return true;
    }),
    busReceived: () => cache.engine.stats().bus.received,
    async close() {
      await app.close();
      setImmediate(() => process.exit(0));
      return true;
    },
  };
  require('./child-ipc').serveOps(ops);
  process.send({ id: 0, ok: true, value: 'started' });
})().catch((err) => {
  process.send?.({ id: 0, ok: false, error: err instanceof Error ? err.stack : String(err) });
  process.exit(1);
});
