import { randomBytes } from 'node:crypto';
import type * as PG from 'pg';
import type { EntryCompressor } from '../compression';
import { compileGlob } from '../glob';
import { RESERVED } from '../keys/cache-key';
import { breakerHealth, CircuitBreaker, CLOSED, type BreakerSettings } from './circuit-breaker';
import { DEADLINE_MISSED, Deadlines, L2_FAILED, type L2Failed } from './deadline';
import type { FillMark, ReplayableTier, Tier, TierCapabilities, TierEntry, TierHealth, TierRemoval, TierWrite } from './tier';

const POSTGRES_CAPABILITIES: TierCapabilities = Object.freeze({ shared: true, persistent: true, tags: true, patterns: true, byteBound: true, fences: true });

/** The namespace generation's row: no cache key can take it (the engine refuses keys under RESERVED). */
const GEN_KEY = `${RESERVED}gen`;

export interface PostgresTierOptions {
  /** postgres:// URL (pg's connectionString). */
  url: string;
  /** The cache's namespace inside the table: every key of this tier lives under it (an `ns` column, not a key prefix). */
  namespace: string;
  schema?: string;
  table?: string;
  /** CREATE TABLE IF NOT EXISTS at boot (default true); false for teams that forbid runtime DDL (ship sql/postgres-tier.sql). */
  createTable?: boolean;
  /** Create the table UNLOGGED: no WAL, several times cheaper writes, emptied by a crash (a cache can afford that). */
  unlogged?: boolean;
  /** Every query's deadline, client side and as the connection's statement_timeout (ms, default 500). */
  commandTimeout?: number;
  /** Bound on opening a connection, and on waiting for a free one (ms, default 2,000). */
  connectTimeout?: number;
  maxConnections?: number;
  /** Calls waiting for a connection beyond this fail at once: a hung database must not grow the queue without end. */
  maxWaiting?: number;
  maxEntries?: number;
  /** Bound on the sum of writes' `bytes` in this namespace; a single write above it is refused. */
  maxBytes?: number;
  /** Period of the expiry sweep and the trim (ms, default 30,000). */
  maintenanceInterval?: number;
  /** Rows per batch of the sweep, the trim and pattern/tag deletes (default 500). */
  batchSize?: number;
  /** Batches per sweep or trim run: a backlog is worked off over several runs, never in one long burst. */
  maxBatches?: number;
  /**
   * How long a deleted key's tombstone keeps refusing the fills that read the key before the delete (ms, default
   * 60,000). Keep it at least the engine's fill window (`l2.fillWindow`): a fill slower than this could store a
   * value its factory computed before the delete.
   */
  fillWindow?: number;
  name?: string;
  /** Rewrites what this tier stores (compression.ts); `bytes` then counts the stored, compressed form. */
  compressor?: EntryCompressor;
  /** The circuit breaker's settings (circuit-breaker.ts); absent: no breaker (the engine always passes its resolved ones). */
  breaker?: BreakerSettings;
}

export interface PostgresTierHealth extends TierHealth {
  /** Round trip of the health query (ms); absent when it failed. */
  latencyMs?: number;
  pool: { total: number; idle: number; waiting: number };
  /** The whole table (every namespace): the planner's row estimate and its size on disk with indexes. */
  table?: { rows: number; bytes: number };
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Leaves room for the index-name suffixes within PostgreSQL's 63-byte identifiers. */
const MAX_TABLE_NAME = 48;

const FAILED: Promise<L2Failed> = Promise.resolve(L2_FAILED);
const NOT_ASKED: TierRemoval = Object.freeze({ removed: 0, complete: false });
/** Redis answers "no match" past this many `*` groups followed by more pattern; compileGlob copies that, LIKE cannot. */
const MAX_STAR_GROUPS = 1000;

/**
 * The DDL the tier runs at boot (and sql/postgres-tier.sql ships, for public.tiered_cache). Key and namespace
 * are COLLATE "C": the primary key then orders by bytes, so one index serves key lookups and LIKE 'prefix%'
 * ranges, whatever the database's locale. A row with a NULL value is no entry but a fence for fills: a deleted
 * key's tombstone (until its expiry) or the namespace generation (key '__tc:gen', never expiring).
 */
export function postgresTierDdl(schema = 'public', table = 'tiered_cache', unlogged = false): string {
  const s = identifier(schema, 'schema');
  const t = identifier(table, 'table');
  if (table.length > MAX_TABLE_NAME) throw new TypeError(`PostgresTier: table name longer than ${MAX_TABLE_NAME} characters: ${table}`);
  const q = `"${s}"."${t}"`;
  return [
    `CREATE ${unlogged ? 'UNLOGGED ' : ''}TABLE IF NOT EXISTS ${q} (`,
    '  ns text COLLATE "C" NOT NULL,',
    '  key text COLLATE "C" NOT NULL,',
    '  value text,',
    '  fence text,',
    '  expires_at timestamptz NOT NULL,',
    "  tags text[] NOT NULL DEFAULT '{}',",
    '  bytes bigint NOT NULL DEFAULT 0,',
    '  written_at timestamptz NOT NULL DEFAULT now(),',
    '  PRIMARY KEY (ns, key)',
    ');',
    `CREATE INDEX IF NOT EXISTS "${t}_expires_idx" ON ${q} (expires_at);`,
    `CREATE INDEX IF NOT EXISTS "${t}_written_idx" ON ${q} (ns, written_at);`,
    `CREATE INDEX IF NOT EXISTS "${t}_tags_idx" ON ${q} USING gin (tags);`,
    '',
  ].join('\n');
}

function identifier(name: string, what: string): string {
  if (!IDENTIFIER.test(name) || name.length > 63) throw new TypeError(`PostgresTier: ${what} must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63 characters), got ${JSON.stringify(name)}`);
  return name;
}

/**
 * A Redis glob as a LIKE pattern (backslash escapes): `exact` when LIKE decides it alone (literals and `*` only);
 * otherwise the pattern is a superset (every `?` and class widened to `%`) and compileGlob decides each key. Not
 * a regex: PostgreSQL's regexes match characters, Redis' `?` and classes match bytes (`x?` takes 'xe', not 'xé'),
 * and compileGlob is what L1 uses, so both tiers drop exactly the same keys.
 */
export function globToLike(glob: string): { like: string; exact: boolean } {
  let like = '';
  let exact = true;
  let stars = 0;
  const wild = (): void => {
    if (!like.endsWith('%') || like.endsWith('\\%')) like += '%';
  };
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') {
      while (glob[i + 1] === '*') i++;
      stars++;
      wild();
    } else if (c === '?') {
      exact = false;
      wild();
    } else if (c === '[') {
      exact = false;
      // Skip to the class's end as Redis reads it (an escaped `]` does not close it; unterminated runs to the end).
      i++;
      while (i < glob.length && glob[i] !== ']') i += glob[i] === '\\' && i + 1 < glob.length ? 2 : 1;
      wild();
    } else {
      let ch = c;
      // A trailing lone backslash is a literal backslash.
      if (c === '\\' && i + 1 < glob.length) ch = glob[++i];
      like += ch === '%' || ch === '_' || ch === '\\' ? '\\' + ch : ch;
    }
  }
  if (stars > MAX_STAR_GROUPS) exact = false;
  return { like, exact };
}

/** A connection that is gone or cannot be opened (not a query that failed): the tier then stops asking until a probe succeeds. */
function isConnectionError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03') return true;
    if (/^E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|NOTFOUND|HOSTUNREACH|NETUNREACH|AI_AGAIN)$/.test(code)) return true;
  }
  const message = String((err as { message?: unknown }).message ?? '');
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/i.test(message);
}

/**
 * pg's client-side query_timeout, or the server's statement_timeout: both are set to the command deadline, so
 * either is the same missed deadline as ours (whichever fires first ends the call), not an error to report.
 * 57014 alone is any cancellation (pg_cancel_backend too): the message tells the statement timeout apart.
 */
function isQueryTimeout(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (/Query read timeout/.test(err.message)) return true;
  return (err as { code?: unknown }).code === '57014' && /statement timeout/.test(err.message);
}

/**
 * What the circuit breaker counts: a missed deadline (whichever of the three bounds ended it) or a server short of
 * resources (SQLSTATE classes 53 and 58). Not a lost connection: the tier stops asking at once by itself until
 * its probe reconnects. Not a query the database refused: it answered.
 */
function isOutage(err: unknown): boolean {
  if (err === DEADLINE_MISSED || isQueryTimeout(err)) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^5[38]/.test(code);
}

interface EntryRow {
  key?: unknown;
  value: unknown;
  ttl: unknown;
}

/** A row as an entry; anything of another shape (a table altered or filled by another client) is a miss. */
function rowEntry(row: EntryRow | undefined): TierEntry<string> | undefined {
  if (!row || typeof row.value !== 'string' || typeof row.ttl !== 'number' || !Number.isFinite(row.ttl)) return undefined;
  return { value: row.value, ttl: Math.max(1, row.ttl) };
}

/**
 * A persistent, shared tier in one PostgreSQL table (through `pg`, an optional peer loaded when the tier is
 * built). No method throws, rejects or waits past its deadline: failures resolve to TIER_FAILED (removals to
 * `complete: false`) and are reported through `onError`. A database that is down, at boot or later, leaves
 * the tier not ready, failing at once, while a probe with backoff retries the boot (and the table's creation).
 *
 * Expiry is the database's clock (`now()`), so instances with skewed clocks agree, as with Redis' own TTLs:
 * expired rows are never read and are swept in batches. A key's tags are those of its latest write (an
 * overwrite replaces the array): the tag index is exact.
 *
 * Fenced fills: deleteKeys leaves a tombstone with a fresh fence token for `fillWindow`, pattern and tag deletes
 * move the namespace generation first, and storeFenced writes only if neither moved since readFenced.
 */
export class PostgresTier implements Tier<string>, ReplayableTier<string> {
  readonly kind = 'postgres' as const;
  readonly capabilities = POSTGRES_CAPABILITIES;
  readonly name: string;
  readonly namespace: string;
  readonly deadlines: Deadlines;
  /**
   * Skips every query at once while the database keeps missing deadlines (circuit-breaker.ts); tested in query(),
   * after `ready`, so what it counts as skipped are queries that would have been sent.
   */
  readonly breaker: CircuitBreaker;
  private readonly pool: PG.Pool;
  private readonly q: string;
  private readonly ddl: string;
  private readonly createTable: boolean;
  private readonly maxWaiting: number;
  private readonly maxEntries: number | undefined;
  private readonly maxBytes: number | undefined;
  private readonly batchSize: number;
  private readonly maxBatches: number;
  private readonly connectTimeout: number;
  private readonly fillWindow: number;
  readonly compressor: EntryCompressor | undefined;
  /** Entries in this namespace at the last trim (only a tier with maxEntries or maxBytes counts them). */
  lastSize: number | undefined;
  /** Fence and generation tokens are this plus a counter: unique across instances without asking the database. */
  private readonly instanceId = randomBytes(9).toString('base64url');
  private tokens = 0;
  private readonly maintenance: NodeJS.Timeout;
  private maintaining = false;
  private closed = false;
  /** Connected and the table is there: calls go to the database. */
  private up = false;
  private probe: NodeJS.Timeout | undefined;
  private probeDelay = 0;
  private booting: Promise<boolean> | undefined;
  private readonly readyListeners: Array<() => void> = [];
  private readonly sql: Record<
    'get' | 'gets' | 'ttl' | 'set' | 'del' | 'delRows' | 'delLike' | 'walk' | 'tags' | 'sweep' | 'size' | 'trim' | 'genInit' | 'bump' | 'readFenced' | 'storeFenced' | 'replaceFenced' | 'generation',
    string
  >;

  constructor(
    options: PostgresTierOptions,
    private readonly onError: (op: string, err: unknown) => void,
  ) {
    const schema = options.schema ?? 'public';
    const table = options.table ?? 'tiered_cache';
    this.ddl = postgresTierDdl(schema, table, options.unlogged ?? false);
    this.q = `"${schema}"."${table}"`;
    this.name = options.name ?? 'l4';
    this.namespace = options.namespace;
    this.createTable = options.createTable ?? true;
    this.maxWaiting = options.maxWaiting ?? 1_000;
    this.maxEntries = options.maxEntries;
    this.maxBytes = options.maxBytes;
    this.batchSize = options.batchSize ?? 500;
    this.maxBatches = options.maxBatches ?? 10;
    const commandTimeout = options.commandTimeout ?? 500;
    this.connectTimeout = options.connectTimeout ?? 2_000;
    this.fillWindow = options.fillWindow ?? 60_000;
    this.compressor = options.compressor;
    const q = this.q;
    const gen = `'${GEN_KEY}'`;
    const live = 'expires_at > now() AND value IS NOT NULL';
    const ttl = 'floor(extract(epoch from expires_at - now()) * 1000)::float8 AS ttl';
    const counted = 'SELECT count(*)::int AS total, (count(*) FILTER (WHERE expires_at > now()))::int AS live FROM d';
    // Why the generation row is locked FOR SHARE, not merely read: an invalidation moves the generation (an
    // upsert, which takes the row's FOR NO KEY UPDATE lock, in conflict with FOR SHARE but not with FOR KEY
    // SHARE) and only then, in later statements with fresh snapshots, deletes. If this statement locks first,
    // the move waits until this write has committed, so the deletes that follow it see the written row and
    // take it. If the move is first, this lock waits for it to commit and, under READ COMMITTED, re-checks the
    // row's latest version: the token no longer matches, the CTE is empty, nothing is inserted. A plain read
    // could see the old token while the move commits and its deletes run, and write after them.
    // The key's own row is checked in ON CONFLICT's WHERE (`existing`, besides an expired row), under the lock
    // the upsert holds on that row (or after waiting for a concurrent insert of it), so a tombstone or a write
    // that lands meanwhile is seen too.
    const fencedUpsert = (existing: string): string =>
      `WITH g AS (SELECT 1 FROM ${q} WHERE ns = $1 AND key = ${gen} AND fence = $7 FOR SHARE) ` +
      `INSERT INTO ${q} AS t (ns, key, value, fence, expires_at, tags, bytes, written_at) ` +
      `SELECT $1, $2, $3, NULL, now() + $4::float8 * interval '1 millisecond', $5::text[], $6::bigint, now() FROM g ` +
      'ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, fence = NULL, expires_at = excluded.expires_at, tags = excluded.tags, bytes = excluded.bytes, written_at = excluded.written_at ' +
      `WHERE t.expires_at <= now() OR (${existing}) ` +
      'RETURNING 1 AS ok';
    this.sql = {
      get: `SELECT value, ${ttl} FROM ${q} WHERE ns = $1 AND key = $2 AND ${live}`,
      gets: `SELECT key, value, ${ttl} FROM ${q} WHERE ns = $1 AND key = ANY($2::text[]) AND ${live}`,
      ttl: `SELECT ${ttl}, value FROM ${q} WHERE ns = $1 AND key = $2 AND ${live}`,
      // One statement: the refused keys' old values go, the rest is upserted (tags null: untagged).
      set:
        `WITH gone AS (DELETE FROM ${q} WHERE ns = $1 AND key = ANY($7::text[])) ` +
        `INSERT INTO ${q} (ns, key, value, expires_at, tags, bytes, written_at) ` +
        `SELECT $1, x.k, x.v, now() + x.t * interval '1 millisecond', ARRAY(SELECT jsonb_array_elements_text(x.g::jsonb)), x.b::bigint, now() ` +
        `FROM unnest($2::text[], $3::text[], $4::float8[], $5::text[], $6::float8[]) AS x(k, v, t, g, b) ` +
        'ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, fence = NULL, expires_at = excluded.expires_at, tags = excluded.tags, bytes = excluded.bytes, written_at = excluded.written_at',
      // Every key becomes a tombstone ($3: this call's fence token), whether it had a row or not: a fill that
      // read it missing before this delete must find another fence. The count is of the statement's snapshot.
      // Keys in byte order, so that two deletes of overlapping keys lock them in the same order.
      del:
        `WITH old AS (SELECT key FROM ${q} WHERE ns = $1 AND key = ANY($2::text[]) AND ${live}), ` +
        `t AS (INSERT INTO ${q} (ns, key, value, fence, expires_at, tags, bytes, written_at) ` +
        `SELECT $1, x.k, NULL, $3, now() + $4::float8 * interval '1 millisecond', '{}', 0, now() FROM unnest($2::text[]) AS x(k) ORDER BY x.k COLLATE "C" ` +
        "ON CONFLICT (ns, key) DO UPDATE SET value = NULL, fence = excluded.fence, expires_at = excluded.expires_at, tags = '{}', bytes = 0, written_at = excluded.written_at) " +
        'SELECT count(*)::int AS live FROM old',
      // Pattern and tag deletes take value rows only: the generation row must outlive them, and tombstones are
      // left to their expiry. The outer `value IS NOT NULL` is re-checked on a row that changed meanwhile.
      delRows: `WITH d AS (DELETE FROM ${q} WHERE ns = $1 AND key = ANY($2::text[]) AND value IS NOT NULL RETURNING expires_at) ${counted}`,
      delLike: `WITH d AS (DELETE FROM ${q} WHERE ns = $1 AND value IS NOT NULL AND key IN (SELECT key FROM ${q} WHERE ns = $1 AND key LIKE $2 AND value IS NOT NULL AND (key <> '' OR $4) LIMIT $3) RETURNING expires_at) ${counted}`,
      walk: `SELECT key FROM ${q} WHERE ns = $1 AND key LIKE $2 AND key > $3 AND value IS NOT NULL ORDER BY key LIMIT $4`,
      tags: `WITH d AS (DELETE FROM ${q} WHERE ns = $1 AND value IS NOT NULL AND key IN (SELECT key FROM ${q} WHERE ns = $1 AND tags && $2::text[] AND value IS NOT NULL LIMIT $3) RETURNING expires_at) ${counted}`,
      // Expired rows of every namespace (tombstones past their window too): garbage to all of them. The
      // generation rows expire at 'infinity'.
      sweep: `WITH d AS (DELETE FROM ${q} WHERE expires_at <= now() AND ctid IN (SELECT ctid FROM ${q} WHERE expires_at <= now() LIMIT $1) RETURNING 1) SELECT count(*)::int AS n FROM d`,
      size: `SELECT count(*)::float8 AS n, coalesce(sum(bytes), 0)::float8 AS b FROM ${q} WHERE ns = $1 AND value IS NOT NULL`,
      // Oldest writes first, as many as cover the excess entries ($3) and bytes ($4), at most $2 rows. Entries
      // only: a trim moves no generation, so a tombstone it took would let a fill that read the key missing
      // before the delete find no row and store.
      trim:
        `WITH o AS (SELECT key, bytes, row_number() OVER w AS rn, sum(bytes) OVER w AS run FROM (SELECT key, bytes, written_at FROM ${q} WHERE ns = $1 AND value IS NOT NULL ORDER BY written_at, key LIMIT $2) s WINDOW w AS (ORDER BY written_at, key)), ` +
        `d AS (DELETE FROM ${q} t USING o WHERE t.ns = $1 AND t.key = o.key AND t.value IS NOT NULL AND (o.rn <= $3 OR o.run - o.bytes < $4) RETURNING t.bytes) ` +
        'SELECT count(*)::float8 AS n, coalesce(sum(bytes), 0)::float8 AS b FROM d',
      genInit: `INSERT INTO ${q} (ns, key, value, fence, expires_at) VALUES ($1, ${gen}, NULL, $2, 'infinity') ON CONFLICT (ns, key) DO NOTHING`,
      bump:
        `INSERT INTO ${q} (ns, key, value, fence, expires_at) VALUES ($1, ${gen}, NULL, $2, 'infinity') ` +
        "ON CONFLICT (ns, key) DO UPDATE SET value = NULL, fence = excluded.fence, expires_at = 'infinity', tags = '{}', bytes = 0",
      // One snapshot for both: the generation is never newer than the key state the fill decided on.
      readFenced:
        `SELECT (SELECT g.fence FROM ${q} g WHERE g.ns = $1 AND g.key = ${gen}) AS generation, ` +
        `k.value, floor(extract(epoch from k.expires_at - now()) * 1000)::float8 AS ttl, CASE WHEN k.value IS NULL THEN k.fence END AS fence ` +
        `FROM (VALUES (1)) AS one(x) LEFT JOIN ${q} k ON k.ns = $1 AND k.key = $2 AND k.expires_at > now()`,
      storeFenced: fencedUpsert('t.value IS NULL AND t.fence = $8'),
      // A replayed write (recovery-queue.ts): the key must still hold the value the replay read ($8; NULL for
      // none, which no live row equals: then only an absent or expired row is taken, never a tombstone).
      replaceFenced: fencedUpsert('t.value = $8'),
      generation: `SELECT fence AS generation FROM ${q} WHERE ns = $1 AND key = ${gen}`,
    };
    // Loaded here, not at import: `pg` is an optional peer, needed only by apps that build this tier.
    const pg = require('pg') as typeof PG;
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.maxConnections ?? 4,
      connectionTimeoutMillis: this.connectTimeout,
      // Client side: the query fails and pg-pool discards its connection (a hung server keeps no slot);
      // server side: the database cancels it. Our own deadline below bounds whatever is left.
      query_timeout: commandTimeout,
      statement_timeout: commandTimeout,
      application_name: 'tiered-cache',
      keepAlive: true,
      idleTimeoutMillis: 30_000,
    });
    this.pool.on('error', (err) => this.report('connection', err));
    this.breaker = new CircuitBreaker(options.breaker, () => this.probeQuery());
    this.deadlines = new Deadlines(commandTimeout, {
      onError: (op, err, late) => {
        // Late: its deadline was counted when it passed (onTimeout).
        if (!late && !this.closed && isOutage(err)) this.breaker.failure();
        this.report(op, err, late);
      },
      onTimeout: (_, sentAt) => this.breaker.failure(sentAt),
    });
    this.maintenance = setInterval(() => void this.maintain(), options.maintenanceInterval ?? 30_000);
    this.maintenance.unref();
    void this.connect();
  }

  get ready(): boolean {
    return this.up && !this.closed;
  }

  /**
   * Resolves once the table is there (true) or the first attempt failed (false; a probe goes on retrying in the
   * background), never waiting past connectTimeout + one command deadline.
   */
  connect(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.up) return Promise.resolve(true);
    if (!this.booting) {
      this.booting = this.boot().then((ok) => {
        this.booting = undefined;
        if (ok) {
          this.up = true;
          this.probeDelay = 0;
          for (const l of this.readyListeners) l();
          // The database just answered the boot's queries: as good as the breaker's probe.
          this.breaker.succeeded();
        } else this.scheduleProbe();
        return ok;
      });
    }
    return this.booting;
  }

  private async boot(): Promise<boolean> {
    const ddl = this.ddl;
    const r = await this.deadlines.run(
      (async () => {
        const client = await this.pool.connect();
        let broken: Error | undefined;
        // A checked-out client has no pool listener: the connection breaking between two of these queries would
        // be an 'error' event with none, thrown (the next query fails with it anyway).
        const onError = (err: Error): void => {
          broken ??= err;
        };
        client.on('error', onError);
        try {
          if (this.createTable) {
            // Serialized: two instances creating the same table at once can collide in the catalog.
            await client.query('BEGIN');
            await client.query("SELECT pg_advisory_xact_lock(hashtext('tiered-cache-ddl'))");
            await client.query(ddl);
            await client.query(this.sql.genInit, [this.namespace, this.token()]);
            await client.query('COMMIT');
          } else {
            // Also the check that the table is there.
            await client.query(this.sql.genInit, [this.namespace, this.token()]);
          }
          return true;
        } catch (err) {
          broken = err as Error;
          throw err;
        } finally {
          client.removeListener('error', onError);
          // A failed transaction leaves the connection mid-transaction: discard it rather than pool it.
          client.release(broken ?? false);
        }
      })(),
      'connect',
      undefined,
    );
    return r === true && !this.closed;
  }

  private scheduleProbe(): void {
    if (this.closed || this.probe) return;
    this.probeDelay = Math.min(2_000, this.probeDelay === 0 ? 100 : this.probeDelay * 2);
    this.probe = setTimeout(() => {
      this.probe = undefined;
      void this.connect();
    }, this.probeDelay);
    this.probe.unref();
  }

  /**
   * Every call that missed its deadline is counted once in deadlines.timeouts (the engine counts those as this
   * tier's errors), whichever of the three bounds ended it: a hung database answers nothing, so without this it
   * would show in no count at all, pg's query_timeout usually beating our sweep by a few ms. What the call's
   * promise says after its deadline (`late`) was counted then; only a lost connection or table is still news.
   */
  private report(op: string, err: unknown, late = false): void {
    if (this.closed) return;
    const broken = isConnectionError(err) || (err as { code?: unknown } | null)?.code === '42P01';
    if (broken) {
      // Gone, or the table was dropped: stop asking, and let the probe reconnect (and create the table again).
      this.up = false;
      this.scheduleProbe();
    }
    if (late && !broken) return;
    if (err === DEADLINE_MISSED || isQueryTimeout(err)) {
      this.deadlines.countTimeout();
      return;
    }
    this.onError(op, err);
  }

  /** One query under the tier's deadline; TIER_FAILED at once when the database is not usable now. */
  private query<R>(op: string, name: string | undefined, text: string, values: unknown[]): Promise<R[] | L2Failed> {
    if (!this.ready || this.pool.waitingCount >= this.maxWaiting) return FAILED;
    if (this.breaker.state !== CLOSED && this.breaker.blocked()) return FAILED;
    const config: PG.QueryConfig = name ? { name, text, values } : { text, values };
    return this.deadlines.run(this.send<R>(config, performance.now() + this.deadlines.timeoutMs), op, undefined);
  }

  /**
   * pool.query, except that a query whose deadline passed while it waited for a connection is not sent. pg-pool
   * keeps a waiting call queued until connectTimeout, long after its caller had TIER_FAILED: once a hung database
   * answers again, the pool would first run that whole backlog (up to maxWaiting stale reads and writes nobody
   * waits for) on its few connections, and the fresh calls queued behind it would miss their deadlines too.
   */
  private send<R>(config: PG.QueryConfig, deadline: number): Promise<R[]> {
    // Callbacks, not the promise forms: one promise per call instead of three, on the path every read takes.
    return new Promise<R[]>((resolve, reject) => {
      this.pool.connect((connectError, client, done) => {
        if (connectError || !client) return reject(connectError ?? new Error('no connection from the pool'));
        if (performance.now() >= deadline) {
          done();
          return reject(DEADLINE_MISSED);
        }
        let settled = false;
        // A failed query leaves the connection in doubt (a client-side timeout leaves it mid-query): pg-pool discards
        // a connection released with an error, as pool.query does.
        const finish = (err: Error | undefined, rows: R[] | undefined): void => {
          if (settled) return;
          settled = true;
          client.removeListener('error', onError);
          done(err);
          if (err) reject(err);
          else resolve(rows as R[]);
        };
        // A checked-out client has no pool listener: an 'error' event with none would throw.
        const onError = (err: Error): void => finish(err, undefined);
        client.once('error', onError);
        client.query(config, (err: Error | null, r: PG.QueryResult) => finish(err ?? undefined, err ? undefined : (r.rows as R[])));
      });
    });
  }

  /** The breaker's half-open probe: `SELECT 1` under the deadline, around query() (which the breaker still blocks). */
  private probeQuery(): Promise<boolean> {
    if (!this.ready) return Promise.resolve(false);
    return this.deadlines.run(this.send({ text: 'SELECT 1' }, performance.now() + this.deadlines.timeoutMs), 'ping', undefined).then((r) => r !== L2_FAILED);
  }

  private token(): string {
    return `${this.instanceId}:${(++this.tokens).toString(36)}`;
  }

  /** Moves the namespace generation (re-creating its row if it went); false when the database could not be asked. */
  private bump(): Promise<boolean> {
    return this.query('delete', 'tc_bump', this.sql.bump, [this.namespace, this.token()]).then((r) => r !== L2_FAILED);
  }

  getEntry(key: string): Promise<TierEntry<string> | undefined | L2Failed> {
    return this.query<EntryRow>('get', 'tc_get', this.sql.get, [this.namespace, key]).then((rows) => (rows === L2_FAILED ? rows : rowEntry(rows[0])));
  }

  getEntries(keys: readonly string[]): Promise<Array<TierEntry<string> | undefined> | L2Failed> {
    if (this.closed) return FAILED;
    if (keys.length === 0) return Promise.resolve([]);
    return this.query<EntryRow>('get', 'tc_gets', this.sql.gets, [this.namespace, Array.from(new Set(keys))]).then((rows) => {
      if (rows === L2_FAILED) return rows;
      const byKey = new Map<string, TierEntry<string>>();
      for (const row of rows) {
        const e = rowEntry(row);
        if (e && typeof row.key === 'string') byKey.set(row.key, e);
      }
      return keys.map((k) => byKey.get(k));
    });
  }

  setEntry(w: TierWrite<string>): Promise<boolean | L2Failed> {
    return this.setEntries([w]);
  }

  setEntries(writes: ReadonlyArray<TierWrite<string>>): Promise<boolean | L2Failed> {
    if (this.closed) return FAILED;
    if (writes.length === 0) return Promise.resolve(true);
    // One row per key, the last write winning: an upsert may not touch a row twice in one statement.
    const latest = new Map<string, TierWrite<string>>();
    for (const w of writes) latest.set(w.key, w);
    const keys: string[] = [];
    const values: string[] = [];
    const ttls: number[] = [];
    const tags: Array<string | null> = [];
    const bytes: number[] = [];
    const refused: string[] = [];
    let reserved = false;
    for (const w of latest.values()) {
      const { value, size } = this.storedForm(w);
      if (w.key === GEN_KEY) {
        // Not a cache key (the engine refuses it): the generation row must stay what it is.
        reserved = true;
        continue;
      }
      if (this.maxBytes !== undefined && size > this.maxBytes) {
        refused.push(w.key);
        continue;
      }
      keys.push(w.key);
      values.push(value);
      ttls.push(w.ttl);
      tags.push(w.tags && w.tags.length > 0 ? JSON.stringify(w.tags) : null);
      bytes.push(size);
    }
    return this.query('set', 'tc_set', this.sql.set, [this.namespace, keys, values, ttls, tags, bytes, refused]).then((r) => (r === L2_FAILED ? r : refused.length === 0 && !reserved));
  }

  deleteKeys(keys: readonly string[]): Promise<number | L2Failed> {
    if (this.closed) return FAILED;
    const list = Array.from(new Set(keys)).filter((k) => k !== GEN_KEY);
    if (list.length === 0) return Promise.resolve(0);
    return this.query<{ live: number }>('delete', 'tc_del', this.sql.del, [this.namespace, list, this.token(), this.fillWindow]).then((rows) => (rows === L2_FAILED ? rows : rows[0].live));
  }

  readFenced(key: string): Promise<{ entry: TierEntry<string> | undefined; mark: FillMark } | L2Failed> {
    return this.query<EntryRow & { fence: unknown; generation: unknown }>('get', 'tc_read_fenced', this.sql.readFenced, [this.namespace, key]).then((rows) => {
      if (rows === L2_FAILED) return rows;
      const row = rows[0];
      const generation = typeof row?.generation === 'string' ? row.generation : '';
      // The generation row went (a table emptied by hand): no fill can store until it is back, and a fresh token
      // matches no mark handed out before.
      if (generation === '') void this.query('get', 'tc_gen_init', this.sql.genInit, [this.namespace, this.token()]);
      return { entry: rowEntry(row), mark: { fence: typeof row?.fence === 'string' ? row.fence : '', generation } };
    });
  }

  /** What a write stores and weighs (the `bytes` that maxBytes trims by): compressed, a base64 value is its own size. */
  private storedForm(w: TierWrite<string>): { value: string; size: number } {
    const value = this.compressor === undefined ? w.value : this.compressor.pack(w.value);
    return { value, size: value !== w.value ? value.length : (w.bytes ?? Buffer.byteLength(w.value, 'utf8')) };
  }

  storeFenced(w: TierWrite<string>, mark: FillMark): Promise<boolean | L2Failed> {
    return this.upsertFenced(w, mark, 'tc_store_fenced', this.sql.storeFenced, mark.fence);
  }

  /** A replayed write's store (recovery-queue.ts): only over the entry the replay read (`expected`, as stored; undefined: none). */
  replaceFenced(w: TierWrite<string>, mark: FillMark, expected: string | undefined): Promise<boolean | L2Failed> {
    return this.upsertFenced(w, mark, 'tc_replace_fenced', this.sql.replaceFenced, expected ?? null);
  }

  private upsertFenced(w: TierWrite<string>, mark: FillMark, name: string, text: string, existing: string | null): Promise<boolean | L2Failed> {
    if (this.closed) return FAILED;
    const { value, size } = this.storedForm(w);
    // No generation row to lock: nothing would order this write against an invalidation.
    if (mark.generation === '' || w.key === GEN_KEY || (this.maxBytes !== undefined && size > this.maxBytes)) return Promise.resolve(false);
    const values = [this.namespace, w.key, value, w.ttl, w.tags ? Array.from(w.tags) : [], size, mark.generation, existing];
    return this.query<{ ok: number }>('set', name, text, values).then((rows) => (rows === L2_FAILED ? rows : rows.length > 0));
  }

  /** The namespace generation's token ('' when its row went: readFenced puts a fresh one back). */
  currentGeneration(): Promise<string | L2Failed> {
    return this.query<{ generation: unknown }>('get', 'tc_generation', this.sql.generation, [this.namespace]).then((rows) =>
      rows === L2_FAILED ? rows : typeof rows[0]?.generation === 'string' ? rows[0].generation : '',
    );
  }

  /** Calls `listener` each time the tier becomes usable (at boot, and after the probe brought it back). */
  onReady(listener: () => void): void {
    this.readyListeners.push(listener);
  }

  /** Moves the generation first (fills that read before it must not store), then deletes: incomplete when it could not move. */
  async deletePattern(glob: string): Promise<TierRemoval> {
    if (!this.ready) return NOT_ASKED;
    const bumped = await this.bump();
    const r = await this.deleteLike(glob);
    return bumped ? r : { removed: r.removed, complete: false };
  }

  private async deleteLike(glob: string): Promise<TierRemoval> {
    const { like, exact } = globToLike(glob);
    // Only `*` (SCAN's shortcut) and the empty glob take the empty key.
    const takesEmpty = glob === '*' || glob === '';
    let removed = 0;
    if (exact) {
      for (;;) {
        const rows = await this.query<{ total: number; live: number }>('pattern', 'tc_del_like', this.sql.delLike, [this.namespace, like, this.batchSize, takesEmpty]);
        if (rows === L2_FAILED) return { removed, complete: false };
        removed += rows[0].live;
        if (rows[0].total < this.batchSize) return { removed, complete: true };
      }
    }
    // Keyset walk over the LIKE superset; compileGlob decides, and the matches go by primary key.
    const matcher = compileGlob(glob);
    let after = '';
    for (;;) {
      const rows = await this.query<{ key: string }>('pattern', 'tc_walk', this.sql.walk, [this.namespace, like, after, this.batchSize]);
      if (rows === L2_FAILED) return { removed, complete: false };
      // `key > ''` skips the empty key, which no glob on this path matches anyway.
      const matched = rows.map((r) => r.key).filter((k) => typeof k === 'string' && matcher.test(k));
      if (matched.length > 0) {
        const d = await this.query<{ live: number }>('pattern', 'tc_del_rows', this.sql.delRows, [this.namespace, matched]);
        if (d === L2_FAILED) return { removed, complete: false };
        removed += d[0].live;
      }
      if (rows.length < this.batchSize) return { removed, complete: true };
      after = rows[rows.length - 1].key;
    }
  }

  /** Moves the generation first, as deletePattern does. */
  async deleteTags(tags: readonly string[]): Promise<TierRemoval> {
    if (!this.ready) return NOT_ASKED;
    if (tags.length === 0) return { removed: 0, complete: true };
    const list = Array.from(new Set(tags));
    const bumped = await this.bump();
    let removed = 0;
    for (;;) {
      const rows = await this.query<{ total: number; live: number }>('tag', 'tc_tags', this.sql.tags, [this.namespace, list, this.batchSize]);
      if (rows === L2_FAILED) return { removed, complete: false };
      removed += rows[0].live;
      if (rows[0].total < this.batchSize) return { removed, complete: bumped };
    }
  }

  ttlOf(key: string): Promise<number | undefined | L2Failed> {
    return this.query<EntryRow>('ttl', 'tc_ttl', this.sql.ttl, [this.namespace, key]).then((rows) => (rows === L2_FAILED ? rows : rowEntry(rows[0])?.ttl));
  }

  /**
   * Deletes expired rows (of every namespace in the table), at most maxBatches batches of batchSize; resolves
   * to how many went, or TIER_FAILED when the first batch could not be run.
   */
  async sweep(): Promise<number | L2Failed> {
    let n = 0;
    for (let i = 0; i < this.maxBatches; i++) {
      const rows = await this.query<{ n: number }>('sweep', 'tc_sweep', this.sql.sweep, [this.batchSize]);
      if (rows === L2_FAILED) return i === 0 ? rows : n;
      n += rows[0].n;
      if (rows[0].n < this.batchSize) break;
    }
    return n;
  }

  /** Deletes this namespace's oldest writes until it fits maxEntries and maxBytes (in bounded batches); resolves to how many went. */
  async trim(): Promise<number | L2Failed> {
    if (this.maxEntries === undefined && this.maxBytes === undefined) return 0;
    let n = 0;
    for (let i = 0; i < this.maxBatches; i++) {
      const size = await this.query<{ n: number; b: number }>('trim', 'tc_size', this.sql.size, [this.namespace]);
      if (size === L2_FAILED) return i === 0 ? size : n;
      this.lastSize = size[0].n;
      const excessEntries = this.maxEntries === undefined ? 0 : Math.max(0, size[0].n - this.maxEntries);
      const excessBytes = this.maxBytes === undefined ? 0 : Math.max(0, size[0].b - this.maxBytes);
      if (excessEntries === 0 && excessBytes === 0) break;
      const d = await this.query<{ n: number; b: number }>('trim', 'tc_trim', this.sql.trim, [this.namespace, this.batchSize, excessEntries, excessBytes]);
      if (d === L2_FAILED) return n;
      n += d[0].n;
      this.lastSize = Math.max(0, size[0].n - d[0].n);
      if (d[0].n === 0) break;
    }
    return n;
  }

  private async maintain(): Promise<void> {
    // Not while the breaker skips calls: maintenance is no caller's call, and would only count skips.
    if (this.maintaining || !this.ready || this.breaker.state !== CLOSED) return;
    this.maintaining = true;
    try {
      await this.sweep();
      await this.trim();
    } finally {
      this.maintaining = false;
    }
  }

  async health(): Promise<PostgresTierHealth> {
    const pool = { total: this.pool.totalCount, idle: this.pool.idleCount, waiting: this.pool.waitingCount };
    if (this.closed) return { ok: false, status: 'closed', pool };
    if (!this.ready) return { ok: false, status: 'down', pool };
    const open = breakerHealth(this.breaker);
    if (open) return { ...open, pool };
    const breaker = this.breaker.enabled ? { breaker: this.breaker.stateName } : undefined;
    const t0 = performance.now();
    // Statistics, not count(*): a health check must stay cheap on a table of millions of rows.
    const r = await this.query<{ rows: number; bytes: number }>(
      'health',
      undefined,
      'SELECT greatest(c.reltuples, 0)::float8 AS rows, pg_total_relation_size(c.oid)::float8 AS bytes FROM pg_class c WHERE c.oid = $1::regclass',
      [this.q],
    );
    if (r === L2_FAILED) return { ok: false, status: this.ready ? 'unresponsive' : 'down', pool, ...breaker };
    const latencyMs = performance.now() - t0;
    return { ok: true, status: 'ready', latencyMs, pool, table: r[0] ? { rows: r[0].rows, bytes: r[0].bytes } : undefined, ...breaker };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.up = false;
    this.breaker.stop();
    clearInterval(this.maintenance);
    if (this.probe) clearTimeout(this.probe);
    this.probe = undefined;
    this.deadlines.close();
    // pool.end() waits for checked-out connections, which a hung server holds until their query timeout.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.pool.end().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, this.connectTimeout)))]);
    clearTimeout(timer);
  }
}
