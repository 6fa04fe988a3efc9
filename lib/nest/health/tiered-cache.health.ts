import { Inject, Injectable, Optional } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { HealthIndicatorService } from '@nestjs/terminus';
import { DEFAULT_CACHE_NAME, TIERED_CACHE, TIERED_CACHE_NAME } from '../constants';
import { CacheRegistry } from '../cache-registry';
import { describeCache } from '../cache-name';
import { TieredCacheOptionsError } from '../../core/errors';
import { parseTimerDuration, type Duration } from '../../core/duration';
import type { RedisMode } from '../../core/tiers/redis-connection';
import type { TieredCache } from '../../core/tiered-cache';
import type { InvalidationBus } from '../../core/bus/invalidation-bus';
import type { TierTargetStats } from '../../core/tier-stats';
import { breakerHealth, type BreakerStateName } from '../../core/tiers/circuit-breaker';
import { probeRedis, type ClusterProbe } from './redis-probe';

export interface CacheHealthCheckOptions {
  /** Report down when Redis is unreachable (default false: the app still serves from L1, reported as degraded). */
  requireL2?: boolean;
  /** Upper bound on the whole check (default 1s). Redis that does not answer in time counts as unreachable. */
  timeout?: Duration;
  /**
   * The cache to report, by name (`forRoot({ name })`; `'default'` for the unnamed one). Default: this
   * indicator's own cache (the default cache's indicator when injected by type).
   */
  cache?: string;
  /**
   * Report down while a bootstrap warm-up is still running, within its `onBootstrap.readiness` bound (default false):
   * for a readiness probe, never a liveness one. See docs/warming.md.
   */
  requireWarmup?: boolean;
}

/** What a component (the invalidation bus, …) reports about itself; shown under its name in the details. */
export interface CacheComponentHealth {
  state: string;
  /** false marks the cache degraded (never down on its own). */
  healthy: boolean;
  /** false: a check with `requireWarmup` reports down (the warm-up component sets it while it warms). */
  ready?: boolean;
  [detail: string]: unknown;
}

export interface CacheL2Health {
  enabled: boolean;
  required: boolean;
  mode?: RedisMode;
  /** 'up'; 'degraded' when unreachable or (Cluster) not serving every slot. */
  status?: 'up' | 'degraded';
  reachable?: boolean;
  /** ioredis connection state (ready, connecting, reconnecting, …): where the reconnect loop stands. */
  connection?: string;
  pingMs?: number;
  usedMemory?: number;
  connectedClients?: number;
  cluster?: ClusterProbe;
  error?: string;
  /** Its circuit breaker, when on: anything but 'closed' is degraded, and Redis is then not probed (calls skip it). */
  breaker?: BreakerStateName;
}

/** A tier below L2 as the health details show it. */
export interface CacheTierHealth {
  kind: string;
  ok: boolean;
  status: string;
  /** PostgreSQL: the health query's round trip (ms), the pool, the table's estimated rows and bytes. */
  latencyMs?: number;
  pool?: { total: number; idle: number; waiting: number };
  table?: { rows: number; bytes: number };
  /** Its circuit breaker, when on: anything but 'closed' is not ok. */
  breaker?: BreakerStateName;
}

export interface CacheHealthDetails {
  l1: { enabled: boolean; entries: number; maxEntries: number; utilization: number };
  l2: CacheL2Health;
  /** The tiers below L2 (`tiers` option), by name: each one's own report (PostgreSQL: latency, pool, table). */
  tiers?: Record<string, CacheTierHealth>;
  /** Tiers with a `hitRateTarget`, by name: the target and the last judged window's ratio (null: warming up). */
  hitRateTargets?: Record<string, TierTargetStats>;
  [component: string]: unknown;
  /** Why the cache is degraded, when it is. */
  degraded?: string[];
}

export type CacheHealthResult<Key extends string> = Record<Key, { status: 'up' | 'down' } & CacheHealthDetails>;

/** `isHealthyAll`'s options: the same for every cache (no `cache`: it reports them all). */
export type CacheHealthAllOptions = Omit<CacheHealthCheckOptions, 'cache'>;

/** Companion kind under which each cache's indicator is kept in the app's CacheRegistry. */
const INDICATOR = Symbol('TieredCacheHealthIndicator');

type IndicatorService = Pick<HealthIndicatorService, 'check'>;

const DEFAULT_TIMEOUT_MS = 1_000;
const RESERVED_DETAILS = new Set(['l1', 'l2', 'tiers', 'hitRateTargets', 'degraded', 'status']);

/**
 * Terminus health indicator: `health.check([() => cacheHealth.isHealthy('cache')])`. Each cache of an app
 * has one (bound to that cache); any of them reports another cache with `{ cache: name }`, or every cache
 * with `isHealthyAll()`.
 * Redis being unreachable reports `up` with a degraded L2 (L1 still serves) unless `requireL2` is set.
 * @nestjs/terminus is loaded on the first check, so the cache module itself works without it.
 */
@Injectable()
export class TieredCacheHealthIndicator {
  private readonly components = new Map<string, () => CacheComponentHealth>();
  private service: IndicatorService | undefined;
  /** The cache this indicator reports by default (`'default'` for the unnamed cache). */
  readonly cacheName: string;

  constructor(
    @Inject(TIERED_CACHE) private readonly engine: TieredCache,
    @Optional() private readonly moduleRef?: ModuleRef,
    @Optional() @Inject(TIERED_CACHE_NAME) name?: string,
    @Optional() private readonly registry?: CacheRegistry,
  ) {
    this.cacheName = name ?? DEFAULT_CACHE_NAME;
    registry?.attach(this.cacheName, INDICATOR, this);
    const bus = engine.bus;
    if (bus) this.registerComponent('bus', () => busHealth(bus));
  }

  /**
   * Adds a component to the details (the invalidation bus registers itself as 'bus'). Returns the remover.
   * The callback must answer synchronously from state it already has: the check's time bound relies on it.
   */
  registerComponent(name: string, report: () => CacheComponentHealth): () => void {
    if (RESERVED_DETAILS.has(name)) throw new Error(`"${name}" is a reserved health detail name`);
    this.components.set(name, report);
    return () => {
      if (this.components.get(name) === report) this.components.delete(name);
    };
  }

  async isHealthy<const Key extends string>(key: Key, options: CacheHealthCheckOptions = {}): Promise<CacheHealthResult<Key>> {
    const session = this.indicatorService().check(key);
    const details = await this.details(options);
    const warming = options.requireWarmup === true && (details.warmup as CacheComponentHealth | undefined)?.ready === false;
    const down = (options.requireL2 === true && details.l2.status !== 'up') || warming;
    return (down ? session.down(details) : session.up(details)) as unknown as CacheHealthResult<Key>;
  }

  /**
   * Every cache of the app in one check, each its own result (judged up or down on its own): `key` for the
   * default cache, `<key>.<name>` for each named one — `{ cache: {…}, 'cache.scores': {…} }`. The default
   * cache's entry has the shape `isHealthy(key)` gives.
   */
  async isHealthyAll(key = 'cache', options: CacheHealthAllOptions = {}): Promise<Record<string, { status: 'up' | 'down' } & CacheHealthDetails>> {
    const names = this.registry?.names() ?? [this.cacheName];
    const results = await Promise.all(
      names.map((name) => this.isHealthy(name === DEFAULT_CACHE_NAME ? key : `${key}.${name}`, { ...options, cache: name })),
    );
    return Object.assign({}, ...results) as Record<string, { status: 'up' | 'down' } & CacheHealthDetails>;
  }

  /**
   * The details alone, without Terminus (for a stats endpoint or a custom check). Never throws, except for a
   * `cache` the app does not register.
   */
  async details(options: CacheHealthCheckOptions = {}): Promise<CacheHealthDetails> {
    if (options.cache !== undefined && options.cache !== this.cacheName) return this.indicatorOf(options.cache).details({ ...options, cache: undefined });
    const timeoutMs = parseTimerDuration('timeout', options.timeout ?? DEFAULT_TIMEOUT_MS);
    const required = options.requireL2 === true;
    const degraded: string[] = [];
    const s = this.engine.stats();
    // Side by side: the check's time bound covers both.
    const [l2, lower] = await Promise.all([this.l2Health(timeoutMs, required, degraded), this.engine.lowerTierHealth(timeoutMs) as Promise<Record<string, CacheTierHealth>>]);
    const details: CacheHealthDetails = {
      l1: { enabled: s.l1.enabled, entries: s.l1.size, maxEntries: s.l1.maxSize, utilization: round2(s.l1.utilization) },
      l2,
    };
    if (Object.keys(lower).length > 0) {
      details.tiers = lower;
      for (const [name, h] of Object.entries(lower)) if (!h.ok) degraded.push(`tier ${name} ${h.status}`);
    }
    for (const [name, t] of Object.entries(s.tiers)) {
      if (t.target === undefined) continue;
      (details.hitRateTargets ??= {})[name] = t.target;
      if (t.target.met === false) {
        degraded.push(`tier ${name} hit ratio ${pct(t.target.windowRatio ?? 0)} over its last ${t.target.window}+ lookups, below its target ${pct(t.target.ratio)}`);
      }
    }
    if (!this.components.has('bus')) details.bus = { state: 'disabled' };
    for (const [name, report] of this.components) {
      let c: CacheComponentHealth;
      try {
        c = report();
      } catch (err) {
        c = { state: 'error', healthy: false, error: err instanceof Error ? err.message : String(err) };
      }
      details[name] = c;
      if (!c.healthy) degraded.push(`${name} ${c.state}`);
    }
    if (degraded.length > 0) details.degraded = degraded;
    return details;
  }

  private async l2Health(timeoutMs: number, required: boolean, degraded: string[]): Promise<CacheL2Health> {
    const l2 = this.engine.l2;
    if (!l2) {
      if (required) degraded.push('L2 is not configured');
      return { enabled: false, required };
    }
    const open = breakerHealth(l2.breaker);
    if (open) {
      // The cache skips Redis now; a check must not wait on it either. The breaker's own probe decides when it is back.
      degraded.push(`L2 circuit breaker ${open.breaker}: calls skip Redis until its probe answers`);
      return { enabled: true, required, mode: l2.mode, status: 'degraded', connection: l2.status, breaker: open.breaker };
    }
    const probe = await probeRedis(l2, timeoutMs);
    const health: CacheL2Health = { enabled: true, required, mode: l2.mode, status: 'up', connection: l2.status, ...probe };
    if (l2.breaker.enabled) health.breaker = l2.breaker.stateName;
    if (!probe.reachable) {
      health.status = 'degraded';
      degraded.push(`L2 unreachable: ${probe.error ?? 'unknown error'}`);
    } else if (probe.cluster && (probe.cluster.state !== 'ok' || !probe.cluster.allSlotsCovered)) {
      health.status = 'degraded';
      degraded.push(`Redis Cluster state ${probe.cluster.state}, ${probe.cluster.slotsOk} of 16384 slots served`);
    }
    return health;
  }

  private indicatorOf(name: string): TieredCacheHealthIndicator {
    const other = this.registry?.attached<TieredCacheHealthIndicator>(name, INDICATOR);
    if (other === undefined) {
      const known = this.registry?.names() ?? [this.cacheName];
      throw new TieredCacheOptionsError('cache', name, `${describeCache(name)} is not registered in this app (caches: ${known.map((n) => `'${n}'`).join(', ')})`);
    }
    return other;
  }

  private indicatorService(): IndicatorService {
    if (this.service) return this.service;
    let terminus: typeof import('@nestjs/terminus');
    try {
      terminus = require('@nestjs/terminus') as typeof import('@nestjs/terminus');
    } catch {
      throw new Error('TieredCacheHealthIndicator needs @nestjs/terminus (npm install @nestjs/terminus)');
    }
    try {
      // The app's instance when TerminusModule is imported; it holds no state, so a fresh one is equivalent.
      this.service = this.moduleRef?.get(terminus.HealthIndicatorService, { strict: false }) ?? new terminus.HealthIndicatorService();
    } catch {
      this.service = new terminus.HealthIndicatorService();
    }
    return this.service;
  }
}

/**
 * Not subscribed means L1 may miss other instances' changes (the engine then reads through to L2): degraded.
 * An engine without L1 only publishes: healthy.
 */
function busHealth(bus: InvalidationBus): CacheComponentHealth {
  const s = bus.stats();
  return {
    state: bus.state,
    healthy: bus.state === 'subscribed' || bus.state === 'publishing',
    channel: bus.channel,
    connection: bus.connection,
    overwrites: s.overwrites,
    retryQueue: s.retryQueue,
    l1ClearsOnReconnect: s.l1ClearsOnReconnect,
  };
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

function pct(ratio: number): string {
  return `${Math.round(ratio * 1000) / 10} %`;
}
