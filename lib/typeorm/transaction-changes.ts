import type { EntityBulkChange, EntityOperation, EntityRowChange } from './entity-change.interface';
import type { EntityEventTarget } from './entity-event-catalog';

/** A change with what is needed to emit it. */
export interface PendingChange {
  readonly target: EntityEventTarget;
  readonly change: EntityRowChange | EntityBulkChange;
}

/** One transaction level: the outer transaction, or a savepoint inside it. */
interface Frame {
  /** Row events by entity, operation and key, so that a row saved twice gives one event. */
  rows: Map<string, PendingChange>;
  /** Bulk events by entity and operation. */
  bulks: Map<string, PendingChange>;
}

/** The open transaction levels of one QueryRunner, and how many row events they hold together. */
interface Stack {
  frames: Frame[];
  rowCount: number;
  overflowed: boolean;
}

const newFrame = (): Frame => ({ rows: new Map(), bulks: new Map() });

function stableKey(pk: Record<string, unknown>): string {
  return JSON.stringify(pk, (_k, v: unknown) => {
    if (typeof v === 'bigint') return `${v}n`;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
}

const rowKey = (p: PendingChange & { change: EntityRowChange }) => `${p.target.name}\u0000${p.change.operation}\u0000${stableKey(p.change.pk)}`;
const bulkKey = (target: EntityEventTarget, op: EntityOperation) => `${target.name}\u0000${op}`;

/** Keeps the values two bulk updates agree on: a SET value that differs between them says nothing any more. */
function agreedSet(a: Record<string, unknown> | undefined, b: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!a || !b) return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(a)) if (k in b && stableKey({ v }) === stableKey({ v: b[k] })) out[k] = v;
  return Object.keys(out).length > 0 ? out : undefined;
}

function mergeBulk(into: Map<string, PendingChange>, p: PendingChange & { change: EntityBulkChange }): void {
  const key = bulkKey(p.target, p.change.operation);
  const had = into.get(key) as (PendingChange & { change: EntityBulkChange }) | undefined;
  if (!had) {
    into.set(key, { target: p.target, change: { ...p.change, changed: [...p.change.changed] } });
    return;
  }
  const a = had.change;
  const b = p.change;
  const merged: EntityBulkChange = {
    ...a,
    reason: a.reason === 'overflow' || b.reason === 'overflow' ? 'overflow' : 'statement',
    count: a.count + b.count,
    changed: [...new Set([...a.changed, ...b.changed])],
  };
  const set = agreedSet(a.set, b.set);
  if (set) merged.set = set;
  else delete merged.set;
  if (!(a.soft && b.soft)) delete merged.soft;
  into.set(key, { target: had.target, change: merged });
}

function mergeRow(into: Map<string, PendingChange>, p: PendingChange & { change: EntityRowChange }): boolean {
  const key = rowKey(p);
  const had = into.get(key) as (PendingChange & { change: EntityRowChange }) | undefined;
  if (!had) {
    into.set(key, p);
    return true;
  }
  const a = had.change;
  const b = p.change;
  const merged: EntityRowChange = {
    ...b,
    changed: [...new Set([...a.changed, ...b.changed])],
    values: { ...a.values, ...b.values },
  };
  // The row as it was before the first of the writes.
  if (a.previous) merged.previous = a.previous;
  if (!(a.soft && b.soft)) delete merged.soft;
  into.set(key, { target: p.target, change: merged });
  return false;
}

/** The bulk event that stands for row events past the cap. */
function overflowOf(p: PendingChange & { change: EntityRowChange }): PendingChange & { change: EntityBulkChange } {
  const c = p.change;
  const change: EntityBulkChange = {
    entity: c.entity,
    entityName: c.entityName,
    table: c.table,
    operation: c.operation,
    bulk: true,
    reason: 'overflow',
    count: 1,
    changed: [...c.changed],
  };
  if (c.soft) change.soft = true;
  return { target: p.target, change };
}

const isRow = (p: PendingChange): p is PendingChange & { change: EntityRowChange } => !p.change.bulk;

/**
 * Changes made inside transactions, held per QueryRunner until they are known to be durable:
 * - a savepoint's changes join its parent's when it is released, and are dropped when it is rolled back;
 * - the outer transaction's changes are handed out on commit, dropped on rollback;
 * - at most `cap` row events per transaction: past it, every row event of the transaction becomes part of one
 *   bulk event per entity and operation (which rules map to a pattern or tag), so memory stays bounded.
 * QueryRunners are held weakly: one released without commit or rollback takes its changes with it.
 */
export class TransactionChanges {
  private readonly stacks = new WeakMap<object, Stack>();
  overflows = 0;

  constructor(private readonly cap: number) {}

  /** A transaction (or savepoint) began on `runner`; `outermost` when it is not inside another one. */
  begin(runner: object, outermost: boolean): void {
    let s = this.stacks.get(runner);
    // A new outer transaction starts clean, whatever a runner left behind.
    if (!s || outermost) {
      s = { frames: [], rowCount: 0, overflowed: false };
      this.stacks.set(runner, s);
    }
    s.frames.push(newFrame());
  }

  /** Buffers `p` in the innermost open level of `runner` (one is opened if none is known). */
  add(runner: object, p: PendingChange): void {
    let s = this.stacks.get(runner);
    if (!s || s.frames.length === 0) {
      // The subscriber was registered, or a driver reported no start, after this transaction began.
      s = { frames: [newFrame()], rowCount: 0, overflowed: false };
      this.stacks.set(runner, s);
    }
    const frame = s.frames[s.frames.length - 1];
    if (!isRow(p)) {
      mergeBulk(frame.bulks, p as PendingChange & { change: EntityBulkChange });
      return;
    }
    if (s.overflowed) {
      mergeBulk(frame.bulks, overflowOf(p));
      return;
    }
    if (mergeRow(frame.rows, p)) s.rowCount++;
    if (s.rowCount > this.cap) this.overflow(s);
  }

  /**
   * A level of `runner` committed. `stillActive`: the runner is still in a transaction (a savepoint was released):
   * its changes join the level around it. Otherwise the outer transaction committed: its changes are returned.
   */
  commit(runner: object, stillActive: boolean): PendingChange[] {
    const s = this.stacks.get(runner);
    if (!s) return [];
    if (stillActive && s.frames.length > 1) {
      const inner = s.frames.pop()!;
      const outer = s.frames[s.frames.length - 1];
      for (const p of inner.rows.values()) {
        // Rows both levels changed were counted twice; merging gives them back.
        if (!mergeRow(outer.rows, p as PendingChange & { change: EntityRowChange })) s.rowCount--;
      }
      for (const p of inner.bulks.values()) mergeBulk(outer.bulks, p as PendingChange & { change: EntityBulkChange });
      return [];
    }
    if (stillActive) return []; // released a savepoint we never saw begin: its changes stay in the level they are in
    this.stacks.delete(runner);
    const out: PendingChange[] = [];
    const rows = new Map<string, PendingChange>();
    const bulks = new Map<string, PendingChange>();
    for (const f of s.frames) {
      for (const p of f.rows.values()) mergeRow(rows, p as PendingChange & { change: EntityRowChange });
      for (const p of f.bulks.values()) mergeBulk(bulks, p as PendingChange & { change: EntityBulkChange });
    }
    out.push(...rows.values(), ...bulks.values());
    return out;
  }

  /** A level of `runner` rolled back: its changes are dropped (all of them when the outer transaction ended). */
  rollback(runner: object, stillActive: boolean): number {
    const s = this.stacks.get(runner);
    if (!s) return 0;
    if (stillActive && s.frames.length > 1) {
      const inner = s.frames.pop()!;
      s.rowCount -= inner.rows.size;
      return inner.rows.size + inner.bulks.size;
    }
    if (stillActive) return 0;
    this.stacks.delete(runner);
    return s.frames.reduce((n, f) => n + f.rows.size + f.bulks.size, 0);
  }

  private overflow(s: Stack): void {
    s.overflowed = true;
    this.overflows++;
    for (const f of s.frames) {
      for (const p of f.rows.values()) mergeBulk(f.bulks, overflowOf(p as PendingChange & { change: EntityRowChange }));
      f.rows.clear();
    }
    s.rowCount = 0;
  }
}
