const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5_000;
const CLOSE_WAIT_MS = 1_000;

/**
 * The retry schedule of work kept for a tier that could not take it (deferred invalidations, queued writes):
 * one round at a time, after a backoff of 100 ms doubling to 5 s while rounds leave work behind, at once when
 * the tier says it is back, and one last bounded round at shutdown. `round` resolves true when nothing is left;
 * the owner says whether work is pending (`pending`) whenever that may have changed, and after each round
 * (`settled`).
 */
export class RetryLoop {
  #timer: NodeJS.Timeout | undefined;
  #backoff = MIN_BACKOFF_MS;
  #round: Promise<void> | undefined;
  #closed = false;

  constructor(
    private readonly round: () => Promise<boolean>,
    private readonly hooks: { settled(): void; failed(err: unknown): void },
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  /** Work is left (a round follows after the backoff) or none is (the backoff starts over). */
  pending(left: boolean): void {
    if (!left) {
      this.#backoff = MIN_BACKOFF_MS;
      clearTimeout(this.#timer);
      this.#timer = undefined;
      return;
    }
    if (this.#closed || this.#timer || this.#round) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#run();
    }, this.#backoff);
    this.#timer.unref();
  }

  /** A round now rather than after the backoff: the tier is back. */
  now(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#run();
  }

  /** Stops the timer, lets a running round finish, then makes one last attempt bounded by a second if `again()`. */
  async close(again: () => boolean): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#round) await this.#round;
    if (!again()) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.round(), new Promise((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)))]);
    clearTimeout(timer);
  }

  #run(): void {
    if (this.#round || this.#closed) return;
    this.#round = this.round()
      .then(
        (done) => {
          this.#backoff = done ? MIN_BACKOFF_MS : Math.min(this.#backoff * 2, MAX_BACKOFF_MS);
        },
        (err: unknown) => {
          this.#backoff = Math.min(this.#backoff * 2, MAX_BACKOFF_MS);
          this.hooks.failed(err);
        },
      )
      .finally(() => {
        this.#round = undefined;
        this.hooks.settled();
      });
  }
}
