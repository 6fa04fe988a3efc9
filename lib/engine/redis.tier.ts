import type { Cluster, Redis } from 'ioredis';
import { Deadlines, L2_FAILED, type L2Failed } from './deadline';
import type { RedisClient, RedisConnectionFactory, RedisMode } from './redis-connection';

export { L2_FAILED, type L2Failed };

export interface L2Write {
  pkey: string;
  payload: string;
  ttl: number;
  tagKeys?: readonly string[];
}

// Adds a key to a tag set and stretches the set's TTL to the longest-lived member (a set without a TTL gets one).
const TAG_ADD = `redis.call('SADD', KEYS[1], ARGV[1])
local t = redis.call('PTTL', KEYS[1])
if t < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`;

const SCAN_COUNT = 500;
const TAG_POP_BATCH = 500;

/**
 * L2 over ioredis. No method throws or waits past the deadline: failures come back as L2_FAILED and are
 * reported through `onError`. Physical keys are built by the caller (ioredis keyPrefix does not apply to
 * SCAN MATCH, io#239). Everything that touches several keys is written so it also works on a Cluster,
 * where one pipeline cannot span slots.
 */
export class RedisTier {
  private readonly clients: RedisClient[];
  private next = 0;
  readonly deadlines: Deadlines;
  readonly mode: RedisMode;
  private closed = false;

  constructor(
    factory: RedisConnectionFactory,
    maxConnections: number,
    commandTimeoutMs: number,
    private readonly connectTimeoutMs: number,
    private readonly onError: (op: string, err: unknown) => void,
  ) {
    this.mode = factory.mode;
    const n = this.mode === 'cluster' ? 1 : maxConnections;
    this.clients = Array.from({ length: n }, (_, i) =>
      factory.create(n === 1 ? 'data' : `data-${i}`, { enableAutoPipelining: true }),
    );
    for (const c of this.clients) c.on('error', (err: unknown) => this.onError('connection', err));
    this.deadlines = new Deadlines(commandTimeoutMs);
  }

  /** Starts connecting; waits at most connectTimeout. A Redis that is down leaves the app booting L1-only. */
  async connect(): Promise<boolean> {
    const attempts = this.clients.map((c) => c.connect().then(() => true, () => false));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), this.connectTimeoutMs)));
    const ok = await Promise.race([Promise.all(attempts).then((r) => r.every(Boolean)), timeout]);
    clearTimeout(timer);
    return ok;
  }

  get ready(): boolean {
    return this.clients.some((c) => c.status === 'ready');
  }

  get status(): string {
    return this.clients[0].status;
  }

  get client(): RedisClient {
    return this.clients[0];
  }

  private pick(): RedisClient | undefined {
    const n = this.clients.length;
    for (let i = 0; i < n; i++) {
      const c = this.clients[this.next++ % n];
      if (c.status === 'ready') return c;
    }
    return undefined;
  }

  private run<T>(op: string, fn: (c: RedisClient) => Promise<T>): Promise<T | L2Failed> {
    const c = this.closed ? undefined : this.pick();
    if (!c) return Promise.resolve(L2_FAILED);
    let p: Promise<T>;
    try {
      p = fn(c);
    } catch (err) {
      this.onError(op, err);
      return Promise.resolve(L2_FAILED);
    }
    return this.deadlines.run(p, (err) => this.onError(op, err));
  }

  get(pkey: string): Promise<string | null | L2Failed> {
    return this.run('get', (c) => c.get(pkey));
  }

  /** Value and remaining TTL in one round trip (auto-pipelined), for promotion into L1. */
  getWithPttl(pkey: string): Promise<[string | null, number] | L2Failed> {
    return this.run('get', (c) => Promise.all([c.get(pkey), c.pttl(pkey)]));
  }

  mget(pkeys: readonly string[], withPttl: boolean): Promise<Array<[string | null, number]> | L2Failed> {
    return this.run('mget', (c) => {
      if (!withPttl && this.mode !== 'cluster') {
        return c.mget(...pkeys).then((vals) => vals.map((v): [string | null, number] => [v, -1]));
      }
      // Auto-pipelining sends these in one write (per node on a Cluster), not N round trips.
      return Promise.all(pkeys.map((k) => Promise.all([c.get(k), withPttl ? c.pttl(k) : Promise.resolve(-1)])));
    });
  }

  pttl(pkey: string): Promise<number | L2Failed> {
    return this.run('ttl', (c) => c.pttl(pkey));
  }

  exists(pkey: string): Promise<boolean | L2Failed> {
    return this.run('has', (c) => c.exists(pkey).then((n) => n > 0));
  }

  set(w: L2Write): Promise<boolean | L2Failed> {
    if (!w.tagKeys || w.tagKeys.length === 0) {
      return this.run('set', (c) => c.set(w.pkey, w.payload, 'PX', w.ttl).then(() => true));
    }
    return this.run('set', (c) => writeOne(c, w).then(() => true));
  }

  /** Many writes in one round trip (auto-pipelined; per node on a Cluster). */
  setMany(writes: readonly L2Write[]): Promise<boolean | L2Failed> {
    return this.run('mset', (c) => Promise.all(writes.map((w) => writeOne(c, w))).then(() => true));
  }

  /** Deletes keys; resolves to a flag per key (removed or not). */
  del(pkeys: readonly string[]): Promise<boolean[] | L2Failed> {
    return this.run('delete', (c) => Promise.all(pkeys.map((k) => c.unlink(k).then((n) => n > 0))));
  }

  /**
   * SCAN MATCH + UNLINK in batches (never KEYS), on every master of a Cluster (cluster SCAN only sees one
   * node, io#1884). Each step has its own deadline; a failed step ends the walk and reports what was done.
   */
  async scanDelete(match: string, onKeys?: (pkeys: string[]) => void): Promise<number | L2Failed> {
    const nodes: RedisClient[] =
      this.mode === 'cluster' ? (this.clients[0] as Cluster).nodes('master') : [this.clients[0]];
    let removed = 0;
    for (const node of nodes) {
      let cursor = '0';
      do {
        const page = await this.deadlines.run((node as Redis).scan(cursor, 'MATCH', match, 'COUNT', SCAN_COUNT), (err) =>
          this.onError('scan', err),
        );
        if (page === L2_FAILED) return removed > 0 ? removed : L2_FAILED;
        cursor = page[0];
        const keys = page[1];
        if (keys.length > 0) {
          onKeys?.(keys);
          const r = await this.run('unlink', (c) =>
            this.mode === 'cluster' ? Promise.all(keys.map((k) => c.unlink(k))).then((a) => a.reduce((s, n) => s + n, 0)) : c.unlink(...keys),
          );
          if (r === L2_FAILED) return removed > 0 ? removed : L2_FAILED;
          removed += r;
        }
      } while (cursor !== '0');
    }
    return removed;
  }

  /**
   * Removes every key recorded in a tag set, in O(tagged keys); `onKeys` gets each batch once it is deleted. SPOP takes members out atomically, so a key
   * tagged while this runs is either popped here or stays indexed for the next invalidation.
   */
  async popTag(tagKey: string, onKeys?: (pkeys: string[]) => void): Promise<number | L2Failed> {
    let removed = 0;
    for (;;) {
      const members = await this.run('tag', (c) => c.spop(tagKey, TAG_POP_BATCH));
      if (members === L2_FAILED) return removed > 0 ? removed : L2_FAILED;
      if (!members || members.length === 0) return removed;
      const r = await this.del(members);
      if (r === L2_FAILED) return removed > 0 ? removed : L2_FAILED;
      // After the delete: a reader told about these keys must not find the old values in L2 any more.
      onKeys?.(members);
      for (const ok of r) if (ok) removed++;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.deadlines.close();
    await Promise.all(
      this.clients.map(async (c) => {
        if (c.status === 'ready') {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([c.quit().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, 1_000)))]);
          clearTimeout(timer);
        }
        c.disconnect();
      }),
    );
  }
}

function writeOne(c: RedisClient, w: L2Write): Promise<unknown> {
  const ops: Promise<unknown>[] = [c.set(w.pkey, w.payload, 'PX', w.ttl)];
  if (w.tagKeys) for (const tk of w.tagKeys) ops.push(c.eval(TAG_ADD, 1, tk, w.pkey, w.ttl));
  return Promise.all(ops);
}
