// Capped exponential backoff with jitter, so that a thousand agents that lost the API server at the
// same moment do not come back at the same moment.

export interface BackoffOptions {
  /** The first delay, before jitter. */
  readonly initialMs: number;
  /** The cap of the delay, before jitter. */
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 800, maxMs: 30_000 };

export class Backoff {
  private failures = 0;

  constructor(private readonly options: BackoffOptions, private readonly random: () => number) {}

  /** The delay before the next attempt: initial x 2^failures, capped, then scaled by a factor in [0.5, 1.5). */
  next(): number {
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
