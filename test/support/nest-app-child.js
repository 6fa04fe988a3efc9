'use strict';
/**
 * A whole Nest app in a Node process of its own, built from dist/: several caches (the default one and named
 * ones) registered with TieredCacheModule.forRoot, as another replica of an app would run them. Driven over IPC
 * like engine-child.js (test/support/engine-process.ts, EngineProcess.fork('nest-app-child.js', { caches })):
 * every op takes the cache name first. TC_OPTIONS is `{ caches: { default: {...}, scores: {...} } }`.
 */
const { Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { TieredCacheModule, getCacheToken } = require('../../dist');

const { caches } = JSON.parse(process.env.TC_OPTIONS || '{}');
const quiet = { warn() {}, error() {} };

class ChildAppModule {}
Module({
  imports: Object.entries(caches).map(([name, options]) =>
    TieredCacheModule.forRoot({ ...options, ...(name === 'default' ? {} : { name }), logger: quiet, metrics: false }),
  ),
})(ChildAppModule);

let app;
const cache = (name) => app.get(getCacheToken(name), { strict: false });

const ops = {
  set: (name, key, value, opts) => cache(name).set(key, value, opts),
  get: (name, key) => cache(name).get(key),
  delete: (name, key) => cache(name).delete(key),
  /** Whether `key` is in that cache's L1 (no L2 read). */
  inL1: (name, key) => cache(name).engine.peekLocal(key) !== undefined,
  /** Whether that cache's bus subscription is confirmed (it serves from L1 only then). */
  subscribed: (name) => cache(name).engine.bus?.subscribed === true,
  async close() {
    await app.close();
    setImmediate(() => process.exit(0));
    return true;
  },
};

require('./child-ipc').serveOps(ops);

NestFactory.createApplicationContext(ChildAppModule, { logger: false }).then(
  (ctx) => {
    app = ctx;
    process.send({ id: 0, ok: true, value: 'started' });
  },
  (err) => {
    process.send({ id: 0, ok: false, error: String(err) });
    process.exit(1);
  },
);
