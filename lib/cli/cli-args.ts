/** A command line the CLI cannot use: exit code 2, with the usage. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface WarmArgs {
  /** The compiled module file, as given. */
  app: string;
  /** Its export that is the root module (default: AppModule, else the default export, else the only module exported). */
  exportName?: string;
  warmer?: string;
  /** --ids 1,2,3 */
  ids?: string[];
  /** --file ids.txt ('-' for stdin) */
  file?: string;
  mode?: 'refresh' | 'missing';
  concurrency?: number;
  exclusive: boolean;
  http: boolean;
  json: boolean;
  verbose: boolean;
}

export const WARM_USAGE = `Usage: nestjs-tiered-cache warm --app <module file> --warmer <name> [options]

Boots the app's module as a Nest application context and runs one @CacheWarmer.

  --app <file>         the compiled module file (e.g. dist/app.module.js)
  --export <name>      its export that is the root module (default: AppModule, the default export,
                       or the only module it exports)
  --warmer <name>      the warmer to run (without it: the app's warmers are listed)
  --ids <a,b,c>        warm these ids (comma or space separated) instead of the warmer's keys()
  --file <path>        warm the ids in this file, one per line (commas also separate; blank lines
                       and lines starting with # are ignored); read as the run goes; '-' is stdin
  --mode <m>           refresh (load every key) or missing (only what the cache lacks)
  --concurrency <n>    keys warmed at once (default: the warmer's)
  --exclusive          take the warmer's cluster-wide lease first, as its schedule does
  --http               boot an HTTP application listening on a loopback port, for warmers of GET routes
  --json               print the run's result as JSON on stdout
  --verbose            Nest's log at every level (default: warnings and errors), on stderr

Exit codes: 0 every key warmed (or skipped), 1 some keys failed or the run failed,
2 usage or boot error, 3 not run (another instance holds the lease, or it was already running),
130 / 143 interrupted (SIGINT / SIGTERM).`;

/** Parses `warm`'s arguments (after the command name). */
export function parseWarmArgs(argv: readonly string[]): WarmArgs {
  const out: Partial<WarmArgs> & { exclusive: boolean; http: boolean; json: boolean; verbose: boolean } = { exclusive: false, http: false, json: false, verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined || (v.startsWith('--') && v.length > 2)) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--app':
        out.app = value();
        break;
      case '--export':
        out.exportName = value();
        break;
      case '--warmer':
        out.warmer = value();
        break;
      case '--ids': {
        const ids = [...new Set(value().split(/[\s,]+/).map((s) => s.trim()).filter((s) => s.length > 0))];
        if (ids.length === 0) throw new UsageError('--ids names no id');
        out.ids = ids;
        break;
      }
      case '--file':
        out.file = value();
        break;
      case '--mode': {
        const m = value();
        if (m !== 'refresh' && m !== 'missing') throw new UsageError(`--mode must be refresh or missing, not ${m}`);
        out.mode = m;
        break;
      }
      case '--concurrency': {
        const raw = value();
        const n = Number(raw);
        if (!Number.isSafeInteger(n) || n < 1 || n > 1000) throw new UsageError(`--concurrency must be a whole number from 1 to 1000, not ${raw}`);
        out.concurrency = n;
        break;
      }
      case '--exclusive':
      case '--http':
      case '--json':
      case '--verbose':
        if (inline !== undefined) throw new UsageError(`${flag} takes no value`);
        out[flag.slice(2) as 'exclusive' | 'http' | 'json' | 'verbose'] = true;
        break;
      default:
        throw new UsageError(`unknown argument ${arg}`);
    }
  }
  if (out.app === undefined) throw new UsageError('--app is required');
  if (out.ids !== undefined && out.file !== undefined) throw new UsageError('give --ids or --file, not both');
  return out as WarmArgs;
}
