import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { CacheInvalidateController } from './cache-invalidate.controller';
import { CacheStatsController } from './cache-stats.controller';
import { HealthController } from './health.controller';

/**
 * Operations endpoints: `GET /health` (Terminus), `GET /metrics` (Prometheus: the cache registers its
 * metrics in the registry PrometheusModule serves), `GET /cache/stats`, `POST /cache/invalidate` (guarded). Expects TieredCacheModule to be
 * global (`isGlobal: true`) in the app module. Import PrometheusModule only once per app: it is here.
 */
@Module({
  imports: [TerminusModule.forRoot({ errorLogStyle: 'pretty' }), PrometheusModule.register()],
  controllers: [HealthController, CacheStatsController, CacheInvalidateController],
})
export class CacheAdminModule {}
