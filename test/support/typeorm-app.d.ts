import type { DynamicModule } from '@nestjs/common';
import type { EntitySchema } from 'typeorm';
import type { InvalidationRule } from '../../lib';

export interface TestUser {
  id: number;
  tenantId: string;
  name: string;
  active: boolean;
  tags: unknown;
  deletedAt: Date | null;
}

export const UserSchema: EntitySchema<TestUser>;
export const RULES: InvalidationRule[];

export function typeOrmTestModule(options: {
  lib: unknown;
  typeormLib: unknown;
  pgUrl: string;
  redisUrl: string;
  keyPrefix: string;
  entities?: unknown[];
  synchronize?: boolean;
  typeorm?: Record<string, unknown>;
  rules?: InvalidationRule[];
  name?: string;
}): DynamicModule;
