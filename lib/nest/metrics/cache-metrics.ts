import type { Cluster } from 'ioredis';
import type { Counter, Gauge } from 'prom-client';
import { TieredCacheOptionsError } from '../../core/errors';
import { invalidationCount, type CacheOperation, type CacheObserver, type CacheTier, type InvalidationSource } from '../../core/observer';
import type { RecoveryStats } from '../../core/recovery-queue';
import { ratio, type CacheStats, type TierStats } from '../../core/stats';
import type { CacheChange, TieredCache } from '../../core/tiered-cache';
import { probeClusterHealth, type ClusterProbe } from '../health/redis-probe';
import type { MetricsRegistry, TieredCacheMetricsOptions } from '../../core/metrics-options.interface';
import { loadPromClient, type PromClientModule } from './prom-client.loader';
import { SeriesHistogram, type HistogramSeries } from './series-histogram';
import { engineInternals } from '../../core/tiered-cache';
import { breakerStateValue, type BreakerStats } from '../../core/tiers/circuit-breaker';
import type { BusStats } from '../../core/bus/bus-stats';

/** Fine enough at the low end for L1 hits (microseconds), wide enough for an L2 call at its deadline. */
export const DEFAULT_DURATION_BUCKETS = [
  0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
  0.25, 0.5, 1, 2.5,
];

const CLUSTER_PROBE_TIMEOUT_MS = 1_000;
const RECOVERY_OUTCOMES = ['replayed', 'dropped', 'overflowed'] as const;
// The op names come from RedisTier (a closed set in code); the cap only guards against a future bug there.
const MAX_ERROR_OPS = 32;
const INVALIDATION_SOURCES: readonly InvalidationSource[] = ['api', 'event', 'bus', 'tag', 'pattern'];

/** A warmer's figures as a scrape reads them (lib/nest/warmup reports them per cache with reportWarmupMetrics). */
export interface WarmupMetrics {
  readonly warmer: string;
  readonly keys: { readonly ok: number; readonly failed: number; readonly skipped: number };
  readonly runs: Readonly<Record<(typeof WARMUP_RUN_RESULTS)[number], number>>;
  readonly running: boolean;
  /** The last run that ran: how long it took (s) and when it ended (Unix ms). */
  readonly last?: { readonly durationSeconds: number; readonly endedAtMs: number };
}

const WARMUP_RUN_RESULTS = ['completed', 'cancelled', 'failed', 'skipped'] as const;
const warmupSources = new WeakMap<TieredCache, Set<() => Iterable<WarmupMetrics>>>();

/** Adds a cache's warmers to its metrics (read when scraped); returns the remover. Warmer names are fixed at boot. */
export function reportWarmupMetrics(engine: TieredCache, source: () => Iterable<WarmupMetrics>): () => void {
  let set = warmupSources.get(engine);
  if (set === undefined) warmupSources.set(engine, (set = new Set()));
  set.add(source);
  return () => {
    set.delete(source);
  };
}

/** Per-engine state: pushes from the engine land in plain fields here; scrapes read them. */
class EngineRecorder implements CacheObserver {
  readonly errors = new Map<string, number>();
  readonly invalidations: Record<InvalidationSource, number> = { api: 0, event: 0, bus: 0, tag: 0, pattern: 0 };
  // Series resolved once per (tier, operation): no label hashing or allocation per observation.
  private readonly children: Record<CacheTier, Partial<Record<CacheOperation, HistogramSeries>>> = { l1: {}, l2: {} };
  private clusterProbe: { at: number; result: Promise<ClusterProbe | undefined> } | undefined;

  constructor(
    readonly engine: TieredCache,
    readonly name: string,
    private readonly histogram: SeriesHistogram,
  ) {}

  duration(operation: CacheOperation, tier: CacheTier, seconds: number): void {
    let child = this.children[tier][operation];
    if (child === undefined) {
      child = this.histogram.withLabels({ cache: this.name, operation, tier });
      this.children[tier][operation] = child;
    }
    child.observe(seconds);
  }

  l2Error(operation: string): void {
    const op = this.errors.has(operation) || this.errors.size < MAX_ERROR_OPS ? operation : 'other';
    this.errors.set(op, (this.errors.get(op) ?? 0) + 1);
  }

  invalidation(source: InvalidationSource, count: number): void {
    if (source in this.invalidations) this.invalidations[source] += count;
  }

  /** This instance's own changes: deletes and clear() count as api. Overwrites are writes and count nothing. */
  onChange(change: CacheChange): void {
    const n = invalidationCount(change);
    if (n > 0) this.invalidations[change.type === 'tags' ? 'tag' : change.type === 'pattern' ? 'pattern' : 'api'] += n;
  }

  /** One CLUSTER INFO/NODES round per scrape, shared by the gauges that need it. */
  cluster(): Promise<ClusterProbe | undefined> {
    const now = Date.now();
    if (!this.clusterProbe || now - this.clusterProbe.at > 1_000) {
      const l2 = this.engine.l2;
      const result = l2 ? probeClusterHealth(l2.client as Cluster, CLUSTER_PROBE_TIMEOUT_MS) : Promise.resolve(undefined);
      this.clusterProbe = { at: now, result };
    }
    return this.clusterProbe.result;
  }

  removeSeries(): void {
    for (const tier of ['l1', 'l2'] as const) {
      for (const operation of Object.keys(this.children[tier])) this.histogram.remove({ cache: this.name, operation, tier });
    }
  }
}

/**
 * The cache's metrics in one registry. Counters and gauges are read from `engine.stats()` when Prometheus
 * scrapes (collect callbacks), so a cache hit pays nothing for them; only the duration histogram and the
 * error/invalidation counts are pushed, through the engine's observer hooks.
 * Labels: `cache` (a fixed name per cache), `tier`, `operation`, `source` — all bounded; never a key.
 */
class CacheMetricSet {
  readonly recorders = new Set<EngineRecorder>();
  readonly histogram: SeriesHistogram;
  private readonly all: Array<readonly [name: string, metric: object]>;

  constructor(
    prom: PromClientModule,
    private readonly registry: MetricsRegistry,
    buckets: number[],
  ) {
    const set = this;
    const each = (fn: (r: EngineRecorder, s: ReturnType<TieredCache['stats']>) => void) => {
      for (const r of set.recorders) fn(r, r.engine.stats());
    };
    /** A counter or gauge filled when scraped: reset, then set from the engines' state. */
    const collected = <M extends Counter<string> | Gauge<string>>(
      Metric: new (config: { name: string; help: string; labelNames: string[]; registers: []; collect(this: M): void | Promise<void> }) => M,
      name: string,
      help: string,
      labelNames: string[],
      fill: (m: M) => void | Promise<void>,
    ) =>
      [name, new Metric({
        name,
        help,
        labelNames,
        registers: [],
        collect() {
          this.reset();
          return fill(this);
        },
      })] as const;
    const counter = (name: string, help: string, labelNames: string[], fill: (c: Counter<string>) => void) =>
      collected(prom.Counter<string>, name, help, labelNames, fill);
    const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge<string>) => void | Promise<void>) =>
      collected(prom.Gauge<string>, name, help, labelNames, fill);
    const eachWarmer = (fn: (r: EngineRecorder, w: WarmupMetrics) => void) => {
      for (const r of set.recorders) for (const source of warmupSources.get(r.engine) ?? []) for (const w of source()) fn(r, w);
    };
    const breakerCounter = (name: string, help: string, value: (b: BreakerStats) => number) =>
      counter(name, help, ['cache', 'tier'], (c) =>
        each((r, s) => {
          for (const [tier, b] of breakerTiers(s)) c.inc({ cache: r.name, tier }, value(b));
        }),
      );
    const busCounter = (name: string, help: string, value: (b: BusStats) => number) =>
      counter(name, help, ['cache'], (c) =>
        each((r, s) => {
          if (s.bus.enabled) c.inc({ cache: r.name }, value(s.bus));
        }),
      );

    this.histogram = new SeriesHistogram(
      'cache_operation_duration_seconds',
      'Duration of cache operations by the deepest tier reached (l1: answered in-process, l2: Redis involved). ' +
        'get and getOrSet are sampled: 1 call in 8 is timed, getOrSet without its factory; other operations are timed on every call.',
      ['cache', 'operation', 'tier'],
      buckets,
    );

    this.all = [
      counter('cache_hits_total', 'Cache hits by tier.', ['cache', 'tier'], (c) =>
        each((r, s) => {
          if (s.l1.enabled) c.inc({ cache: r.name, tier: 'l1' }, s.l1.hits);
          if (s.l2.enabled) c.inc({ cache: r.name, tier: 'l2' }, s.l2.hits);
          for (const [tier, t] of lowerTiers(s)) c.inc({ cache: r.name, tier }, t.hits);
        }),
      ),
      counter('cache_misses_total', 'Cache misses by tier (an L1 miss that L2 answers counts as an L1 miss and an L2 hit).', ['cache', 'tier'], (c) =>
        each((r, s) => {
          if (s.l1.enabled) c.inc({ cache: r.name, tier: 'l1' }, s.l1.misses);
          if (s.l2.enabled) c.inc({ cache: r.name, tier: 'l2' }, s.l2.misses);
          for (const [tier, t] of lowerTiers(s)) c.inc({ cache: r.name, tier }, t.misses);
        }),
      ),
      gauge('cache_hit_ratio', 'Hits / lookups since start, 0..1, per tier and overall (tier="overall").', ['cache', 'tier'], (g) => {
        const byName = new Map<string, { l1: [number, number] | undefined; l2: [number, number] | undefined; all: [number, number]; lower: Map<string, [number, number]> }>();
        const add = (acc: [number, number] | undefined, hits: number, misses: number): [number, number] =>
          acc ? [acc[0] + hits, acc[1] + misses] : [hits, misses];
        each((r, s) => {
          const a = byName.get(r.name) ?? { l1: undefined, l2: undefined, all: [0, 0], lower: new Map<string, [number, number]>() };
          for (const [tier, t] of lowerTiers(s)) a.lower.set(tier, add(a.lower.get(tier), t.hits, t.misses));
          a.all = add(a.all, s.overall.hits, s.overall.misses);
          if (s.l1.enabled) a.l1 = add(a.l1, s.l1.hits, s.l1.misses);
          if (s.l2.enabled) a.l2 = add(a.l2, s.l2.hits, s.l2.misses);
          byName.set(r.name, a);
        });
        for (const [cache, a] of byName) {
          g.set({ cache, tier: 'overall' }, ratio(...a.all));
          if (a.l1) g.set({ cache, tier: 'l1' }, ratio(...a.l1));
          if (a.l2) g.set({ cache, tier: 'l2' }, ratio(...a.l2));
          for (const [tier, hm] of a.lower) g.set({ cache, tier }, ratio(...hm));
        }
      }),
      gauge(
        'cache_hit_rate_target_met',
        "1 when a tier with a hitRateTarget met it over its last judged window of lookups, 0 when it fell short; no series while it warms up.",
        ['cache', 'tier'],
        (g) =>
          each((r, s) => {
            for (const [tier, t] of Object.entries(s.tiers)) if (t.target && t.target.met !== null) g.set({ cache: r.name, tier }, t.target.met ? 1 : 0);
          }),
      ),
      gauge('cache_hit_rate_target_ratio', "A tier's hitRateTarget (0..1), for dashboards to draw next to its hit ratio; only tiers with a target.", ['cache', 'tier'], (g) =>
        each((r, s) => {
          for (const [tier, t] of Object.entries(s.tiers)) if (t.target) g.set({ cache: r.name, tier }, t.target.ratio);
        }),
      ),
      ['cache_operation_duration_seconds', this.histogram],
      gauge('cache_l1_entries', 'Entries held in L1.', ['cache'], (g) => each((r, s) => g.inc({ cache: r.name }, s.l1.size))),
      gauge('cache_l1_max_entries', 'L1 capacity in entries (l1.maxEntries).', ['cache'], (g) =>
        each((r, s) => g.inc({ cache: r.name }, s.l1.maxSize)),
      ),
      gauge(
        'cache_l1_memory_bytes',
        'Approximate bytes held in L1, from the serialized size of each entry; tracked only when l1.maxBytes is set (else 0).',
        ['cache'],
        (g) => each((r, s) => g.inc({ cache: r.name }, s.l1.bytes)),
      ),
      counter('cache_evictions_total', 'L1 entries evicted to make room (expiry and deletes not included).', ['cache'], (c) =>
        each((r, s) => c.inc({ cache: r.name }, s.l1.evictions)),
      ),
      counter('cache_promotions_total', 'Values copied from L2 into L1 after an L2 hit.', ['cache'], (c) =>
        each((r, s) => c.inc({ cache: r.name }, s.l2.promotions)),
      ),
      counter(
        'cache_errors_total',
        'Failed cache calls. operation is the Redis call that failed (get, set, delete, scan, connection, ...), ' +
          '"timeout" for calls abandoned at the command deadline, "decode" for undecodable stored values.',
        ['cache', 'tier', 'operation'],
        (c) =>
          each((r, s) => {
            for (const [operation, n] of r.errors) c.inc({ cache: r.name, tier: 'l2', operation }, n);
            if (s.l2.enabled) {
              c.inc({ cache: r.name, tier: 'l2', operation: 'timeout' }, s.l2.timeouts);
              c.inc({ cache: r.name, tier: 'l2', operation: 'decode' }, s.l2.corrupt);
            }
            for (const [tier, t] of lowerTiers(s)) c.inc({ cache: r.name, tier, operation: 'command' }, t.errors);
          }),
      ),
      counter(
        'cache_invalidations_total',
        'Invalidations by source: keys deleted through the API (and clear()), tags and patterns invalidated, other ' +
          "instances' invalidations received over the bus and applied to L1 (bus; not writes, not the L1 clear on resubscribe), " +
          'domain events handled (event; their deletes also count under api/tag/pattern).',
        ['cache', 'source'],
        (c) =>
          each((r) => {
            for (const source of INVALIDATION_SOURCES) c.inc({ cache: r.name, source }, r.invalidations[source]);
          }),
      ),
      gauge(
        'cache_circuit_breaker_state',
        "A remote tier's circuit breaker: 0 closed (calls go out), 1 half-open (its probe is out), 2 open (calls skipped). " +
          'Only tiers whose breaker is on; several caches of one name report the most open.',
        ['cache', 'tier'],
        (g) => {
          const worst = new Map<string, { cache: string; tier: string; v: number }>();
          each((r, s) => {
            for (const [tier, b] of breakerTiers(s)) {
              const id = `${r.name}\u0000${tier}`;
              const v = breakerStateValue(b.state);
              if ((worst.get(id)?.v ?? -1) < v) worst.set(id, { cache: r.name, tier, v });
            }
          });
          for (const { cache, tier, v } of worst.values()) g.set({ cache, tier }, v);
        },
      ),
      breakerCounter('cache_circuit_breaker_opens_total', "Times a remote tier's circuit breaker opened (from closed, or again after a failed probe).", (b) => b.opened),
      breakerCounter('cache_circuit_breaker_skipped_total', 'Calls to a remote tier its open circuit breaker answered as failed without sending them.', (b) => b.skipped),
      gauge('cache_l2_up', '1 when the Redis connection is ready, else 0 (only for caches with L2).', ['cache'], (g) => {
        const up = new Map<string, number>();
        each((r) => {
          if (r.engine.l2) up.set(r.name, Math.min(up.get(r.name) ?? 1, r.engine.l2.ready ? 1 : 0));
        });
        for (const [cache, v] of up) g.set({ cache }, v);
      }),
      gauge(
        'cache_bus_up',
        '1 when the invalidation bus hears every change (subscribed; or publish-only, for a cache without L1), else 0 ' +
          '(connecting, or the subscription was lost: L1 is not trusted meanwhile). Only caches with a bus.',
        ['cache'],
        (g) => {
          const up = new Map<string, number>();
          each((r) => {
            const bus = r.engine.bus;
            if (bus) up.set(r.name, Math.min(up.get(r.name) ?? 1, bus.state === 'subscribed' || bus.state === 'publishing' ? 1 : 0));
          });
          for (const [cache, v] of up) g.set({ cache }, v);
        },
      ),
      busCounter('cache_bus_published_total', 'Changes this instance published on the invalidation bus.', (b) => b.published),
      busCounter('cache_bus_publish_failures_total', 'Publishes that failed (kept in the retry queue and sent again).', (b) => b.publishFailures),
      busCounter('cache_bus_received_total', "Other instances' messages received on the invalidation bus (own echoes not included).", (b) => b.received),
      busCounter('cache_bus_malformed_total', 'Bus messages ignored as malformed, oversized or of another wire format.', (b) => b.malformed),
      busCounter(
        'cache_bus_resubscribe_clears_total',
        'Times L1 was emptied because the bus subscription had been lost (messages published meanwhile were missed).',
        (b) => b.l1ClearsOnReconnect,
      ),
      busCounter(
        'cache_bus_retry_overflows_total',
        'Times the bus retry queue overflowed bus.retryQueueSize and its changes were collapsed into one clear.',
        (b) => b.retryOverflows,
      ),
      gauge('cache_bus_retry_queue_length', 'Changes waiting to be (re)published on the invalidation bus.', ['cache'], (g) =>
        each((r, s) => {
          if (s.bus.enabled) g.inc({ cache: r.name }, s.bus.retryQueue);
        }),
      ),
      gauge('cache_write_behind_queue_length', 'L2 writes queued by write-behind, not yet sent.', ['cache'], (g) =>
        each((r, s) => g.inc({ cache: r.name }, s.writeBehind.queueLength)),
      ),
      gauge(
        'cache_l2_pending_invalidations',
        'Invalidations (keys, patterns, tags; 1 per clear) that could not reach Redis yet and are being retried.',
        ['cache'],
        (g) => each((r, s) => g.inc({ cache: r.name }, s.l2.pendingInvalidations)),
      ),
      counter('cache_l2_deferred_invalidations_total', 'Invalidations that could not reach Redis when made and were kept for replay.', ['cache'], (c) =>
        each((r, s) => c.inc({ cache: r.name }, s.l2.deferredInvalidations)),
      ),
      counter(
        'cache_stale_served_total',
        'Stale copies (past their TTL, within grace) answered by getOrSet, by why: "revalidate" (served at once, ' +
          'refreshed in the background), "fail_safe" (the factory failed or passed timeout.hard), "soft_timeout".',
        ['cache', 'reason'],
        (c) =>
          each((r, s) => {
            const x = s.resilience;
            c.inc({ cache: r.name, reason: 'fail_safe' }, x.failSafe);
            c.inc({ cache: r.name, reason: 'soft_timeout' }, x.softTimeouts);
            c.inc({ cache: r.name, reason: 'revalidate' }, Math.max(0, x.staleServed - x.failSafe - x.softTimeouts));
          }),
      ),
      counter('cache_refreshes_total', 'Background refreshes (of a stale copy, or early), by result: "started", "failed".', ['cache', 'result'], (c) =>
        each((r, s) => {
          c.inc({ cache: r.name, result: 'started' }, s.resilience.refreshes);
          c.inc({ cache: r.name, result: 'failed' }, s.resilience.refreshFailures);
        }),
      ),
      counter('cache_factory_timeouts_total', 'getOrSet factories that passed timeout.soft or timeout.hard, by kind.', ['cache', 'kind'], (c) =>
        each((r, s) => {
          c.inc({ cache: r.name, kind: 'soft' }, s.resilience.softTimeouts);
          c.inc({ cache: r.name, kind: 'hard' }, s.resilience.hardTimeouts);
        }),
      ),
      gauge('cache_recovery_queued', 'Writes a shared tier missed, queued and replayed when it is back (auto-recovery), per tier.', ['cache', 'tier'], (g) =>
        each((r, s) => {
          if (s.l2.enabled) g.inc({ cache: r.name, tier: 'l2' }, s.l2.recovery.queued);
          for (const [tier, t] of lowerTiers(s)) if (t.recovery) g.inc({ cache: r.name, tier }, t.recovery.queued);
        }),
      ),
      counter(
        'cache_recovery_writes_total',
        'Queued writes by outcome: replayed (written back), dropped (replaced by a delete of the key), overflowed (pushed out of the full queue; the key is deleted instead).',
        ['cache', 'tier', 'outcome'],
        (c) =>
          each((r, s) => {
            const add = (tier: string, n: RecoveryStats): void => {
              for (const outcome of RECOVERY_OUTCOMES) c.inc({ cache: r.name, tier, outcome }, n[outcome]);
            };
            if (s.l2.enabled) add('l2', s.l2.recovery);
            for (const [tier, t] of lowerTiers(s)) if (t.recovery) add(tier, t.recovery);
          }),
      ),
      counter('cache_write_behind_dropped_total', 'Queued write-behind writes dropped because the queue was full.', ['cache'], (c) =>
        each((r, s) => c.inc({ cache: r.name }, s.writeBehind.dropped)),
      ),
      counter('cache_warmup_keys_total', 'Keys warmed by cache warmers, by result: ok (stored), failed, skipped (nothing to store, or already cached).', ['cache', 'warmer', 'result'], (c) =>
        eachWarmer((r, w) => {
          c.inc({ cache: r.name, warmer: w.warmer, result: 'ok' }, w.keys.ok);
          c.inc({ cache: r.name, warmer: w.warmer, result: 'failed' }, w.keys.failed);
          c.inc({ cache: r.name, warmer: w.warmer, result: 'skipped' }, w.keys.skipped);
        }),
      ),
      counter(
        'cache_warmup_runs_total',
        'Warm-up runs by how they ended: completed, cancelled, failed (reading the ids failed), skipped (another instance held the lease, or a run was still going on).',
        ['cache', 'warmer', 'result'],
        (c) =>
          eachWarmer((r, w) => {
            for (const result of WARMUP_RUN_RESULTS) c.inc({ cache: r.name, warmer: w.warmer, result }, w.runs[result]);
          }),
      ),
      gauge('cache_warmup_running', '1 while a warmer runs on this instance, else 0.', ['cache', 'warmer'], (g) =>
        eachWarmer((r, w) => g.set({ cache: r.name, warmer: w.warmer }, w.running ? 1 : 0)),
      ),
      gauge('cache_warmup_last_run_duration_seconds', "Duration of a warmer's last run on this instance (no series before its first).", ['cache', 'warmer'], (g) =>
        eachWarmer((r, w) => {
          if (w.last) g.set({ cache: r.name, warmer: w.warmer }, w.last.durationSeconds);
        }),
      ),
      gauge('cache_warmup_last_run_timestamp_seconds', "When a warmer's last run on this instance ended, in Unix seconds (no series before its first).", ['cache', 'warmer'], (g) =>
        eachWarmer((r, w) => {
          if (w.last) g.set({ cache: r.name, warmer: w.warmer }, w.last.endedAtMs / 1000);
        }),
      ),
      gauge('redis_cluster_nodes_healthy', 'Redis Cluster nodes seen connected and not failing (CLUSTER NODES); 0 when the cluster does not answer.', ['cache'], (g) =>
        eachCluster(set, (r, p) => g.set({ cache: r.name }, p?.nodesHealthy ?? 0)),
      ),
      gauge('redis_cluster_nodes_known', 'Redis Cluster nodes known to the cluster (CLUSTER NODES).', ['cache'], (g) =>
        eachCluster(set, (r, p) => g.set({ cache: r.name }, p?.nodesTotal ?? 0)),
      ),
      gauge('redis_cluster_slots_ok', 'cluster_slots_ok from CLUSTER INFO: 16384 when every hash slot is served; 0 when the cluster does not answer.', ['cache'], (g) =>
        eachCluster(set, (r, p) => g.set({ cache: r.name }, p?.slotsOk ?? 0)),
      ),
    ];
  }

  /** (Re)registers after the app cleared the registry (common between tests). */
  ensureRegistered(): void {
    for (const [name, m] of this.all) {
      const existing = this.registry.getSingleMetric(name);
      if (existing === m) continue;
      if (existing !== undefined) {
        throw new Error(`tiered-cache metrics: the registry already has a metric named ${name} that this cache did not create`);
      }
      this.registry.registerMetric(m);
    }
  }

  unregister(): void {
    for (const [name, m] of this.all) if (this.registry.getSingleMetric(name) === m) this.registry.removeSingleMetric(name);
  }
}

async function eachCluster(set: CacheMetricSet, fn: (r: EngineRecorder, p: ClusterProbe | undefined) => void): Promise<void> {
  const rs = [...set.recorders].filter((r) => r.engine.l2?.mode === 'cluster');
  const probes = await Promise.all(rs.map((r) => r.cluster()));
  rs.forEach((r, i) => fn(r, probes[i]));
}

const sets = new WeakMap<MetricsRegistry, CacheMetricSet>();

/**
 * Registers a cache's metrics (once per registry; several caches share the series, told apart by the
 * `cache` label). Returns the detach function, or undefined when prom-client is not installed and
 * metrics were not explicitly required.
 */
export function attachCacheMetrics(engine: TieredCache, options: TieredCacheMetricsOptions = {}): (() => void) | undefined {
  if (options.enabled === false) return undefined;
  const prom = loadPromClient();
  if (!prom) {
    if (options.enabled === true) {
      throw new TieredCacheOptionsError('metrics.enabled', true, 'prom-client is not installed (npm install prom-client)');
    }
    return undefined;
  }
  const registry = options.registry ?? (prom.register as unknown as MetricsRegistry);
  let set = sets.get(registry);
  if (!set) {
    set = new CacheMetricSet(prom, registry, options.buckets ?? DEFAULT_DURATION_BUCKETS);
    sets.set(registry, set);
  }
  set.ensureRegistered();
  const recorder = new EngineRecorder(engine, options.name ?? engine.options.keyPrefix, set.histogram);
  if ([...set.recorders].some((r) => r.name === recorder.name)) {
    // Legitimate for several app instances in one process (tests); a mistake for two caches of one app.
    engineInternals(engine).log(
      'warn',
      'metrics:name',
      `tiered-cache metrics: another cache in this registry is named "${recorder.name}"; their series are summed ` +
        '(set metrics.name or a distinct keyPrefix to tell them apart)',
    );
  }
  set.recorders.add(recorder);
  const unobserve = engine.observe(recorder);
  const unsubscribe = engine.onChange((c) => recorder.onChange(c));
  const owner = set;
  let attached = true;
  return () => {
    if (!attached) return;
    attached = false;
    unobserve();
    unsubscribe();
    owner.recorders.delete(recorder);
    // Another live cache with the same name shares these series.
    if (![...owner.recorders].some((r) => r.name === recorder.name)) recorder.removeSeries();
    // The last cache out leaves the registry as it found it (an app or test module can be created again).
    if (owner.recorders.size === 0) owner.unregister();
  };
}

/** Each remote tier with a breaker, labelled as the other per-tier series are: 'l2' for the first Redis tier, the rest by name. */
function breakerTiers(s: CacheStats): Array<[string, BreakerStats]> {
  const first = s.l1.enabled ? 2 : 1;
  const out: Array<[string, BreakerStats]> = [];
  for (const [name, t] of Object.entries(s.tiers)) if (t.breaker) out.push([t.level >= first ? name : 'l2', t.breaker]);
  return out;
}

/** The tiers below L2 (`tiers` option), by their configured names: a bounded label set, fixed at boot. */
function lowerTiers(s: CacheStats): Array<[string, TierStats]> {
  return Object.entries(s.tiers).filter(([, t]) => t.level >= (s.l1.enabled ? 2 : 1));
}
