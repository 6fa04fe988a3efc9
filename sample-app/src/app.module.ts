import { Module } from '@nestjs/common';
import { EventEmitterModule } from '@nestjs/event-emitter';
// In your app: from 'nestjs-tiered-cache'.
import { TieredCacheModule, tieredCacheOptionsFromEnv } from '../../lib';
import { CacheAdminModule } from './cache-admin/cache-admin.module';
import { DatabaseModule } from './database/database.module';
import { SAMPLE_WARMERS } from './key-accounts.warmer';
import { PingController } from './ping.controller';
import { PropertiesController } from './properties/properties.controller';
import { PropertyService } from './properties/property.service';
import { LeadScoreModel } from './scoring/lead-score-model';
import { LeadScoringService, LeadsController } from './scoring/lead-scoring.service';

@Module({
  imports: [
    EventEmitterModule.forRoot({ wildcard: true }),
    // L1 only unless REDIS_URL is set; every CACHE_* variable of docs/options.md works here.
    TieredCacheModule.forRootAsync({
      isGlobal: true,
      useFactory: () => ({
        keyPrefix: 'realestate:',
        ...tieredCacheOptionsFromEnv(),
        // L1 hits of GET /properties/:id are answered before Nest routing (see "HTTP fast path" in docs/http-caching.md).
        http: { fastPath: true },
        invalidationRules: [
          {
            // From the ORM after commit on PostgreSQL (the row's columns in the payload), from PropertyService otherwise.
            event: 'property.updated',
            keys: ['property:detail:{id}'],
            patterns: ['properties:list:{tenantId}:*'],
            tags: ['property:{id}', 'properties:list'],
          },
          { event: 'score.*', tags: ['lead:{leadId}'] },
        ],
      }),
    }),
    CacheAdminModule,
    // PostgreSQL through TypeORM when DATABASE_URL is set (shared by every instance), else the in-memory FakeDatabase.
    DatabaseModule.forRoot(),
  ],
  // PingController: GET /ping and /ping/property, the HTTP benchmark's no-cache baselines (bench/http.bench.js).
  controllers: [PropertiesController, LeadsController, PingController],
  providers: [PropertyService, LeadScoreModel, LeadScoringService, ...SAMPLE_WARMERS],
})
export class AppModule {}
