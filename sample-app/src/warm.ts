import { join } from 'node:path';
// In your app: `npx nestjs-tiered-cache warm --app dist/app.module.js --warmer key-accounts …`.
import { runWarmCommand } from '../../lib/cli/warm-command';

/**
 * The sample's warm-up, through the package's CLI (`nestjs-tiered-cache warm`) on this app's module:
 *   npm run sample:warm                      the key accounts (key-accounts.warmer.ts): enterprise and high-value
 *   npm run sample:warm -- --ids 1,2,3       these properties
 *   npm run sample:warm -- --file ids.txt    the ids in a file (one per line, or comma separated), streamed
 *   npm run sample:warm -- --pages           the cached GET /properties/:id responses (HTTP keys) of the key accounts
 * Every other option of the CLI works too (--mode missing, --concurrency 4, --exclusive, --json). With REDIS_URL set
 * this fills Redis for every instance; without it, it only shows the mechanics (an L1 lives and dies with its process).
 */
export function warmArgs(argv: readonly string[]): string[] {
  const pages = argv.includes('--pages');
  const rest = argv.filter((a) => a !== '--pages');
  const args = ['--app', join(__dirname, 'app.module.js'), '--export', 'AppModule'];
  if (!rest.includes('--warmer')) args.push('--warmer', pages ? 'key-account-pages' : 'key-accounts');
  if (pages && !rest.includes('--http')) args.push('--http');
  return [...args, ...rest];
}

/** Runs the warm-up with the sample's arguments and resolves to the CLI's exit code (scripts/sample.js calls this). */
export function warm(argv: readonly string[]): Promise<number> {
  return runWarmCommand(warmArgs(argv));
}

if (require.main === module) {
  void warm(process.argv.slice(2)).then((code) => process.exit(code));
}
