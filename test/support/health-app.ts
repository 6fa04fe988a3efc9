import { Controller, Get, type INestApplication, Module, Query } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Test } from '@nestjs/testing';
import { TieredCacheHealthIndicator, TieredCacheModule, type TieredCacheOptions } from '../../lib';

const quiet = { warn() {}, error() {} };

/** `GET /health` (L2 optional) and `GET /health/strict` (requireL2), each with `?timeout=<ms>` (default 1000). */
@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly cache: TieredCacheHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check(@Query('timeout') timeout?: string) {
    return this.health.check([() => this.cache.isHealthy('cache', { timeout: Number(timeout ?? 1000) })]);
  }

  @Get('strict')
  @HealthCheck()
  strict(@Query('timeout') timeout?: string) {
    return this.health.check([() => this.cache.isHealthy('cache', { requireL2: true, timeout: Number(timeout ?? 1000) })]);
  }
}

/** A Nest app with Terminus and the cache module (quiet, metrics off) serving HealthController. */
export async function bootHealthApp(options: TieredCacheOptions): Promise<INestApplication> {
  @Module({
    imports: [TerminusModule.forRoot({ logger: false }), TieredCacheModule.forRoot({ logger: quiet, metrics: false, ...options })],
    controllers: [HealthController],
  })
  class AppModule {}
  const ref = await Test.createTestingModule({ imports: [AppModule] }).compile();
  const app = ref.createNestApplication({ logger: false });
  await app.init();
  return app;
}
