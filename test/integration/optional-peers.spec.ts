import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import * as ts from 'typescript';

const root = join(__dirname, '..', '..');

/** Transpiles lib/ to plain JS (no type check: tsc covers that) so a separate node process can load it. */
function transpileLib(outDir: string): void {
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((f) => {
      const p = join(dir, f);
      return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
    });
  for (const file of walk(join(root, 'lib'))) {
    const out = ts.transpileModule(readFileSync(file, 'utf8'), {
      fileName: file,
      compilerOptions: {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.CommonJS,
        experimentalDecorators: true,
        emitDecoratorMetadata: true,
        esModuleInterop: true,
      },
    });
    const dest = join(outDir, relative(join(root, 'lib'), file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, out.outputText);
  }
}

// Makes the optional peers unresolvable, as in an app that did not install them.
const BLOCKER = `
const Module = require('module');
const resolve = Module._resolveFilename;
const missing = ['@nestjs/terminus', 'prom-client', '@willsoto/nestjs-prometheus', '@opentelemetry/api', '@nestjs/schedule'];
Module._resolveFilename = function (request, ...rest) {
  if (missing.some((m) => request === m || request.startsWith(m + '/'))) {
    const err = new Error("Cannot find module '" + request + "'");
    err.code = 'MODULE_NOT_FOUND';
    throw err;
  }
  return resolve.call(this, request, ...rest);
};`;

const SCRIPT = `
require('reflect-metadata');
const { NestFactory } = require('@nestjs/core');
const lib = require(process.env.LIB);
(async () => {
  const out = {};
  const app = await NestFactory.createApplicationContext(lib.TieredCacheModule.forRoot({}), { logger: false });
  const cache = app.get(lib.CacheManagerService);
  await cache.set('a', { n: 1 });
  out.value = await cache.get('a');
  out.metricsEnabled = app.get(lib.CacheMetricsService).enabled;
  // Tracing off without @opentelemetry/api: the engine keeps its class methods (nothing wrapped).
  out.tracingWrapped = ['get', 'getOrSet', 'delete', 'clear'].filter((m) => Object.prototype.hasOwnProperty.call(cache.engine, m));
  out.details = await app.get(lib.TieredCacheHealthIndicator).details();
  try {
    await app.get(lib.TieredCacheHealthIndicator).isHealthy('cache');
  } catch (e) {
    out.healthError = e.message;
  }
  await app.close();
  try {
    await NestFactory.createApplicationContext(lib.TieredCacheModule.forRoot({ metrics: true }), { logger: false, abortOnError: false });
  } catch (e) {
    out.bootError = e.message;
  }
  try {
    new lib.TieredCache({ tracing: true });
  } catch (e) {
    out.tracingError = e.message;
  }
  class Nightly { async *keys() {} async load() { return true; } }
  lib.CacheWarmer({ name: 'nightly', cron: '0 2 * * *' })(Nightly);
  class WithCron {}
  require('@nestjs/common').Module({ imports: [lib.TieredCacheModule.forRoot({})], providers: [Nightly] })(WithCron);
  try {
    await NestFactory.createApplicationContext(WithCron, { logger: false, abortOnError: false });
  } catch (e) {
    out.cronError = e.message;
  }
  try { require.resolve('prom-client'); out.blocked = false; } catch { out.blocked = true; }
  try { require.resolve('@opentelemetry/api'); out.otelBlocked = false; } catch { out.otelBlocked = true; }
  console.log(JSON.stringify(out));
})();`;

describe('optional peers (@nestjs/terminus, prom-client, @willsoto/nestjs-prometheus, @opentelemetry/api, @nestjs/schedule) not installed', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tiered-cache-peers-'));
    transpileLib(join(dir, 'lib'));
    writeFileSync(join(dir, 'blocker.js'), BLOCKER);
    writeFileSync(join(dir, 'app.js'), SCRIPT);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the module boots and caches with metrics and tracing off; health says what is missing; metrics: true, tracing: true and a warmer cron fail at boot', () => {
    const r = spawnSync(process.execPath, ['-r', join(dir, 'blocker.js'), join(dir, 'app.js')], {
      encoding: 'utf8',
      env: { ...process.env, LIB: join(dir, 'lib'), NODE_PATH: join(root, 'node_modules') },
      timeout: 30_000,
    });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    expect(out.blocked).toBe(true);
    expect(out.value).toEqual({ n: 1 });
    expect(out.metricsEnabled).toBe(false);
    expect(out.otelBlocked).toBe(true);
    expect(out.tracingWrapped).toEqual([]);
    expect(out.tracingError).toBe('Invalid tiered-cache option "tracing.enabled" = true: @opentelemetry/api is not installed (npm install @opentelemetry/api)');
    expect(out.details).toMatchObject({ l1: { enabled: true, entries: 1 }, l2: { enabled: false } });
    expect(out.healthError).toBe('TieredCacheHealthIndicator needs @nestjs/terminus (npm install @nestjs/terminus)');
    expect(out.bootError).toBe('Invalid tiered-cache option "metrics.enabled" = true: prom-client is not installed (npm install prom-client)');
    expect(out.cronError).toBe('warmer "nightly" sets a cron, which needs @nestjs/schedule: npm install @nestjs/schedule (ScheduleModule.forRoot() is optional)');
  });
});
