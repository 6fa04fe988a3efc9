import { createRequire } from 'node:module';

/** The parts of a `cron` CronJob the warm-up uses. */
export interface CronJobLike {
  start(): void;
  stop(): unknown;
  nextDate(): { toJSDate(): Date };
  /** cron 4 (@nestjs/schedule 6); cron 3 calls it `running`. */
  readonly isActive?: boolean;
  readonly running?: boolean;
  fireOnTick(): unknown;
}

/** The parts of @nestjs/schedule's SchedulerRegistry the warm-up uses. */
export interface SchedulerRegistryLike {
  addCronJob(name: string, job: CronJobLike): void;
  deleteCronJob(name: string): void;
  doesExist(type: 'cron', name: string): boolean;
  getCronJob(name: string): CronJobLike;
}

export interface ScheduleKit {
  /** The class, to find the app's instance (ScheduleModule.forRoot()) or make one. */
  SchedulerRegistry: new () => SchedulerRegistryLike;
  /** `CronJob.from` of the `cron` package @nestjs/schedule itself uses. */
  cronJob(params: { cronTime: string; onTick: () => void | Promise<void>; start: boolean; timeZone?: string; name?: string }): CronJobLike;
}

/**
 * @nestjs/schedule (an optional peer), loaded only when a warmer has a `cron`. `cron` is resolved from where
 * @nestjs/schedule lives: it is that package's dependency, not ours, and need not be hoisted. Undefined when it is
 * not installed. This module is the seam a test replaces to simulate a missing package.
 */
export function loadSchedule(): ScheduleKit | undefined {
  let path: string;
  try {
    path = require.resolve('@nestjs/schedule');
  } catch {
    return undefined;
  }
  const schedule = require(path) as { SchedulerRegistry: ScheduleKit['SchedulerRegistry'] };
  const cron = createRequire(path)('cron') as { CronJob: { from(params: object): CronJobLike } };
  return { SchedulerRegistry: schedule.SchedulerRegistry, cronJob: (params) => cron.CronJob.from(params) };
}
