import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * `nestjs-tiered-cache/compat` as an app loads it (the built package through its exports map: run `npm run
 * build` first): createCache and Cache load no Nest; the Nest parts load on first use; ESM named imports work;
 * without Nest installed at all, createCache still works.
 */

const root = join(__dirname, '..', '..');

function node(args: string[], env: NodeJS.ProcessEnv = {}): string {
  return execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8', env: { ...process.env, ...env } });
}

const NEST_FREE = `
const m = require('nestjs-tiered-cache/compat');
(async () => {
  const cache = m.createCache({ ttl: 1000 });
  await cache.set('k', { v: 1 });
  const value = await cache.get('k');
  await cache.disconnect();
  const nest = Object.keys(require.cache).filter((p) => /node_modules[\\\\/](@nestjs|rxjs)[\\\\/]/.test(p));
  const before = nest.length;
  const moduleType = typeof m.CacheModule;
  const same = m.CacheModule === require('nestjs-tiered-cache/compat').CacheModule;
  const after = Object.keys(require.cache).filter((p) => p.includes('@nestjs')).length;
  process.stdout.write(JSON.stringify({ value, before, moduleType, same, loadedLater: after > 0, cache: m.Cache.name }));
})();`;

describe('nestjs-tiered-cache/compat entry point (needs a build)', () => {
  it('createCache works without loading @nestjs/* or rxjs; CacheModule loads them on first access', () => {
    const out = JSON.parse(node(['-e', NEST_FREE]));
    expect(out).toEqual({ value: { v: 1 }, before: 0, moduleType: 'function', same: true, loadedLater: true, cache: 'Cache' });
  });

  it('ESM: named imports of every export', () => {
    const script = `import { createCache, Cache, CacheModule, CacheInterceptor, CacheKey, CacheTTL, CACHE_MANAGER, CACHE_KEY_METADATA, CACHE_TTL_METADATA } from 'nestjs-tiered-cache/compat';
      const c = createCache();
      process.stdout.write(JSON.stringify([c instanceof Cache, typeof CacheModule.register, typeof CacheInterceptor, typeof CacheKey, typeof CacheTTL, CACHE_MANAGER, CACHE_KEY_METADATA, CACHE_TTL_METADATA]));
      await c.disconnect();`;
    expect(JSON.parse(node(['--input-type=module', '-e', script]))).toEqual([true, 'function', 'function', 'function', 'function', 'CACHE_MANAGER', 'cache_module:cache_key', 'cache_module:cache_ttl']);
  });

  describe('in an app without Nest installed', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'tiered-cache-compat-'));
      // Makes @nestjs/* and rxjs unresolvable, as in a plain Node service.
      writeFileSync(
        join(dir, 'blocker.cjs'),
        `const Module = require('module');
        const resolve = Module._resolveFilename;
        Module._resolveFilename = function (request, ...rest) {
          if (request.startsWith('@nestjs/') || request === 'rxjs' || request.startsWith('rxjs/')) {
            const err = new Error("Cannot find module '" + request + "'");
            err.code = 'MODULE_NOT_FOUND';
            throw err;
          }
          return resolve.call(this, request, ...rest);
        };`,
      );
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('createCache works (CommonJS and ESM); touching CacheModule says what is missing', () => {
      const cjs = `const m = require('nestjs-tiered-cache/compat');
        (async () => {
          const c = m.createCache();
          await c.set('k', 1);
          const v = await c.get('k');
          await c.disconnect();
          let error;
          try { m.CacheModule; } catch (e) { error = e.message; }
          process.stdout.write(JSON.stringify({ v, error }));
        })();`;
      const out = JSON.parse(node(['-r', join(dir, 'blocker.cjs'), '-e', cjs]));
      expect(out.v).toBe(1);
      expect(out.error).toMatch(/Cannot find module '@nestjs\/common'/);
      const esm = spawnSync(
        process.execPath,
        ['-r', join(dir, 'blocker.cjs'), '--input-type=module', '-e', `import { createCache, CacheModule } from 'nestjs-tiered-cache/compat'; const c = createCache(); await c.set('k', 2); process.stdout.write(JSON.stringify([await c.get('k'), CacheModule === undefined])); await c.disconnect();`],
        { cwd: root, encoding: 'utf8' },
      );
      expect(esm.stderr).toBe('');
      expect(JSON.parse(esm.stdout)).toEqual([2, true]);
    });
  });
});
