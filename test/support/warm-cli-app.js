'use strict';
// The app test/integration/warm-cli.spec.ts boots with the CLI (dist/cli/main.js), as a user's compiled
// dist/app.module.js would be: plain JS over the built package. REDIS_URL and KEY_PREFIX say where its cache lives.
//   ItemsWarmer ('items'): load() stores item:<id>; ids starting with "bad" fail, ids starting with "slow" wait
//   until the run is cancelled; keys() yields 1..WARM_KEYS (3).
//   PagesWarmer ('pages', http): GET /items/:id, a cached route (keyPrefix http:item).
//   WARM_BOOT_FAIL=1: an invalid cache option, so the boot fails.
require('reflect-metadata');
const { Controller, Get, Module, Param, UseInterceptors } = require('@nestjs/common');
const { Cacheable, CacheWarmer, TieredCacheInterceptor, TieredCacheModule } = require('../../dist');

const quiet = { warn() {}, error() {} };

class ItemsWarmer {
  async *keys() {
    const n = Number(process.env.WARM_KEYS ?? 3);
    for (let i = 1; i <= n; i++) yield String(i);
  }
  async load(id, context) {
    if (id.startsWith('bad')) throw new Error(`no item ${id}`);
    if (id.startsWith('slow')) {
      process.stderr.write(`loading ${id}\n`);
      await new Promise((_, reject) => context.signal.addEventListener('abort', () => reject(context.signal.reason), { once: true }));
    }
    return { key: `item:${id}`, value: { id }, ttl: '1h' };
  }
}
CacheWarmer({ name: 'items', concurrency: 4 })(ItemsWarmer);

class ItemsController {
  async one(id) {
    return { id, page: true };
  }
}
{
  const proto = ItemsController.prototype;
  const d = Object.getOwnPropertyDescriptor(proto, 'one');
  Cacheable({ keyPrefix: 'http:item', ttl: '1h' })(proto, 'one', d);
  Get(':id')(proto, 'one', d);
  Object.defineProperty(proto, 'one', d);
  Param('id')(proto, 'one', 0);
  Controller('items')(ItemsController);
  UseInterceptors(TieredCacheInterceptor)(ItemsController);
}

class PagesWarmer {
  async *keys() {
    yield* ['1', '2'];
  }
  path(id) {
    return `/items/${id}`;
  }
}
CacheWarmer({ name: 'pages', http: true })(PagesWarmer);

class AppModule {}
Module({
  imports: [
    TieredCacheModule.forRoot({
      redis: process.env.REDIS_URL,
      keyPrefix: process.env.KEY_PREFIX ?? 'cli:',
      logger: quiet,
      metrics: false,
      ...(process.env.WARM_BOOT_FAIL ? { l1: { maxEntries: -1 } } : {}),
    }),
  ],
  controllers: [ItemsController],
  providers: [ItemsWarmer, PagesWarmer],
})(AppModule);

module.exports = { AppModule };
