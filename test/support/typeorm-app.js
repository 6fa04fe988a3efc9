'use strict';
/**
 * One app instance of the ORM-invalidation tests, the same in the test process (built from lib/ by ts-jest) and
 * in a Node process of its own (test/support/typeorm-app-child.js, from the built dist/): TypeOrmModule on a
 * real PostgreSQL, TieredCacheModule on a real Redis with the invalidation rules below, EventEmitterModule and
 * TieredCacheTypeOrmModule. Plain JS so both can load it; entities are EntitySchemas (no decorators to compile).
 */
const { EntitySchema } = require('typeorm');

const UserSchema = new EntitySchema({
  name: 'User',
  tableName: 'tc_users',
  columns: {
    id: { type: 'int', primary: true, generated: 'increment' },
    tenantId: { type: 'varchar' },
    name: { type: 'varchar' },
    active: { type: 'boolean', default: true },
    tags: { type: 'jsonb', nullable: true },
    deletedAt: { type: 'timestamptz', deleteDate: true, nullable: true },
  },
});

/** What each event invalidates: the cache layout of these tests, as an app would write it. */
const RULES = [
  { event: ['user.updated', 'user.deleted'], keys: ['user:detail:{id}'], tags: ['user:{id}'] },
  { event: ['user.created', 'user.updated', 'user.deleted'], patterns: ['users:list:{tenantId}:*'] },
  // A statement by criteria names no row: everything derived from users goes.
  { event: 'user.bulk.*', patterns: ['user:detail:*', 'users:list:*'], tags: ['users'] },
  { event: ['article.created', 'article.updated', 'article.deleted'], keys: ['article:{articleId}'] },
  { event: 'article.bulk.*', patterns: ['article:*'] },
];

/**
 * The root module of one instance. `lib` and `typeormLib` are the package's main and `typeorm` entry points
 * (source in the test process, dist/ in a child), so the same code tests both builds.
 */
function typeOrmTestModule({ lib, typeormLib, pgUrl, redisUrl, keyPrefix, entities = [UserSchema], synchronize = false, typeorm = {}, rules = RULES, name = 'TypeOrmTestApp' }) {
  const { TypeOrmModule } = require('@nestjs/typeorm');
  const { EventEmitterModule } = require('@nestjs/event-emitter');
  const quiet = { warn() {}, error() {} };
  const root = { [name]: class {} }[name];
  return {
    module: root,
    imports: [
      EventEmitterModule.forRoot({ wildcard: true }),
      TypeOrmModule.forRoot({ type: 'postgres', url: pgUrl, entities, synchronize, logging: false, poolSize: 4 }),
      lib.TieredCacheModule.forRoot({ isGlobal: true, redis: redisUrl, keyPrefix, invalidationRules: rules, logger: quiet }),
      typeormLib.TieredCacheTypeOrmModule.forRoot(typeorm),
    ],
  };
}

module.exports = { UserSchema, RULES, typeOrmTestModule };
