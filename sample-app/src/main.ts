import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';

async function bootstrap(): Promise<void> {
  const app = await NestFactory.create(AppModule, { logger: ['error', 'warn', 'log'] });
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port, '127.0.0.1');
  const mode = process.env.REDIS_URL ? `L1 + Redis (${process.env.REDIS_URL.replace(/\/\/[^@]*@/, '//***@')})` : 'L1 only (set REDIS_URL to add Redis)';
  console.log(`Real-estate sample API on http://127.0.0.1:${port} — cache: ${mode}`);
  console.log(`  try: curl -i http://127.0.0.1:${port}/properties/1   (twice: X-Cache MISS then HIT)`);
  console.log(`       curl http://127.0.0.1:${port}/cache/stats  |  /health  |  /metrics`);
}

void bootstrap();
