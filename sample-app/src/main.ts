import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';

const withoutCredentials = (url: string) => url.replace(/\/\/[^@/]*@/, '//***@');

async function bootstrap(): Promise<void> {
  const app = await NestFactory.create(AppModule, { logger: ['error', 'warn', 'log'] });
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port, '127.0.0.1');
  const mode = process.env.REDIS_URL ? `L1 + Redis (${withoutCredentials(process.env.REDIS_URL)})` : 'L1 only (set REDIS_URL to add Redis)';
  const data = process.env.DATABASE_URL
    ? `PostgreSQL (${withoutCredentials(process.env.DATABASE_URL)})`
    : 'in memory, this process only (set DATABASE_URL to share it between instances)';
  console.log(`Real-estate sample API on http://127.0.0.1:${port} — cache: ${mode}; data: ${data}`);
  console.log(`  try: curl -i http://127.0.0.1:${port}/properties/1   (twice: X-Cache MISS then HIT)`);
  console.log(`       curl http://127.0.0.1:${port}/cache/stats  |  /health  |  /metrics`);
}

void bootstrap();
