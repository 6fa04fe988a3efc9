#!/usr/bin/env node
// The `nestjs-tiered-cache` command (package.json "bin"). One command so far: warm.
import 'reflect-metadata';
import { WARM_USAGE } from './cli-args';
import { EXIT, runWarmCommand } from './warm-command';

const USAGE = `Usage: nestjs-tiered-cache <command> [options]

Commands:
  warm    run a @CacheWarmer of your app (nestjs-tiered-cache warm --help)`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'warm') {
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(WARM_USAGE + '\n');
      return EXIT.ok;
    }
    return runWarmCommand(rest);
  }
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE + '\n');
    return EXIT.ok;
  }
  process.stderr.write(`${command === undefined ? 'no command given' : `unknown command ${command}`}\n\n${USAGE}\n`);
  return EXIT.usage;
}

// Exits once the output is written: an app may leave handles open (a pool, a timer) that would keep the process alive.
void main(process.argv.slice(2)).then(
  (code) => process.stdout.write('', () => process.stderr.write('', () => process.exit(code))),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(EXIT.usage);
  },
);
