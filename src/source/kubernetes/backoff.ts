// Capped exponential backoff with jitter, so that a thousand agents that lost the API server at the
// same moment do not come back at the same moment. As client-go's backoff manager, a stretch without
// failures (two minutes by default) starts the sequence over: a watch that ran for an hour and then
// failed is retried at once-ish, not after the delay its failures of last week had reached.

export interface BackoffOptions {
  /** The first delay, before jitter. */
  readonly initialMs: number;
  /** The cap of the delay, before jitter. */
  readonly maxMs: number;
  /** A failure this long after the previous one starts from initialMs again (default 120,000). */
  readonly resetAfterMs?: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 800, maxMs: 30_000, resetAfterMs: 120_000 };

export class Backoff {
  private failures = 0;
  private lastFailure = 0;

  constructor(private readonly options: BackoffOptions, private readonly random: () => number, private readonly now: () => number = Date.now) {}

  /** The delay before the next attempt: initial x 2^failures, capped, then scaled by a factor in [0.5, 1.5). */
  next(): number {
    const now = this.now();
    if (this.failures > 0 && now - this.lastFailure >= (this.options.resetAfterMs ?? 120_000)) this.failures = 0;
    this.lastFailure = now;
    const base = Math.min(this.options.maxMs, this.options.initialMs * 2 ** Math.min(this.failures, 30));
    this.failures += 1;
    return Math.round(base * (0.5 + this.random()));
  }

  get consecutiveFailures(): number {
    return this.failures;
  }

  reset(): void {
    this.failures = 0;
  }
}
