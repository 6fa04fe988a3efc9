import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type INestApplication, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { register } from 'prom-client';
import request from 'supertest';
import { CacheManagerService, TieredCacheModule } from '../../lib';
import { runPromtool } from '../support/promtool';
import { RedisServer } from '../support/redis-server';
import { waitFor } from '../support/wait-for';

const ROOT = join(__dirname, '..', '..');
const RULES = join(ROOT, 'ops', 'prometheus', 'tiered-cache.rules.yml');
const RULE_TESTS = join(ROOT, 'ops', 'prometheus', 'tiered-cache.rules.test.yml');
const DASHBOARD = join(ROOT, 'ops', 'grafana', 'tiered-cache.dashboard.json');
const DS = '${DS_PROMETHEUS}';
const quiet = { warn() {}, error() {} };

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  severity?: string;
  summary?: string;
  description?: string;
}

/**
 * The alert rules as the file writes them (one `- alert:` item per rule; `expr` on its line or as a `|` block).
 * A reader for this file's layout, not for YAML at large: the test checks it found as many rules as promtool.
 */
function readRules(text: string): Rule[] {
  const rules: Rule[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const alert = /^\s*- alert: (\S+)\s*$/.exec(lines[i]);
    if (alert) {
      rules.push({ alert: alert[1], expr: '' });
      continue;
    }
    const rule = rules[rules.length - 1];
    if (!rule) continue;
    const field = /^(\s*)(expr|for|severity|summary|description): ?(.*)$/.exec(lines[i]);
    if (!field) continue;
    const [, indent, name, rest] = field;
    if (name === 'expr' && rest.trim() === '|') {
      const block: string[] = [];
      while (i + 1 < lines.length && (lines[i + 1].trim() === '' || lines[i + 1].search(/\S/) > indent.length)) block.push(lines[++i].trim());
      rule.expr = block.join(' ').trim();
    } else {
      rule[name as Exclude<keyof Rule, 'alert'>] = rest.trim().replace(/^"(.*)"$/, '$1');
    }
  }
  return rules;
}

interface Panel {
  type: string;
  id: number;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Array<{ expr: string; datasource?: { uid: string } }>;
  panels?: Panel[];
}

interface Dashboard {
  __inputs: Array<{ name: string; type: string; pluginId: string }>;
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; datasource: { uid: string }; query: { query: string } | string; includeAll?: boolean; allValue?: string }> };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const rules = readRules(readFileSync(RULES, 'utf8'));
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const dashboardExprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));

/** Metric names in PromQL (our families: cache_*, and redis_cluster_* for Redis Cluster). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b((?:cache|redis_cluster)_[a-z0-9_]+)\b/g)].map((m) => m[1]);
}

/** An expression as Prometheus receives it from Grafana: the dashboard's variables and intervals filled in. */
function asSent(expr: string): string {
  return expr
    .replace(/\$__rate_interval|\$__interval/g, '2m')
    .replace(/\$__range/g, '1h')
    .replace(/\$(job|instance|cache|operation)\b/g, '.*');
}

describe('ops kit: Prometheus alert rules', () => {
  it('pass promtool check rules', () => {
    const r = runPromtool(['check', 'rules', RULES]);
    expect(r).toEqual({ status: 0, output: expect.stringContaining(`SUCCESS: ${rules.length} rules found`) });
  });

  it('fire as their promtool unit tests (tiered-cache.rules.test.yml) expect', () => {
    const r = runPromtool(['test', 'rules', RULE_TESTS]);
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
    // Every alert has at least one test in which it fires.
    const tests = readFileSync(RULE_TESTS, 'utf8');
    for (const rule of rules) expect(tests).toMatch(new RegExp(`alertname: ${rule.alert}\\n\\s*exp_alerts:\\n\\s*- exp_labels`));
  });

  it('each alert waits (for:), has a severity, a summary and a description, and aggregates by job and cache', () => {
    expect(rules.length).toBeGreaterThanOrEqual(15);
    for (const rule of rules) {
      expect({ alert: rule.alert, for: rule.for }).toEqual({ alert: rule.alert, for: expect.stringMatching(/^\d+m$/) });
      expect({ alert: rule.alert, severity: rule.severity }).toEqual({ alert: rule.alert, severity: expect.stringMatching(/^(critical|warning|info)$/) });
      expect(rule.summary).toEqual(expect.stringContaining('{{ $labels.'));
      expect(rule.description?.length).toBeGreaterThan(40);
      // Per instance (job, instance, cache[, tier]) or fleet-wide (job, cache): the `cache` label keeps caches apart.
      expect({ alert: rule.alert, expr: rule.expr }).toEqual({ alert: rule.alert, expr: expect.stringMatching(/by \(job, (instance, )?cache\b/) });
    }
    expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
  });
});

describe('ops kit: Grafana dashboard', () => {
  it('is an importable dashboard: schema 39+, the Prometheus data source as an input, unique ids, panels on the grid without overlap', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
    expect(dashboard.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' })]);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const boxes = panels.map((p) => ({ title: p.title, ...p.gridPos }));
    for (const b of boxes) {
      expect(b.x + b.w).toBeLessThanOrEqual(24);
      expect(b.w * b.h).toBeGreaterThan(0);
    }
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const [a, b] = [boxes[i], boxes[j]];
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        if (overlap) throw new Error(`panels "${a.title}" and "${b.title}" overlap`);
      }
    }
    for (const p of panels.filter((p) => p.type !== 'row')) {
      expect({ panel: p.title, uid: p.datasource?.uid }).toEqual({ panel: p.title, uid: DS });
      expect(p.targets?.length).toBeGreaterThan(0);
      for (const t of p.targets ?? []) expect(t.datasource?.uid).toBe(DS);
    }
  });

  it('has job, instance and cache variables (cache from label_values(cache_…, cache)), and every selector filters by them', () => {
    const vars = Object.fromEntries(dashboard.templating.list.map((v) => [v.name, v]));
    for (const name of ['job', 'instance', 'cache']) {
      expect(vars[name]).toEqual(expect.objectContaining({ type: 'query', includeAll: true, allValue: '.*' }));
      expect(vars[name].datasource.uid).toBe(DS);
    }
    const query = (name: string) => {
      const q = vars[name].query;
      return typeof q === 'string' ? q : q.query;
    };
    expect(query('cache')).toMatch(/^label_values\(cache_[a-z_]+\{.*\}, cache\)$/);
    expect(query('instance')).toMatch(/^label_values\(cache_[a-z_]+\{job=~"\$job"\}, instance\)$/);
    for (const expr of dashboardExprs) {
      const selectors = [...expr.matchAll(/\b(?:cache|redis_cluster)_[a-z0-9_]+(\{[^}]*\})?/g)];
      expect(selectors.length).toBeGreaterThan(0);
      for (const [whole, labels] of selectors) {
        expect({ selector: whole, labels }).toEqual({ selector: whole, labels: expect.stringContaining('cache=~"$cache"') });
        expect(labels).toContain('job=~"$job"');
        expect(labels).toContain('instance=~"$instance"');
      }
    }
  });

  it('has panels for every area, and every query is valid PromQL (promtool parses them once the variables are filled in)', () => {
    const titles = panels.map((p) => p.title.toLowerCase()).join('\n');
    for (const area of ['hit ratio per tier', 'latency quantiles', 'l2 up', 'bus up', 'evictions', 'invalidations by source', 'write-behind queue', 'stale served', 'refreshes', 'factory timeouts', 'circuit breaker state', 'recovery queue']) {
      expect(titles).toContain(area);
    }
    const dir = mkdtempSync(join(tmpdir(), 'ops-kit-'));
    try {
      const file = join(dir, 'dashboard-queries.yml');
      const records = dashboardExprs.map((e, i) => `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(asSent(e))}`);
      writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${records.join('\n')}\n`);
      const r = runPromtool(['check', 'rules', file]);
      expect(r).toEqual({ status: 0, output: expect.stringContaining(`SUCCESS: ${dashboardExprs.length} rules found`) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ops kit: every metric the dashboard and the alerts use is exported', () => {
  let redis: RedisServer;
  let app: INestApplication;

  beforeAll(async () => {
    redis = await RedisServer.start();
    @Module({
      imports: [
        PrometheusModule.register(),
        TieredCacheModule.forRoot({
          logger: quiet,
          redis: { url: redis.url, breaker: { failures: 5 } },
          writeBehind: true,
          l1: { hitRateTarget: { ratio: 0.5, window: 4 } },
          l2: { hitRateTarget: { ratio: 0.5, window: 4 } },
          metrics: { name: 'ops' },
        }),
      ],
    })
    class AppModule {}
    app = (await Test.createTestingModule({ imports: [AppModule] }).compile()).createNestApplication({ logger: false });
    await app.init();
  });

  afterAll(async () => {
    await app?.close();
    register.clear();
    await redis?.stop();
  });

  it('by a real app (L1 + Redis + bus + write-behind + breaker + hit-rate targets): cache_* families with series, redis_cluster_* declared', async () => {
    const cache = app.get(CacheManagerService);
    await waitFor('the bus is subscribed', () => cache.stats().bus.subscribed);
    for (let i = 0; i < 8; i++) await cache.set(`k${i}`, i);
    await cache.flush();
    for (let i = 0; i < 16; i++) await cache.get(`k${i % 10}`); // L1 hits and L1 misses down to L2
    await cache.getOrSet('f', () => 1);
    await cache.delete('k1');
    const text = (await request(app.getHttpServer()).get('/metrics').expect(200)).text;

    const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]));
    const withSeries = new Set([...text.matchAll(/^([a-z_:][a-z0-9_:]*)(?:\{[^}]*\})? \S+$/gm)].map((m) => m[1]));
    /** The family a sample name belongs to (a histogram's _bucket/_sum/_count are its own family's). */
    const family = (name: string) => {
      const base = name.replace(/_(bucket|sum|count)$/, '');
      return base !== name && types.get(base) === 'histogram' ? base : name;
    };

    const used = new Map<string, string>();
    for (const e of dashboardExprs) for (const n of metricNames(e)) used.set(n, 'dashboard');
    for (const r of rules) for (const n of metricNames(r.expr)) used.set(n, used.has(n) ? 'both' : 'rules');
    expect(used.size).toBeGreaterThan(30);

    const missing: string[] = [];
    for (const [name, where] of used) {
      const f = family(name);
      if (!types.has(f)) missing.push(`${name} (${where}): not exported`);
      else if (name !== f && !['bucket', 'sum', 'count'].includes(name.slice(f.length + 1))) missing.push(`${name} (${where}): not a sample of ${f}`);
      // Cluster gauges have series only for a cache on a Redis Cluster (cluster.spec.ts); declared here.
      else if (f.startsWith('cache_') && !withSeries.has(name)) missing.push(`${name} (${where}): no series`);
    }
    expect(missing).toEqual([]);
  });
});
