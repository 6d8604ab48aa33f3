// Helpers every benchmark prints with: one percentile definition for all of them, spread of noisy
// figures, RSS after a collection, and a plain-text table.

/** Nearest-rank percentile (q in [0, 1]): the smallest sample with at least q of the samples at or below it. */
export function percentile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] as number;
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 0.5);
}

export interface Summary {
  readonly n: number;
  readonly median: number;
  readonly p99: number;
  readonly min: number;
  readonly max: number;
}

export function summarize(samples: readonly number[]): Summary {
  return {
    n: samples.length,
    median: percentile(samples, 0.5),
    p99: percentile(samples, 0.99),
    min: samples.length === 0 ? NaN : Math.min(...samples),
    max: samples.length === 0 ? NaN : Math.max(...samples),
  };
}

/** Milliseconds as text with a unit that keeps 3 significant digits or so. */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  return ms < 1 ? `${(ms * 1000).toFixed(0)} us` : ms < 1000 ? `${ms.toFixed(2)} ms` : `${(ms / 1000).toFixed(3)} s`;
}

export function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(0);
}

/**
 * Resident set size after a full collection, so that it counts live data and not garbage. Benchmarks
 * run with --expose-gc (package.json); without it the figure includes garbage and says so.
 */
export function rssAfterGc(): { bytes: number; collected: boolean } {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  return { bytes: process.memoryUsage().rss, collected: gc !== undefined };
}

export function printTable(header: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  console.log('');
}
