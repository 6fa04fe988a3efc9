import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { TieredCacheHealthIndicator } from '../../../lib';

/** `GET /health`: up while L1 serves (a Redis outage shows as a degraded L2); `GET /health/ready` requires Redis. */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly cache: TieredCacheHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.cache.isHealthy('cache', { timeout: '1s' })]);
  }

  @Get('ready')
  @HealthCheck()
  ready() {
    return this.health.check([() => this.cache.isHealthy('cache', { requireL2: true, timeout: '1s' })]);
  }
}
