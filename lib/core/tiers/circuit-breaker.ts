import type { BreakerStateName, TierHealth } from './tier';

export type { BreakerStateName };

/** A tier's breaker, validated (durations in ms). */
export interface BreakerSettings {
  /** Failures (missed deadlines included) within `window` that open the breaker. */
  failures: number;
  window: number;
  /** How long an open breaker skips every call before it lets a probe through. */
  openFor: number;
}

/**
 * 5 failures in 10 s: a hung server costs five calls at their deadline, not every call for as long as it hangs.
 * A healthy tier misses no deadline at all, so five within ten seconds is not noise. Open 5 s: long enough that
 * a dead server is not probed in a tight loop, short enough that a recovered one is back within seconds.
 */
export const DEFAULT_BREAKER: Readonly<BreakerSettings> = Object.freeze({ failures: 5, window: 10_000, openFor: 5_000 });

/** The states as numbers (what the hot paths compare, and what the metric gauge reports). */
export const CLOSED = 0;
export const HALF_OPEN = 1;
export const OPEN = 2;
export type BreakerState = typeof CLOSED | typeof HALF_OPEN | typeof OPEN;

const NAMES: readonly BreakerStateName[] = ['closed', 'half-open', 'open'];

/** A state name as its number (0 closed, 1 half-open, 2 open). */
export function breakerStateValue(name: BreakerStateName): BreakerState {
  return NAMES.indexOf(name) as BreakerState;
}

/** stats().tiers[name].breaker. */
export interface BreakerStats {
  state: BreakerStateName;
  /** Times it opened (from closed, or again after a failed probe). */
  opened: number;
  /** Calls it answered with TIER_FAILED without sending them. */
  skipped: number;
}

/**
 * A circuit breaker for one remote tier. Closed: calls go out, and each failure or missed deadline is recorded;
 * `failures` of them within `window` open it. Open: every call is skipped (its caller gets TIER_FAILED at once,
 * which the engine already treats as "could not ask"). Once `openFor` has passed, the next call (still skipped)
 * moves it to half-open and starts the tier's own probe (PING, SELECT 1): one cheap round trip under the tier's
 * deadline instead of a caller's real call, so no caller waits on a server that may still be dead, and no
 * success path of the tier has to report back. The probe answering closes it; failing opens it again.
 *
 * No timer: the move to half-open happens on the first call after `openFor` (or a health check, see poll()).
 * An idle tier therefore stays 'open' in stats until something asks it, which is also what it would do then.
 * Only the failure paths and the open state cost anything: while closed the tiers test `state` and go on.
 */
export class CircuitBreaker {
  /** What the hot paths test (a field, not a getter): anything but CLOSED means "call blocked() before sending". Written only here. */
  state: BreakerState = CLOSED;
  opened = 0;
  skipped = 0;
  /** The last `failures` failure times, a ring: `next` is the oldest once it is full. */
  private readonly times: Float64Array;
  private next = 0;
  private count = 0;
  private retryAt = 0;
  /** When the server last proved alive (succeeded(), a probe, or a close): calls sent before it are old news. */
  private since = -Infinity;
  private stopped = false;
  private readonly listeners: Array<(state: BreakerState) => void> = [];

  constructor(
    /** undefined: the breaker is off (never opens; stats() reports nothing). */
    readonly settings: Readonly<BreakerSettings> | undefined,
    /** The tier's cheap round trip, under its own deadline; resolves true when answered (a rejection counts as no answer). */
    private readonly probe: () => Promise<boolean>,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.times = new Float64Array(settings?.failures ?? 0);
  }

  get enabled(): boolean {
    return this.settings !== undefined;
  }

  get stateName(): BreakerStateName {
    return NAMES[this.state];
  }

  /** Hears every change of state (the tier retries what it deferred on CLOSED; the engine logs). */
  onChange(listener: (state: BreakerState) => void): void {
    this.listeners.push(listener);
  }

  /**
   * A call failed or missed its deadline; `sentAt` is when it was sent, where the caller knows it (a missed
   * deadline). Counted only while closed, and only for a call sent since the server last proved alive: what comes
   * back late from calls sent before the breaker opened, or before a reconnect, says nothing about the server
   * now, and a half-open breaker waits for its probe alone.
   */
  failure(sentAt?: number): void {
    const s = this.settings;
    if (s === undefined || this.state !== CLOSED || this.stopped) return;
    if (sentAt !== undefined && sentAt < this.since) return;
    const now = this.now();
    this.times[this.next] = now;
    this.next = (this.next + 1) % s.failures;
    if (this.count < s.failures) this.count++;
    if (this.count === s.failures && now - this.times[this.next] <= s.window) this.trip(now);
  }

  /**
   * The server answered on another path (a connection finished its handshake, a boot query ran): as good as a
   * probe, so an open or half-open breaker closes now instead of skipping calls for the rest of `openFor`; a
   * closed one forgets the failures before it (those of a connection that is gone, e.g. across a failover).
   */
  succeeded(): void {
    if (this.stopped) return;
    if (this.state !== CLOSED) this.close();
    else {
      this.count = 0;
      this.since = this.now();
    }
  }

  /**
   * Before sending a call: true when it must not be sent (counted as skipped), and the probe is started once
   * `openFor` has passed. The tiers test `state !== CLOSED` first, so a closed breaker costs them one field check.
   */
  blocked(): boolean {
    if (this.state === CLOSED) return false;
    this.poll();
    this.skipped++;
    return true;
  }

  /** Moves an open breaker whose `openFor` has passed to half-open (starting the probe), without counting a call. */
  poll(): void {
    if (this.state === OPEN && !this.stopped && this.now() >= this.retryAt) this.halfOpen();
  }

  stats(): BreakerStats | undefined {
    return this.settings === undefined ? undefined : { state: this.stateName, opened: this.opened, skipped: this.skipped };
  }

  /** The tier closed: a probe still in flight changes nothing any more. */
  stop(): void {
    this.stopped = true;
  }

  private trip(now: number): void {
    this.state = OPEN;
    this.opened++;
    this.retryAt = now + (this.settings as BreakerSettings).openFor;
    this.count = 0;
    this.emit();
  }

  private halfOpen(): void {
    this.state = HALF_OPEN;
    this.emit();
    this.probe().then(
      (ok) => this.settle(ok),
      () => this.settle(false),
    );
  }

  private settle(ok: boolean): void {
    // Closed meanwhile by succeeded(): the probe's answer is old news.
    if (this.stopped || this.state !== HALF_OPEN) return;
    if (ok) this.close();
    else this.trip(this.now());
  }

  private close(): void {
    this.state = CLOSED;
    this.count = 0;
    this.since = this.now();
    this.emit();
  }

  private emit(): void {
    for (const l of this.listeners) l(this.state);
  }
}

/**
 * A tier's health while its breaker skips calls: not ok, without asking the server (a health check must not wait
 * on it either); undefined when the breaker lets calls through. Moves a breaker due for its probe to half-open.
 */
export function breakerHealth(breaker: CircuitBreaker): (TierHealth & { breaker: BreakerStateName }) | undefined {
  if (breaker.state === CLOSED) return undefined;
  // Starts the probe if it is due; it answers later, so the breaker is still not closed below.
  breaker.poll();
  return { ok: false, status: `breaker ${breaker.stateName}`, breaker: breaker.stateName };
}

/** What the engine logs when tier `name`'s breaker opens or closes (nothing for half-open: the probe's answer follows). */
export function breakerMessage(label: string, breaker: CircuitBreaker, state: BreakerState): string | undefined {
  const s = breaker.settings;
  if (s === undefined || state === HALF_OPEN) return undefined;
  if (state === OPEN) return `${label}: circuit breaker open after ${s.failures} failed or timed-out calls within ${s.window} ms; its calls are skipped for ${s.openFor} ms, then one probe decides`;
  return `${label}: circuit breaker closed, the server answered; calls go out again`;
}
