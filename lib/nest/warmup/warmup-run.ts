import { setMaxListeners } from 'node:events';
import type { WarmupContext, WarmupKeyCounts, WarmupRunStatus, WarmupTrigger } from './cache-warmer-options.interface';
import { WarmupKeyTimeoutError } from './warmup-errors';

/** How one key went; a thrown error is 'failed'. */
export type KeyOutcome = 'ok' | 'skipped';

/** One run, as the orchestrator hands it to executeRun. */
export interface RunPlan {
  readonly warmer: string;
  readonly trigger: WarmupTrigger;
  readonly ids: Iterable<unknown> | AsyncIterable<unknown>;
  readonly concurrency: number;
  /** 0: none. */
  readonly keyTimeout: number;
  /** The run's own; aborted to cancel it. */
  readonly signal: AbortSignal;
  /** How long keys still in flight when the run is cancelled are waited for before the run ends without them. */
  readonly cancelGrace: number;
  warm(id: unknown, context: WarmupContext): Promise<KeyOutcome>;
  /** After each key that counted. Must not throw. */
  onKey(id: unknown, result: 'ok' | 'failed' | 'skipped', error?: unknown): void;
}

export interface RunOutcome {
  status: Exclude<WarmupRunStatus, 'skipped'>;
  reason?: string;
  keys: WarmupKeyCounts;
  errors: Array<{ id: string; message: string }>;
}

const MAX_ERRORS = 20;
const DONE: IteratorResult<unknown> = { done: true, value: undefined };

/**
 * A run: ids are read one at a time from any iterable (so a million never sit in memory), `concurrency` keys are
 * warmed at once, and a key's failure is counted and the run goes on. Cancelling (the plan's signal) stops reading
 * ids, aborts the keys in flight through their signal, waits `cancelGrace` for them and ends; the iterator is
 * closed (`return()`) either way, so a generator's `finally` (a cursor's close) runs.
 */
export async function executeRun(plan: RunPlan): Promise<RunOutcome> {
  const keys: WarmupKeyCounts = { ok: 0, failed: 0, skipped: 0 };
  const errors: RunOutcome['errors'] = [];
  const runSignal = plan.signal;
  // Each key in flight listens to the run's signal (and each worker waiting for an id): not a leak.
  setMaxListeners(Math.max(10, plan.concurrency * 2 + 4), runSignal);
  const iterator = iteratorOf(plan.ids);
  let stopped = false;
  let sourceError: unknown;
  let hasSourceError = false;
  // One read of the iterator at a time: an async iterator need not support overlapping next() calls.
  let reading: Promise<unknown> = Promise.resolve();
  const read = (): Promise<IteratorResult<unknown>> => {
    const r = reading.then(() => (stopped || runSignal.aborted ? DONE : iterator.next()));
    reading = r.catch(() => undefined);
    return r;
  };

  const warmOne = async (id: unknown): Promise<void> => {
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(runSignal.reason);
    runSignal.addEventListener('abort', onAbort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    try {
      const work = plan.warm(id, { warmer: plan.warmer, trigger: plan.trigger, signal: controller.signal });
      const outcome =
        plan.keyTimeout > 0
          ? await new Promise<KeyOutcome>((resolve, reject) => {
              timer = setTimeout(() => {
                const err = new WarmupKeyTimeoutError(plan.keyTimeout);
                controller.abort(err);
                reject(err);
              }, plan.keyTimeout);
              work.then(resolve, reject);
            })
          : await work;
      if (runSignal.aborted) return;
      keys[outcome]++;
      plan.onKey(id, outcome);
    } catch (err) {
      // A key the cancellation cut short is not a failure of the key.
      if (runSignal.aborted) return;
      keys.failed++;
      if (errors.length < MAX_ERRORS) errors.push({ id: describeId(id), message: err instanceof Error ? err.message : String(err) });
      plan.onKey(id, 'failed', err);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      runSignal.removeEventListener('abort', onAbort);
    }
  };

  const worker = async (): Promise<void> => {
    while (!stopped && !runSignal.aborted) {
      let next: IteratorResult<unknown> | typeof CANCELLED;
      try {
        next = await untilAborted(read(), runSignal);
      } catch (err) {
        if (!hasSourceError) {
          hasSourceError = true;
          sourceError = err;
        }
        stopped = true;
        return;
      }
      if (next === CANCELLED || next.done === true) {
        stopped = true;
        return;
      }
      await warmOne(next.value);
    }
  };

  const workers = Promise.all(Array.from({ length: plan.concurrency }, () => worker()));
  await untilAborted(workers, runSignal);
  if (runSignal.aborted) await withinGrace(workers, plan.cancelGrace);
  stopped = true;
  // Closes the source (a generator's finally, a cursor); not awaited past the grace of a cancelled run.
  const closing = Promise.resolve()
    .then(() => iterator.return?.())
    .catch(() => undefined);
  await withinGrace(closing, runSignal.aborted ? plan.cancelGrace : 5_000);

  if (hasSourceError) {
    return { status: 'failed', reason: `reading the ids failed: ${sourceError instanceof Error ? sourceError.message : String(sourceError)}`, keys, errors };
  }
  if (runSignal.aborted) {
    const r: unknown = runSignal.reason;
    return { status: 'cancelled', reason: r instanceof Error ? r.message : typeof r === 'string' ? r : 'cancelled', keys, errors };
  }
  return { status: 'completed', keys, errors };
}

const CANCELLED = Symbol('cancelled');

/** `p`, or CANCELLED as soon as `signal` aborts (p goes on; its rejection is then ignored). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T | typeof CANCELLED> {
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.resolve(CANCELLED);
  }
  return new Promise<T | typeof CANCELLED>((resolve, reject) => {
    const onAbort = (): void => {
      p.catch(() => undefined);
      resolve(CANCELLED);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** Waits for `p` at most `ms`. */
function withinGrace(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    p.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      () => {
        clearTimeout(timer);
        resolve();
      },
    );
  });
}

function iteratorOf(ids: Iterable<unknown> | AsyncIterable<unknown>): Iterator<unknown> | AsyncIterator<unknown> {
  const asyncIt = (ids as AsyncIterable<unknown>)[Symbol.asyncIterator];
  if (typeof asyncIt === 'function') return asyncIt.call(ids);
  const syncIt = (ids as Iterable<unknown>)[Symbol.iterator];
  if (typeof syncIt === 'function') return syncIt.call(ids);
  throw new TypeError('ids must be an iterable or an async iterable');
}

/** An id as logs and run results show it: short, one line. */
export function describeId(id: unknown): string {
  let s: string;
  if (typeof id === 'string') s = id;
  else if (typeof id === 'number' || typeof id === 'bigint' || typeof id === 'boolean') s = String(id);
  else {
    try {
      s = JSON.stringify(id) ?? String(id);
    } catch {
      s = String(id);
    }
  }
  s = s.replace(/[\r\n]+/g, ' ');
  return s.length > 120 ? s.slice(0, 117) + '...' : s;
}
