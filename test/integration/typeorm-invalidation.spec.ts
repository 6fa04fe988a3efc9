import type { INestApplicationContext } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { Test, type TestingModule } from '@nestjs/testing';
import { Column, DataSource, Entity, EntitySchema, PrimaryGeneratedColumn, type Repository } from 'typeorm';
import * as lib from '../../lib';
import { CacheManagerService, TieredCacheOptionsError } from '../../lib';
import * as typeormLib from '../../lib/typeorm';
import { EntityEvents, TypeOrmEntityEvents, type EntityBulkChange, type EntityRowChange } from '../../lib/typeorm';
import { PostgresServer } from '../support/postgres-server';
import { RedisServer } from '../support/redis-server';
import { typeOrmTestModule, UserSchema, type TestUser } from '../support/typeorm-app';
import { EngineProcess } from '../support/engine-process';
import { waitFor } from '../support/wait-for';

/**
 * ORM-driven invalidation end to end: instance A (this process, lib/ sources) and instance B (a Node process of
 * its own, dist/) each run TypeOrmModule on one real PostgreSQL, TieredCacheModule on one real Redis with the
 * same invalidation rules (test/support/typeorm-app.js), and TieredCacheTypeOrmModule. Writes made through
 * TypeORM on one instance invalidate the other's L1 and Redis with no hand-written event.
 */

/** A decorated entity (A only): named `article`, with an alias field its rule uses. */
@EntityEvents({ name: 'article', payload: (c) => (c.bulk ? undefined : { articleId: c.pk.id }) })
@Entity('tc_posts')
class Post {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column()
  title!: string;
}

/** Only in the boot tests' DataSource (never written): a second entity whose derived name can clash with User's. */
const NoteSchema = new EntitySchema<{ id: number }>({ name: 'Note', tableName: 'tc_notes', columns: { id: { type: 'int', primary: true } } });

const KEY_PREFIX = 'orm:';
let pg: PostgresServer;
let redis: RedisServer;
let a: INestApplicationContext;
let b: EngineProcess;
let ds: DataSource;
let users: Repository<TestUser>;
let cacheA: CacheManagerService;
let publishedBeforeB = 0;
/** Every `user.*` / `article.*` event A emitted, in order. */
const events: Array<{ event: string; payload: Record<string, unknown> }> = [];
const emitted = (prefix: string) => events.filter((e) => e.event.startsWith(prefix));

beforeAll(async () => {
  [pg, redis] = await Promise.all([PostgresServer.start(), RedisServer.start()]);
  const ref = await Test.createTestingModule({
    imports: [
      typeOrmTestModule({
        lib,
        typeormLib,
        pgUrl: pg.url,
        redisUrl: redis.url,
        keyPrefix: KEY_PREFIX,
        entities: [UserSchema, Post],
        synchronize: true,
        typeorm: { maxEventsPerTransaction: 10 },
      }),
    ],
  }).compile();
  a = await ref.init();
  ds = a.get(DataSource);
  users = ds.getRepository(UserSchema);
  cacheA = a.get(CacheManagerService);
  await users.insert(
    Array.from({ length: 8 }, (_, i) => ({ tenantId: i % 2 === 0 ? 'acme' : 'globex', name: `user ${i + 1}`, tags: ['x'] })),
  );
  a.get(EventEmitter2).onAny((event: string | string[], payload: unknown) => {
    const name = Array.isArray(event) ? event.join('.') : event;
    if (/^(user|article)\./.test(name)) events.push({ event: name, payload: payload as Record<string, unknown> });
  });
  // B boots on the schema A created; what A published before (the seed's events) B never hears.
  await cacheA.engine.bus!.drain();
  publishedBeforeB = cacheA.engine.stats().bus.published;
  // Another replica in a Node process of its own (test/support/typeorm-app-child.js, from dist/).
  b = await EngineProcess.fork('typeorm-app-child.js', { pgUrl: pg.url, redisUrl: redis.url, keyPrefix: KEY_PREFIX });
}, 90_000);

afterAll(async () => {
  await b?.stop();
  await a?.close();
  await Promise.all([pg?.stop(), redis?.stop()]);
});

beforeEach(() => {
  events.length = 0;
});

/**
 * Until B has applied every invalidation A published. A read B makes while a pattern or tag invalidation is
 * still on its way is (rightly) not promoted to L1, which would make the "B holds it" checks below racy.
 */
async function bHeardEverything(): Promise<void> {
  await cacheA.engine.bus!.drain();
  const published = cacheA.engine.stats().bus.published - publishedBeforeB;
  await waitFor('B to apply everything A published', async () => (await b.call<number>('busReceived')) >= published);
}

/** B caches `key` and holds it in L1 (checked). */
async function cachedOnB(op: 'cacheUser' | 'cacheList', arg: number | string, key: string): Promise<unknown> {
  await bHeardEverything();
  const v = await b.call(op, arg);
  expect(await b.call('inL1', key)).toBe(true);
  return v;
}

/** A committed rename on A: the fence the rollback tests wait behind (B applies A's invalidations in order). */
async function fenceThroughB(id: number): Promise<void> {
  const key = `user:detail:${id}`;
  await cachedOnB('cacheUser', id, key);
  await ds.transaction(async (m) => {
    const u = await m.findOneByOrFail(UserSchema, { id });
    u.name = `${u.name}'`;
    await m.save(UserSchema, u);
  });
  await waitFor(`B to drop ${key} (the fence)`, async () => !(await b.call('inL1', key)));
}

describe('TieredCacheTypeOrmModule: row events', () => {
  it('a committed update on A invalidates B’s L1 and Redis; the event carries the key, the changed columns, the row before and after', async () => {
    const before = (await cachedOnB('cacheUser', 1, 'user:detail:1')) as TestUser;
    expect(before.name).toBe('user 1');
    await b.call('cacheUser', 1);
    expect(await b.call('loads', 'user:detail:1')).toBe(1);

    await ds.transaction(async (m) => {
      const u = await m.findOneByOrFail(UserSchema, { id: 1 });
      u.name = 'Ann';
      u.active = false;
      await m.save(UserSchema, u);
      // Nothing goes out before the commit.
      expect(emitted('user.')).toEqual([]);
    });

    expect(emitted('user.').map((e) => e.event)).toEqual(['user.updated']);
    const p = events[0].payload as unknown as EntityRowChange;
    expect(p).toMatchObject({ entity: 'user', entityName: 'User', table: 'tc_users', operation: 'updated', bulk: false, pk: { id: 1 }, id: 1, tenantId: 'acme', name: 'Ann' });
    expect([...p.changed].sort()).toEqual(['active', 'name']);
    expect(p.values).toMatchObject({ id: 1, tenantId: 'acme', name: 'Ann', active: false, deletedAt: null });
    expect(p.previous).toMatchObject({ id: 1, name: 'user 1', active: true });
    // JSON columns are left out of payloads.
    expect(p.values).not.toHaveProperty('tags');

    await waitFor('B to drop user:detail:1 from L1', async () => !(await b.call('inL1', 'user:detail:1')));
    expect(await b.call('get', 'user:detail:1')).toBeUndefined();
    const fresh = (await b.call('cacheUser', 1)) as TestUser;
    expect(fresh).toMatchObject({ id: 1, name: 'Ann', active: false });
    expect(await b.call('loads', 'user:detail:1')).toBe(2);
  });

  it('a committed update on B (another process, dist/) invalidates A’s L1', async () => {
    const key = 'user:detail:2';
    const load = jest.fn(async () => users.findOneBy({ id: 2 }));
    await cacheA.getOrSet(key, load);
    expect(cacheA.engine.peekLocal(key)).toBeDefined();

    await b.call('rename', 2, 'Bob');

    await waitFor('A to drop user:detail:2', () => cacheA.engine.peekLocal(key) === undefined);
    expect(await cacheA.getOrSet(key, load)).toMatchObject({ id: 2, name: 'Bob' });
    expect(load).toHaveBeenCalledTimes(2);
  });

  it('a rolled-back transaction emits nothing and invalidates nothing', async () => {
    await cachedOnB('cacheUser', 3, 'user:detail:3');
    const stats0 = a.get(TypeOrmEntityEvents).stats();

    await expect(
      ds.transaction(async (m) => {
        const u = await m.findOneByOrFail(UserSchema, { id: 3 });
        u.name = 'never';
        await m.save(UserSchema, u);
        await m.save(UserSchema, { tenantId: 'acme', name: 'never inserted' });
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');

    // Emission happens inside commit(): had anything been emitted, it would be here by now.
    expect(emitted('user.')).toEqual([]);
    const stats1 = a.get(TypeOrmEntityEvents).stats();
    expect(stats1.rolledBack - stats0.rolledBack).toBe(2);
    expect(stats1.emitted).toBe(stats0.emitted);

    // Had the rollback invalidated anything, B would have applied it before this later, committed one.
    await fenceThroughB(4);
    expect(await b.call('inL1', 'user:detail:3')).toBe(true);
    expect(await b.call('cacheUser', 3)).toMatchObject({ name: 'user 3' });
    expect(await b.call('loads', 'user:detail:3')).toBe(1);
    expect((await users.findOneByOrFail({ id: 3 })).name).toBe('user 3');
  });

  it('a savepoint rolled back inside a committed transaction drops its own events only', async () => {
    await ds.transaction(async (m) => {
      const u5 = await m.findOneByOrFail(UserSchema, { id: 5 });
      u5.name = 'kept';
      await m.save(UserSchema, u5);
      await expect(
        m.transaction(async (inner) => {
          const u6 = await inner.findOneByOrFail(UserSchema, { id: 6 });
          u6.name = 'dropped';
          await inner.save(UserSchema, u6);
          throw new Error('inner abort');
        }),
      ).rejects.toThrow('inner abort');
      await m.transaction(async (inner) => {
        const u7 = await inner.findOneByOrFail(UserSchema, { id: 7 });
        u7.name = 'kept too';
        await inner.save(UserSchema, u7);
        // The row the outer level changed, changed again: one event, both columns.
        const again = await inner.findOneByOrFail(UserSchema, { id: 5 });
        again.active = false;
        await inner.save(UserSchema, again);
      });
    });
    const got = emitted('user.').map((e) => [e.event, e.payload.id, [...(e.payload.changed as string[])].sort()]);
    expect(got).toEqual([
      ['user.updated', 5, ['active', 'name']],
      ['user.updated', 7, ['name']],
    ]);
    expect((await users.findOneByOrFail({ id: 6 })).name).toBe('user 6');
    // The first write's "before" survives the merge.
    expect((events[0].payload as unknown as EntityRowChange).previous).toMatchObject({ name: 'user 5', active: true });
  });

  it('created and deleted: lists and details on B are invalidated; a write outside any transaction is emitted at once', async () => {
    const list0 = (await cachedOnB('cacheList', 'acme', 'users:list:acme:all')) as TestUser[];

    const created = await users.save({ tenantId: 'acme', name: 'Carol' });
    expect(emitted('user.').map((e) => e.event)).toEqual(['user.created']);
    expect(events[0].payload).toMatchObject({ operation: 'created', pk: { id: created.id }, id: created.id, tenantId: 'acme', name: 'Carol' });
    expect(events[0].payload.changed).toEqual(expect.arrayContaining(['tenantId', 'name']));

    await waitFor('B to drop the acme list', async () => !(await b.call('inL1', 'users:list:acme:all')));
    const list1 = (await b.call('cacheList', 'acme')) as TestUser[];
    expect(list1.map((u) => u.name)).toEqual([...list0.map((u) => u.name), 'Carol']);

    await cachedOnB('cacheUser', created.id, `user:detail:${created.id}`);
    events.length = 0;
    // No transaction at all (save's own is turned off): autocommitted, so emitted when the statement is done.
    const entity = await users.findOneByOrFail({ id: created.id });
    await users.remove(entity, { transaction: false });
    expect(emitted('user.').map((e) => e.event)).toEqual(['user.deleted']);
    expect(events[0].payload).toMatchObject({ operation: 'deleted', pk: { id: created.id }, id: created.id, tenantId: 'acme', name: 'Carol', changed: [] });

    await waitFor('B to drop the deleted user', async () => !(await b.call('inL1', `user:detail:${created.id}`)));
    expect(await b.call('get', `user:detail:${created.id}`)).toBeUndefined();
    expect(await b.call('cacheUser', created.id)).toBeNull();
    await waitFor('B to drop the acme list again', async () => !(await b.call('inL1', 'users:list:acme:all')));
  });

  it('a soft delete is a deleted event with soft: true; recover() an updated one', async () => {
    const u = await users.save({ tenantId: 'globex', name: 'Soft' });
    events.length = 0;
    await users.softRemove(u);
    expect(emitted('user.').map((e) => e.event)).toEqual(['user.deleted']);
    expect(events[0].payload).toMatchObject({ pk: { id: u.id }, soft: true, changed: ['deletedAt'] });
    events.length = 0;
    await users.recover(u);
    expect(emitted('user.').map((e) => e.event)).toEqual(['user.updated']);
    expect(events[0].payload).toMatchObject({ pk: { id: u.id }, soft: true, changed: ['deletedAt'] });
  });
});

describe('TieredCacheTypeOrmModule: bulk and overflow events', () => {
  it('update() by criteria emits one user.bulk.updated; the rule mapping it to patterns and a tag invalidates B', async () => {
    await cachedOnB('cacheUser', 2, 'user:detail:2');
    await cachedOnB('cacheUser', 4, 'user:detail:4');
    await cachedOnB('cacheList', 'globex', 'users:list:globex:all');

    const r = await users.update({ tenantId: 'globex' }, { active: false });
    expect(r.affected).toBeGreaterThan(1);

    expect(emitted('user.').map((e) => e.event)).toEqual(['user.bulk.updated']);
    const p = events[0].payload as unknown as EntityBulkChange;
    expect(p).toEqual({ entity: 'user', entityName: 'User', table: 'tc_users', operation: 'updated', bulk: true, reason: 'statement', count: 0, changed: ['active'], set: { active: false } });

    for (const key of ['user:detail:2', 'user:detail:4', 'users:list:globex:all']) {
      await waitFor(`B to drop ${key}`, async () => !(await b.call('inL1', key)));
      expect(await b.call('get', key)).toBeUndefined();
    }
    expect(await b.call('cacheUser', 2)).toMatchObject({ active: false });
  });

  it('delete() by criteria emits user.bulk.deleted; bulk statements in one transaction give one event per entity and operation', async () => {
    await users.delete({ tenantId: 'nobody' });
    expect(emitted('user.').map((e) => e.event)).toEqual(['user.bulk.deleted']);
    expect(events[0].payload).toMatchObject({ bulk: true, reason: 'statement', changed: [] });

    events.length = 0;
    await ds.transaction(async (m) => {
      await m.update(UserSchema, { tenantId: 'acme' }, { active: true });
      await m.update(UserSchema, { tenantId: 'globex' }, { active: true, name: 'renamed' });
    });
    expect(emitted('user.').map((e) => e.event)).toEqual(['user.bulk.updated']);
    // The SET value both statements agree on stays; the one only one of them wrote goes.
    expect(events[0].payload).toMatchObject({ changed: ['active', 'name'], set: { active: true } });
    expect(events[0].payload.set).toEqual({ active: true });
  });

  it('past maxEventsPerTransaction a transaction’s row events fold into one bulk event per entity and operation', async () => {
    await bHeardEverything();
    await b.call('cacheValue', 'article:1', 'old');
    await b.call('cacheValue', 'article:zzz', 'old');
    for (const key of ['article:1', 'article:zzz']) expect(await b.call('inL1', key)).toBe(true);
    await ds.transaction(async (m) => {
      for (let i = 0; i < 12; i++) await m.save(Post, { title: `post ${i}` });
      const u = await m.findOneByOrFail(UserSchema, { id: 8 });
      u.name = 'in the overflowed transaction';
      await m.save(UserSchema, u);
    });
    const got = events.map((e) => e.event);
    expect(got).toEqual(['article.bulk.created', 'user.bulk.updated']);
    expect(events[0].payload).toEqual({ entity: 'article', entityName: 'Post', table: 'tc_posts', operation: 'created', bulk: true, reason: 'overflow', count: 12, changed: ['id', 'title'] });
    expect(events[1].payload).toMatchObject({ reason: 'overflow', count: 1, changed: ['name'] });
    expect(a.get(TypeOrmEntityEvents).stats().overflows).toBe(1);
    // article.bulk.* → article:*
    for (const key of ['article:1', 'article:zzz']) await waitFor(`B to drop ${key}`, async () => !(await b.call('inL1', key)));
  });

  it('the decorator names the entity and its payload mapper adds fields (article.created with articleId)', async () => {
    const next = Number((await ds.query(`SELECT last_value + 1 AS n FROM tc_posts_id_seq`))[0].n);
    await bHeardEverything();
    await b.call('cacheValue', `article:${next}`, 'old');
    expect(await b.call('inL1', `article:${next}`)).toBe(true);
    const post = await ds.getRepository(Post).save({ title: 'decorated' });
    expect(events.map((e) => e.event)).toEqual(['article.created']);
    expect(events[0].payload).toMatchObject({ entity: 'article', entityName: 'Post', pk: { id: post.id }, articleId: post.id, title: 'decorated' });
    await waitFor(`B to drop article:${post.id}`, async () => !(await b.call('inL1', `article:${post.id}`)));
    expect(a.get(TypeOrmEntityEvents).eventNames()).toEqual({ User: 'user', Post: 'article' });
  });
});

describe('TieredCacheTypeOrmModule: boot', () => {
  /**
   * A failed init() leaves the app unclosable (close() awaits the failed init and rethrows): what Nest opened
   * before the failure is closed here by hand, so that Jest can exit.
   */
  async function initOrCleanUp(ref: TestingModule): Promise<TestingModule> {
    try {
      return await ref.init();
    } catch (err) {
      const own = ref.get(DataSource, { strict: false });
      if (own.isInitialized) await own.destroy();
      await ref.get(CacheManagerService, { strict: false }).engine.close();
      throw err;
    }
  }

  async function boot(typeorm: Record<string, unknown>, withEmitter = true): Promise<INestApplicationContext> {
    const mod = typeOrmTestModule({ lib, typeormLib, pgUrl: pg.url, redisUrl: redis.url, keyPrefix: 'boot:', entities: [UserSchema, Post, NoteSchema], typeorm, name: 'BootApp' });
    if (!withEmitter) mod.imports = mod.imports!.slice(1);
    return initOrCleanUp(await Test.createTestingModule({ imports: [mod] }).compile());
  }

  it.each([
    [{ maxEventsPerTransaction: 0 }, 'typeorm.maxEventsPerTransaction'],
    [{ maxEventsPerTransaction: 1.5 }, 'typeorm.maxEventsPerTransaction'],
    [{ listenerTimeout: 'soon' }, 'typeorm.listenerTimeout'],
    [{ awaitListeners: 'yes' }, 'typeorm.awaitListeners'],
    [{ entities: [class NotAnEntity {}] }, 'typeorm.entities[0]'],
    [{ entities: [{ entity: UserSchema, name: 'has space' }] }, 'typeorm.entities[0].name'],
    [{ eventName: () => 'same' }, 'typeorm.eventName'],
    [{ eventName: () => 'user.*' }, 'typeorm.eventName'],
    [{ eventName: (e: { name: string }) => `${e.name}.bulk` }, 'typeorm.eventName'],
    [{ dataSource: 'nosuch' }, 'typeorm.dataSource'],
    [{ shards: 2 }, 'typeorm.shards'],
  ])('%j fails the boot with an error naming %s', async (typeorm, option) => {
    const err = await boot(typeorm).then(
      async (app) => {
        await app.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TieredCacheOptionsError);
    expect((err as TieredCacheOptionsError).option).toBe(option);
  });

  it('without EventEmitterModule the boot fails and says what to import', async () => {
    await expect(boot({}, false)).rejects.toThrow(/EventEmitterModule\.forRoot\(\)/);
  });

  it('a second registration on the same DataSource is refused (every event would go out twice)', async () => {
    const ref = await Test.createTestingModule({
      imports: [
        typeOrmTestModule({ lib, typeormLib, pgUrl: pg.url, redisUrl: redis.url, keyPrefix: 'twice:', entities: [UserSchema], name: 'TwiceApp' }),
        // Different options than the first, or Nest would take the two for one module.
        typeormLib.TieredCacheTypeOrmModule.forRoot({ maxEventsPerTransaction: 5 }),
      ],
    }).compile();
    await expect(initOrCleanUp(ref)).rejects.toThrow(/registered twice/);
  });

  it('forRootAsync with the DataSource itself; entities limits who emits; close() removes the subscriber', async () => {
    const mod = typeOrmTestModule({ lib, typeormLib, pgUrl: pg.url, redisUrl: redis.url, keyPrefix: 'async:', entities: [UserSchema, Post], name: 'AsyncApp' });
    mod.imports = [
      ...mod.imports!.slice(0, 3),
      typeormLib.TieredCacheTypeOrmModule.forRootAsync({ inject: [DataSource], useFactory: (dataSource: DataSource) => ({ dataSource, entities: [Post] }) }),
    ];
    const app = await (await Test.createTestingModule({ imports: [mod] }).compile()).init();
    const own = app.get(DataSource);
    const seen: string[] = [];
    app.get(EventEmitter2).onAny((e: string | string[]) => seen.push(String(e)));
    try {
      expect(app.get(TypeOrmEntityEvents).eventNames()).toEqual({ Post: 'article' });
      await own.getRepository(UserSchema).update({ id: 1 }, { name: 'Ann' });
      await own.getRepository(Post).save({ title: 'async' });
      expect(seen).toEqual(['article.created']);
      expect(own.subscribers).toHaveLength(1);
    } finally {
      await app.close();
    }
    expect(own.subscribers).toHaveLength(0);
  });
});

describe('TieredCacheTypeOrmModule: listeners never fail or hold up a commit', () => {
  async function app(typeorm: Record<string, unknown>, name: string): Promise<INestApplicationContext> {
    const mod = typeOrmTestModule({ lib, typeormLib, pgUrl: pg.url, redisUrl: redis.url, keyPrefix: `${name}:`, entities: [UserSchema, Post], typeorm, name });
    return (await Test.createTestingModule({ imports: [mod] }).compile()).init();
  }

  /** A listener held until the test releases it (a latch), and whether it has been reached. */
  function latchedListener(): { listener: () => Promise<void>; reached: () => boolean; release: () => void } {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let reached = false;
    return {
      listener: () => {
        reached = true;
        return gate;
      },
      reached: () => reached,
      release,
    };
  }

  it('a listener that rejects is logged and counted; the write stands', async () => {
    const c = await app({ entities: [{ entity: UserSchema, payload: () => { throw new Error('mapper bug'); } }] }, 'Rejecting');
    try {
      const seen: unknown[] = [];
      c.get(EventEmitter2).on('user.created', async (p: unknown) => {
        seen.push(p);
        throw new Error('listener down');
      });
      const saved = await c.get(DataSource).getRepository(UserSchema).save({ tenantId: 'acme', name: 'stands' });
      expect(seen).toEqual([expect.objectContaining({ pk: { id: saved.id }, name: 'stands' })]);
      expect(c.get(TypeOrmEntityEvents).stats()).toMatchObject({ emitted: 1, listenerFailures: 1, payloadFailures: 1 });
      expect(await users.findOneBy({ id: saved.id })).toMatchObject({ name: 'stands' });
    } finally {
      await c.close();
    }
  });

  it('a listener that does not settle holds the commit up to listenerTimeout only', async () => {
    const c = await app({ listenerTimeout: '50ms' }, 'Hanging');
    const held = latchedListener();
    try {
      c.get(EventEmitter2).on('user.created', held.listener);
      const saved = await c.get(DataSource).getRepository(UserSchema).save({ tenantId: 'acme', name: 'not waited for' });
      expect(held.reached()).toBe(true);
      expect(c.get(TypeOrmEntityEvents).stats()).toMatchObject({ emitted: 1, listenerTimeouts: 1 });
      expect(await users.findOneBy({ id: saved.id })).toMatchObject({ name: 'not waited for' });
    } finally {
      held.release();
      await c.close();
    }
  });

  it('awaitListeners: false emits and returns without waiting', async () => {
    const c = await app({ awaitListeners: false }, 'NoWait');
    const held = latchedListener();
    try {
      c.get(EventEmitter2).on('user.created', held.listener);
      await c.get(DataSource).getRepository(UserSchema).save({ tenantId: 'acme', name: 'fire and forget' });
      // Emitted (the listener runs), and the save resolved while the listener is still held.
      expect(held.reached()).toBe(true);
      expect(c.get(TypeOrmEntityEvents).stats()).toMatchObject({ emitted: 1, listenerTimeouts: 0 });
    } finally {
      held.release();
      await c.close();
    }
  });
});
