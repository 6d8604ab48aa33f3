// Runs every benchmark in bench/ in sequence, in this process; prints figures, asserts nothing.
//
//   node --expose-gc build/bench/run.js [engine] [addon] [dataplane-packets] [dataplane-programming] [agent] [drop-log] [debug-reads]   (all when none is named)
//
// --expose-gc lets the benchmarks collect garbage before they read RSS (the npm scripts pass it).
// The engine benchmark goes first so that its RSS figure is not inflated by the others. The addon and
// dataplane benchmarks need root and say so (and skip) without it.
import { runEngineBenchmark } from './engine-compile';
import { main as runAddonBenchmark } from './addon-apply';
import { runProgrammingBenchmark } from './dataplane';
import { runPathBenchmark } from './packet-paths';
import { runAgentLatencyBenchmark } from './agent-latency';
import { runDropLogBenchmark } from './drop-log';
import { runDebugReadsBenchmark } from './debug-reads';

const BENCHMARKS: readonly { name: string; run: () => void | Promise<void> }[] = [
  { name: 'engine', run: () => runEngineBenchmark() },
  { name: 'addon', run: () => runAddonBenchmark([]) },
  { name: 'dataplane-packets', run: () => runPathBenchmark() },
  { name: 'dataplane-programming', run: () => runProgrammingBenchmark() },
  { name: 'agent', run: () => runAgentLatencyBenchmark() },
  { name: 'drop-log', run: () => runDropLogBenchmark() },
  { name: 'debug-reads', run: () => runDebugReadsBenchmark() },
];

async function main(argv: readonly string[]): Promise<void> {
  const unknown = argv.filter((a) => !BENCHMARKS.some((b) => b.name === a));
  if (unknown.length > 0) throw new Error(`unknown benchmark ${unknown.join(', ')}; choose from ${BENCHMARKS.map((b) => b.name).join(', ')}`);
  const chosen = argv.length === 0 ? BENCHMARKS : BENCHMARKS.filter((b) => argv.includes(b.name));
  if (typeof (globalThis as { gc?: unknown }).gc !== 'function') console.log('note: started without --expose-gc, so RSS figures include garbage\n');
  let failed = 0;
  for (const b of chosen) {
    console.log(`=== ${b.name} ===`);
    const t0 = Date.now();
    try {
      await b.run();
    } catch (err) {
      failed++;
      console.error(`benchmark ${b.name} failed:`, err);
    }
    console.log(`(${b.name}: ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
  }
  if (failed > 0) process.exitCode = 1;
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
