import { MultiBar, type SingleBar } from 'cli-progress';
import type { WarmupKeyCounts, WarmupProgressEvent } from '../nest/warmup/cache-warmer-options.interface';
import { describeId } from '../nest/warmup/warmup-run';

/** Where the CLI writes: progress and failures to `err`, the result to `out`. */
export interface CliIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream & { isTTY?: boolean };
}

/** What the progress is measured against: keys (--ids), bytes of the file (--file), or nothing known (keys()). */
export interface ProgressTotal {
  keys?: number;
  bytes?: { total: number; read(): number };
}

/** Failed keys printed one by one (all of them are counted). */
const MAX_FAILURE_LINES = 20;
const LINE_EVERY_MS = 1_000;

export interface ProgressReporter {
  key(e: WarmupProgressEvent): void;
  stop(): void;
}

/** A progress bar on a terminal (cli-progress), plain lines otherwise (a log file, a CI job). */
export function progressReporter(io: CliIo, warmer: string, total: ProgressTotal): ProgressReporter {
  return io.err.isTTY === true ? new BarReporter(io, warmer, total) : new LineReporter(io, warmer, total);
}

abstract class Reporter implements ProgressReporter {
  protected readonly startedAt = performance.now();
  protected counts: WarmupKeyCounts = { ok: 0, failed: 0, skipped: 0 };
  private failures = 0;

  constructor(
    protected readonly io: CliIo,
    protected readonly warmer: string,
    protected readonly total: ProgressTotal,
  ) {}

  key(e: WarmupProgressEvent): void {
    this.counts = e.keys;
    if (e.result === 'failed') {
      this.failures++;
      if (this.failures <= MAX_FAILURE_LINES) this.line(`  id ${describeId(e.id)} failed: ${e.error instanceof Error ? e.error.message : String(e.error)}`);
      else if (this.failures === MAX_FAILURE_LINES + 1) this.line(`  (more failures are counted, not shown)`);
    }
    this.update();
  }

  abstract stop(): void;
  protected abstract line(text: string): void;
  protected abstract update(): void;

  protected get done(): number {
    return this.counts.ok + this.counts.failed + this.counts.skipped;
  }

  protected rate(): number {
    const s = (performance.now() - this.startedAt) / 1000;
    return s > 0 ? Math.round(this.done / s) : 0;
  }
}

class BarReporter extends Reporter {
  private readonly bars: MultiBar;
  private readonly bar: SingleBar;

  constructor(io: CliIo, warmer: string, total: ProgressTotal) {
    super(io, warmer, total);
    // Short enough for an 80-column terminal (cli-progress cuts a longer line).
    const counts = 'ok {ok} failed {failed} skipped {skipped} | {rate}/s';
    const format =
      total.keys !== undefined
        ? `${warmer} [{bar}] {percentage}% {value}/{total} | ${counts}`
        : total.bytes !== undefined
          ? `${warmer} [{bar}] {percentage}% of file, {done} keys | ${counts}`
          : `${warmer} {done} keys | ${counts}`;
    this.bars = new MultiBar({ stream: io.err, format, hideCursor: true, clearOnComplete: false, barsize: 20, fps: 10 });
    this.bar = this.bars.create(total.keys ?? total.bytes?.total ?? 0, 0, this.payload());
  }

  private payload(): Record<string, number> {
    return { done: this.done, ok: this.counts.ok, failed: this.counts.failed, skipped: this.counts.skipped, rate: this.rate() };
  }

  protected update(): void {
    const value = this.total.keys !== undefined ? this.done : (this.total.bytes?.read() ?? 0);
    this.bar.update(value, this.payload());
  }

  protected line(text: string): void {
    this.bars.log(text + '\n');
    // Drawn now, above the bar (cli-progress would wait for its next redraw, which a short run may not have).
    this.bars.update();
  }

  stop(): void {
    // At its end a file has been read whole: the bar says so even if the last chunk's count came late.
    if (this.total.bytes !== undefined) this.bar.update(this.total.bytes.total, this.payload());
    else this.update();
    this.bars.stop();
  }
}

class LineReporter extends Reporter {
  private lastLine = performance.now();
  private lastStatus = '';

  protected update(): void {
    const now = performance.now();
    if (now - this.lastLine < LINE_EVERY_MS) return;
    this.lastLine = now;
    this.lastStatus = this.status();
    this.line(this.lastStatus);
  }

  private status(): string {
    const c = this.counts;
    let of = '';
    if (this.total.keys !== undefined) of = `/${this.total.keys}`;
    const pct = this.total.keys ? ` (${Math.floor((100 * this.done) / this.total.keys)}%)` : this.total.bytes?.total ? ` (${Math.floor((100 * this.total.bytes.read()) / this.total.bytes.total)}% of the file)` : '';
    return `${this.warmer}: ${this.done}${of} keys${pct}, ${c.ok} ok, ${c.failed} failed, ${c.skipped} skipped, ${this.rate()} keys/s`;
  }

  protected line(text: string): void {
    this.io.err.write(text + '\n');
  }

  stop(): void {
    const status = this.status();
    if (status !== this.lastStatus) this.line(status);
  }
}
