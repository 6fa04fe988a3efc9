import { statSync } from 'node:fs';
import type { WarmupRunOptions, WarmupRunResult } from '../nest/warmup/cache-warmer-options.interface';
import type { TieredCacheWarmup } from '../nest/warmup/tiered-cache-warmup.service';
import { TIERED_CACHE_WARMUP } from '../nest/warmup/warmup.constants';
import { loadApp, type AppLike } from './app-loader';
import { parseWarmArgs, UsageError, WARM_USAGE, type WarmArgs } from './cli-args';
import { idsFromFile } from './id-source';
import { progressReporter, type CliIo, type ProgressTotal } from './progress-reporter';

/** The CLI's exit codes (docs/warming.md, "CLI"). */
export const EXIT = { ok: 0, keysFailed: 1, usage: 2, notRun: 3, sigint: 130, sigterm: 143 } as const;

const SIGNAL_EXIT: Record<string, number> = { SIGINT: EXIT.sigint, SIGTERM: EXIT.sigterm };

/** What a run needs from the process; the defaults are the real ones (tests and the sample pass their own). */
export interface WarmCommandIo extends CliIo {
  /** Called with a function that cancels the run; returns the remover. Default: SIGINT and SIGTERM. */
  onSignal?(cancel: (signal: string) => void): () => void;
}

/**
 * `nestjs-tiered-cache warm …`: boots the app's module (a Nest application context, or with --http an HTTP
 * application on a loopback port), runs one warmer with the ids given (or its keys()), shows the progress, closes
 * the app and resolves to the exit code. Never throws.
 */
export async function runWarmCommand(argv: readonly string[], io: WarmCommandIo = defaultIo()): Promise<number> {
  let args: WarmArgs;
  try {
    args = parseWarmArgs(argv);
    if (args.file !== undefined && args.file !== '-') statSync(args.file);
  } catch (err) {
    io.err.write(`${err instanceof UsageError ? err.message : `--file: ${(err as Error).message}`}\n\n${WARM_USAGE}\n`);
    return EXIT.usage;
  }
  // This process runs one warmer: no schedule, no bootstrap runs (warmup.orchestrator.ts).
  process.env.CACHE_WARMUP_AUTORUN = 'false';
  let app: AppLike | undefined;
  try {
    let warmup: TieredCacheWarmup;
    try {
      const { module, nest } = loadApp(args.app, args.exportName);
      const logger = stderrLogger(io, args.verbose);
      if (args.http) {
        const http = await nest.create(module, { logger, abortOnError: false });
        app = http;
        await http.listen(0, '127.0.0.1');
      } else {
        app = await nest.createApplicationContext(module, { logger, abortOnError: false });
      }
      warmup = findWarmup(app);
    } catch (err) {
      io.err.write(`${err instanceof UsageError ? err.message : `the app failed to boot: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`}\n`);
      return EXIT.usage;
    }
    const names = warmup.names();
    if (args.warmer === undefined || !names.includes(args.warmer)) {
      const list = names.length > 0 ? `its warmers: ${names.join(', ')}` : 'it has no @CacheWarmer providers';
      io.err.write(`${args.warmer === undefined ? '--warmer is required' : `the app has no warmer named "${args.warmer}"`}; ${list}\n`);
      return EXIT.usage;
    }
    const stats = warmup.stats()[args.warmer];
    if (stats.kind === 'http' && stats.baseUrl === null && !args.http) {
      io.err.write(`warmer "${args.warmer}" requests this app's own HTTP routes: run it with --http (the app then listens on a loopback port while it warms)\n`);
      return EXIT.usage;
    }
    return await run(warmup, args, io, args.warmer);
  } finally {
    await app?.close().catch((err: unknown) => io.err.write(`closing the app failed: ${err instanceof Error ? err.message : String(err)}\n`));
  }
}

async function run(warmup: TieredCacheWarmup, args: WarmArgs, io: WarmCommandIo, name: string): Promise<number> {
  const options: WarmupRunOptions & { observer: NonNullable<WarmupRunOptions['observer']> } = { observer: {}, exclusive: args.exclusive };
  if (args.mode !== undefined) options.mode = args.mode;
  if (args.concurrency !== undefined) options.concurrency = args.concurrency;
  const total: ProgressTotal = {};
  let source = "the warmer's keys()";
  if (args.ids !== undefined) {
    options.ids = args.ids;
    options.parseIds = true;
    total.keys = args.ids.length;
    source = `${args.ids.length} id${args.ids.length === 1 ? '' : 's'} from --ids`;
  } else if (args.file !== undefined) {
    const file = idsFromFile(args.file);
    options.ids = file.ids;
    options.parseIds = true;
    if (file.total !== undefined) total.bytes = { total: file.total, read: file.bytesRead };
    source = args.file === '-' ? 'stdin' : args.file;
  }
  const s = warmup.stats()[name];
  io.err.write(`warming "${name}" from ${source} (mode ${args.mode ?? s.mode}, concurrency ${args.concurrency ?? s.concurrency})\n`);
  const controller = new AbortController();
  options.signal = controller.signal;
  let signalled: string | undefined;
  const removeSignals = (io.onSignal ?? processSignals)((signal) => {
    if (signalled !== undefined) return;
    signalled = signal;
    controller.abort(new Error(`interrupted (${signal})`));
  });
  let reporter: ReturnType<typeof progressReporter> | undefined;
  options.observer.started = () => (reporter = progressReporter(io, name, total));
  options.observer.progress = (e) => reporter?.key(e);
  let result: WarmupRunResult;
  try {
    result = await warmup.run(name, options);
  } finally {
    reporter?.stop();
    removeSignals();
  }
  if (args.json) io.out.write(JSON.stringify(result) + '\n');
  else io.out.write(summary(result) + '\n');
  if (result.status === 'skipped') return EXIT.notRun;
  if (result.status === 'cancelled') return SIGNAL_EXIT[signalled ?? ''] ?? EXIT.keysFailed;
  return result.status === 'failed' || result.keys.failed > 0 ? EXIT.keysFailed : EXIT.ok;
}

function summary(r: WarmupRunResult): string {
  const k = r.keys;
  if (r.status === 'skipped') return `warm-up "${r.warmer}" not run: ${r.reason ?? 'skipped'}`;
  const seconds = r.durationMs / 1000;
  const rate = seconds > 0 ? `, ${Math.round((k.ok + k.failed + k.skipped) / seconds)} keys/s` : '';
  const head = r.status === 'completed' ? `warmed "${r.warmer}"` : `warm-up "${r.warmer}" ${r.status}${r.reason ? ` (${r.reason})` : ''}`;
  return `${head}: ${k.ok} ok, ${k.failed} failed, ${k.skipped} skipped in ${seconds.toFixed(1)} s${rate}`;
}

function findWarmup(app: AppLike): TieredCacheWarmup {
  let found: unknown;
  try {
    found = app.get(TIERED_CACHE_WARMUP, { strict: false });
  } catch {
    found = undefined;
  }
  if (found === undefined || found === null || typeof (found as { run?: unknown }).run !== 'function') {
    throw new UsageError('the app does not import TieredCacheModule (no TieredCacheWarmup in it)');
  }
  return found as TieredCacheWarmup;
}

/** Nest's log, on stderr (stdout carries the result): warnings and errors, or everything with --verbose. */
function stderrLogger(io: CliIo, verbose: boolean): object {
  const write = (level: string) => (message: unknown, ...rest: unknown[]) => {
    const ctx = rest.length > 0 && typeof rest[rest.length - 1] === 'string' ? String(rest[rest.length - 1]) : undefined;
    // The warm-up's own summary line: the CLI prints its own.
    if (!verbose && ctx === 'TieredCacheWarmup') return;
    const context = ctx !== undefined ? ` [${ctx}]` : '';
    io.err.write(`${level}${context} ${message instanceof Error ? (message.stack ?? message.message) : String(message)}\n`);
  };
  const none = (): void => undefined;
  return {
    error: write('ERROR'),
    warn: write('WARN'),
    fatal: write('FATAL'),
    log: verbose ? write('LOG') : none,
    debug: verbose ? write('DEBUG') : none,
    verbose: verbose ? write('VERBOSE') : none,
  };
}

/** The first signal cancels the run (the app then closes); a second one exits at once. */
function processSignals(cancel: (signal: string) => void): () => void {
  let seen = false;
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((signal) => {
    const h = (): void => {
      if (seen) process.exit(SIGNAL_EXIT[signal]);
      seen = true;
      cancel(signal);
    };
    process.on(signal, h);
    return [signal, h] as const;
  });
  return () => {
    for (const [signal, h] of handlers) process.removeListener(signal, h);
  };
}

function defaultIo(): WarmCommandIo {
  return { out: process.stdout, err: process.stderr };
}
