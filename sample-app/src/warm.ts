import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { PropertyService } from './properties/property.service';

/**
 * Pre-populates the cache through the same service methods the API uses:
 *   npm run sample:warm -- --ids 1,2,3
 *   npm run sample:warm -- --file ids.txt      (one id per line, or comma separated)
 * With REDIS_URL set this fills Redis for every instance; without it, it only shows the mechanics
 * (an L1 lives and dies with its process).
 */
export function parseIds(argv: string[]): string[] {
  const i = argv.indexOf('--ids');
  const f = argv.indexOf('--file');
  let raw = '';
  if (i >= 0 && argv[i + 1]) raw = argv[i + 1];
  else if (f >= 0 && argv[f + 1]) raw = readFileSync(argv[f + 1], 'utf8');
  else throw new Error('usage: warm --ids 1,2,3 | --file ids.txt');
  return [...new Set(raw.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean))];
}

function progress(done: number, total: number, failed: number): void {
  if (!process.stdout.isTTY) return;
  const width = 30;
  const filled = Math.round((done / total) * width);
  process.stdout.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total}${failed ? ` (${failed} failed)` : ''}`);
}

async function main(): Promise<void> {
  const ids = parseIds(process.argv.slice(2));
  const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
  const properties = app.get(PropertyService);
  let done = 0;
  let failed = 0;
  const concurrency = 8;
  const queue = [...ids];
  await Promise.all(
    Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        try {
          await properties.findById(id);
        } catch {
          failed++;
        }
        done++;
        progress(done, ids.length, failed);
      }
    }),
  );
  if (process.stdout.isTTY) process.stdout.write('\n');
  console.log(`warmed ${done - failed}/${ids.length} properties${failed ? `, ${failed} not found` : ''}`);
  await app.close();
}

if (require.main === module) {
  main().catch((err: Error) => {
    console.error(err.message);
    process.exitCode = 1;
  });
}
