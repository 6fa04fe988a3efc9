// First: AppModule chooses its database when loaded; this spec runs it in memory.
import '../support/without-database-url';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { register } from 'prom-client';
import { CacheManagerService, TieredCacheWarmup } from '../../lib';
import { AppModule } from '../../sample-app/src/app.module';
import { warmArgs } from '../../sample-app/src/warm';

/** The sample's key-account warmers (sample-app/src/key-accounts.warmer.ts) in the sample's own AppModule, L1 only. */
describe('the sample app’s warmers', () => {
  const saved = { ...process.env };
  let app: INestApplication;

  beforeAll(async () => {
    for (const k of Object.keys(process.env)) if (/^(CACHE_|REDIS_)/.test(k)) delete process.env[k];
    app = (await Test.createTestingModule({ imports: [AppModule] }).compile()).createNestApplication({ logger: false });
    await app.listen(0, '127.0.0.1');
  });
  afterAll(async () => {
    await app.close();
    register.clear();
    process.env = saved;
  });

  it('warms the enterprise and high-value properties daily at 2 AM, as details and as GET responses', async () => {
    const warmup = app.get(TieredCacheWarmup);
    expect(warmup.stats()).toMatchObject({
      'key-accounts': { kind: 'method', cron: '0 2 * * *', nextRun: expect.any(Date) },
      'key-account-pages': { kind: 'http', baseUrl: null, cron: '0 2 * * *' },
    });
    const details = await warmup.run('key-accounts');
    // acme (enterprise): its 25 listings; globex: its 13 listings priced from 275,000.
    expect(details).toMatchObject({ status: 'completed', keys: { ok: 38, failed: 0, skipped: 0 } });
    const cache = app.get(CacheManagerService);
    expect(await cache.has('property:detail:2')).toBe(true);
    expect(await cache.has('property:detail:49')).toBe(true);
    expect(await cache.has('property:detail:3')).toBe(false);
    expect((await warmup.run('key-account-pages', { ids: ['2'] })).keys.ok).toBe(1);
    const res = await fetch(`${await app.getUrl()}/properties/2`);
    expect(res.headers.get('x-cache')).toBe('HIT');
  });

  it('sample:warm passes the sample module and the warmer to the CLI', () => {
    expect(warmArgs(['--ids', '1,2'])).toEqual(['--app', expect.stringMatching(/app\.module\.js$/), '--export', 'AppModule', '--warmer', 'key-accounts', '--ids', '1,2']);
    expect(warmArgs(['--pages'])).toEqual(['--app', expect.any(String), '--export', 'AppModule', '--warmer', 'key-account-pages', '--http']);
  });
});
