import type { EntityBulkChange, EntityRowChange } from '../../lib/typeorm';
import { defaultEventBaseName } from '../../lib/typeorm';
import { checkEventBaseName } from '../../lib/typeorm/entity-event-name';
import type { EntityEventTarget } from '../../lib/typeorm/entity-event-catalog';
import { TransactionChanges, type PendingChange } from '../../lib/typeorm/transaction-changes';

/**
 * The per-transaction buffer alone (the database side is in test/integration/typeorm-invalidation.spec.ts):
 * savepoint levels, merging a row changed twice, the cap and what it folds into.
 */

const user: EntityEventTarget = { name: 'user', payload: undefined };
const post: EntityEventTarget = { name: 'post', payload: undefined };

function row(target: EntityEventTarget, operation: EntityRowChange['operation'], id: number, changed: string[] = [], values: Record<string, unknown> = {}): PendingChange {
  const change: EntityRowChange = { entity: target.name, entityName: target.name, table: `${target.name}s`, operation, bulk: false, pk: { id }, changed, values: { id, ...values } };
  return { target, change };
}

function bulk(target: EntityEventTarget, operation: EntityBulkChange['operation'], changed: string[], set?: Record<string, unknown>): PendingChange {
  const change: EntityBulkChange = { entity: target.name, entityName: target.name, table: `${target.name}s`, operation, bulk: true, reason: 'statement', count: 0, changed };
  if (set) change.set = set;
  return { target, change };
}

const summary = (ps: PendingChange[]) => ps.map((p) => `${p.change.entity}.${p.change.bulk ? 'bulk.' : ''}${p.change.operation}:${p.change.bulk ? p.change.count : (p.change.pk as { id: number }).id}`);

describe('TransactionChanges', () => {
  it('hands out the outer transaction’s changes on commit, in order, and nothing after a rollback', () => {
    const t = new TransactionChanges(100);
    const runner = {};
    t.begin(runner, true);
    t.add(runner, row(user, 'created', 1));
    t.add(runner, row(post, 'updated', 2));
    expect(summary(t.commit(runner, false))).toEqual(['user.created:1', 'post.updated:2']);
    // The runner starts clean for its next transaction.
    t.begin(runner, true);
    t.add(runner, row(user, 'deleted', 3));
    expect(t.rollback(runner, false)).toBe(1);
    expect(t.commit(runner, false)).toEqual([]);
  });

  it('keeps runners apart', () => {
    const t = new TransactionChanges(100);
    const r1 = {};
    const r2 = {};
    t.begin(r1, true);
    t.begin(r2, true);
    t.add(r1, row(user, 'updated', 1));
    t.add(r2, row(user, 'updated', 2));
    t.rollback(r2, false);
    expect(summary(t.commit(r1, false))).toEqual(['user.updated:1']);
  });

  it('a released savepoint joins its parent, a rolled-back one is dropped alone', () => {
    const t = new TransactionChanges(100);
    const r = {};
    t.begin(r, true);
    t.add(r, row(user, 'updated', 1, ['name'], { name: 'a' }));
    t.begin(r, false);
    t.add(r, row(user, 'updated', 2));
    expect(t.rollback(r, true)).toBe(1);
    t.begin(r, false);
    t.add(r, row(user, 'updated', 1, ['active'], { active: false }));
    t.add(r, row(user, 'created', 3));
    expect(t.commit(r, true)).toEqual([]);
    const out = t.commit(r, false);
    expect(summary(out)).toEqual(['user.updated:1', 'user.created:3']);
    const merged = out[0].change as EntityRowChange;
    expect(merged.changed).toEqual(['name', 'active']);
    expect(merged.values).toEqual({ id: 1, name: 'a', active: false });
  });

  it('a row changed twice is one event that keeps the first write’s "previous"', () => {
    const t = new TransactionChanges(100);
    const r = {};
    t.begin(r, true);
    const first = row(user, 'updated', 1, ['name']);
    (first.change as EntityRowChange).previous = { id: 1, name: 'before' };
    const second = row(user, 'updated', 1, ['name']);
    (second.change as EntityRowChange).previous = { id: 1, name: 'between' };
    t.add(r, first);
    t.add(r, second);
    const out = t.commit(r, false);
    expect(out).toHaveLength(1);
    expect((out[0].change as EntityRowChange).previous).toEqual({ id: 1, name: 'before' });
  });

  it('bulk statements merge per entity and operation: changed columns united, SET values kept only where they agree', () => {
    const t = new TransactionChanges(100);
    const r = {};
    t.begin(r, true);
    t.add(r, bulk(user, 'updated', ['active'], { active: true, n: 1n }));
    t.add(r, bulk(user, 'updated', ['active', 'name'], { active: true, name: 'x', n: 1n }));
    t.add(r, bulk(user, 'deleted', []));
    const out = t.commit(r, false);
    expect(out.map((p) => p.change)).toEqual([
      expect.objectContaining({ operation: 'updated', bulk: true, reason: 'statement', changed: ['active', 'name'], set: { active: true, n: 1n } }),
      expect.objectContaining({ operation: 'deleted', bulk: true }),
    ]);
  });

  it('past the cap every row event of the transaction folds into one bulk event per entity and operation', () => {
    const t = new TransactionChanges(3);
    const r = {};
    t.begin(r, true);
    t.add(r, row(user, 'created', 1, ['name']));
    t.begin(r, false);
    t.add(r, row(user, 'created', 2, ['email']));
    t.add(r, row(post, 'updated', 1));
    t.add(r, row(user, 'created', 3));
    expect(t.overflows).toBe(1);
    // Later rows of the same transaction go straight into the fold.
    t.add(r, row(user, 'created', 4));
    t.add(r, row(user, 'deleted', 5));
    t.commit(r, true);
    const out = t.commit(r, false);
    expect(out.map((p) => p.change)).toEqual([
      expect.objectContaining({ entity: 'user', operation: 'created', bulk: true, reason: 'overflow', count: 4, changed: ['name', 'email'] }),
      expect.objectContaining({ entity: 'post', operation: 'updated', bulk: true, reason: 'overflow', count: 1 }),
      expect.objectContaining({ entity: 'user', operation: 'deleted', bulk: true, reason: 'overflow', count: 1 }),
    ]);
  });

  it('a rolled-back savepoint gives its rows back to the cap', () => {
    const t = new TransactionChanges(2);
    const r = {};
    t.begin(r, true);
    t.add(r, row(user, 'created', 1));
    t.begin(r, false);
    t.add(r, row(user, 'created', 2));
    t.rollback(r, true);
    t.add(r, row(user, 'created', 3));
    expect(t.overflows).toBe(0);
    expect(summary(t.commit(r, false))).toEqual(['user.created:1', 'user.created:3']);
  });

  it('changes of a transaction whose start it never saw are still held until the commit', () => {
    const t = new TransactionChanges(10);
    const r = {};
    t.add(r, row(user, 'updated', 1));
    // A savepoint it did not see begin, released: nothing to hand out yet.
    expect(t.commit(r, true)).toEqual([]);
    expect(summary(t.commit(r, false))).toEqual(['user.updated:1']);
  });
});

describe('entity event names', () => {
  it.each([
    ['Property', 'property'],
    ['LeadScore', 'leadScore'],
    ['URLRecord', 'urlRecord'],
    ['ID', 'id'],
    ['lead_score', 'lead_score'],
  ])('%s → %s by default', (name, expected) => {
    expect(defaultEventBaseName(name)).toBe(expected);
  });

  it.each(['', 'a b', 'user.*', 'user..x', '.user', 'bulk', 'user.bulk', 'ünï'])('%j is refused', (name) => {
    expect(() => checkEventBaseName('test', name, (m) => new TypeError(m))).toThrow(TypeError);
  });

  it.each(['user', 'catalog.property', 'lead-score', 'a_b$1', 'bulky'])('%j is accepted', (name) => {
    expect(() => checkEventBaseName('test', name, (m) => new TypeError(m))).not.toThrow();
  });
});
