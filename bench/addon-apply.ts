// Benchmark: programming nftables through the nftables-napi addon, against
// the nft command line. Prints figures only; asserts nothing about time.
//
//   node build/bench/addon-apply.js [--ops N] [--elements N] [--repeat N]
//
// Needs root. Works in a throwaway network namespace `napi-bench-<pid>` that
// it creates and always deletes. Scenarios:
//   1. single element add / delete latency (median, p99), runSync and run()
//   2. the same through `ip netns exec NS nft add element ...` (fewer ops)
//   3. a 100,000-element batch through the addon vs `ip netns exec NS nft -f FILE`
//   4. listing the 100,000 elements (addon with JSON.parse, and nft -j)

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NftContext } from 'nftables-napi';
import { fmtMs as fmt, median, summarize } from './report';
import type { Summary } from './report';

interface Options {
  readonly ops: number;
  readonly elements: number;
  readonly repeat: number;
  readonly cliOps: number;
}

function parseArgs(argv: readonly string[]): Options {
  const get = (flag: string, dflt: number): number => {
    const i = argv.indexOf(flag);
    if (i < 0) return dflt;
    const v = Number(argv[i + 1]);
    if (!Number.isInteger(v) || v <= 0) throw new Error(`${flag} needs a positive integer`);
    return v;
  };
  return { ops: get('--ops', 2000), elements: get('--elements', 100_000), repeat: get('--repeat', 3), cliOps: get('--cli-ops', 50) };
}

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

function addr(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

/** `add element` lines of 1000 elements each, as the dataplane would write them. */
function elementBatch(n: number): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i += 1000) {
    const chunk: string[] = [];
    for (let j = i; j < Math.min(n, i + 1000); j++) chunk.push(addr(j));
    lines.push(`add element inet bench s { ${chunk.join(', ')} }`);
  }
  return `${lines.join('\n')}\n`;
}

function run(cmd: string, args: readonly string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 512 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 6).join(' ')} failed: ${r.stderr}`);
}

/** Wall time of a child process, ms. */
function timeSpawn(cmd: string, args: readonly string[]): number {
  const t0 = nowMs();
  run(cmd, args);
  return nowMs() - t0;
}

interface Row {
  readonly scenario: string;
  readonly via: string;
  readonly n: string;
  readonly median: string;
  readonly p99: string;
  readonly note: string;
}

function printTable(rows: readonly Row[]): void {
  const head: Row = { scenario: 'scenario', via: 'via', n: 'n', median: 'median', p99: 'p99 / min..max', note: 'note' };
  const cols: (keyof Row)[] = ['scenario', 'via', 'n', 'median', 'p99', 'note'];
  const width = (c: keyof Row): number => Math.max(...[head, ...rows].map((r) => r[c].length));
  const line = (r: Row): string => cols.map((c) => r[c].padEnd(width(c))).join(' | ');
  console.log(line(head));
  console.log(cols.map((c) => '-'.repeat(width(c))).join('-|-'));
  for (const r of rows) console.log(line(r));
}

/**
 * The raw addon figure: one element added, then deleted, per call, in a one-field hash set
 * (`add set TABLE SET { type ipv4_addr; }`, created by the caller), through runSync or run().
 * Samples in ms.
 */
export async function singleElementLatency(ctx: NftContext, table: string, set: string, ops: number, via: 'runSync' | 'run'): Promise<{ add: number[]; del: number[] }> {
  const apply = async (cmd: string): Promise<void> => (via === 'runSync' ? ctx.runSync(cmd) : ctx.run(cmd));
  // Warm up the context's cache and the code paths.
  for (let i = 0; i < 100; i++) ctx.runSync(`add element inet ${table} ${set} { ${addr(i)} }`);
  ctx.runSync(`flush set inet ${table} ${set}`);
  const add: number[] = [];
  const del: number[] = [];
  for (let i = 0; i < ops; i++) {
    const t0 = nowMs();
    await apply(`add element inet ${table} ${set} { ${addr(i)} }`);
    add.push(nowMs() - t0);
  }
  for (let i = 0; i < ops; i++) {
    const t0 = nowMs();
    await apply(`delete element inet ${table} ${set} { ${addr(i)} }`);
    del.push(nowMs() - t0);
  }
  return { add, del };
}

async function singleOps(ctx: NftContext, o: Options, rows: Row[]): Promise<void> {
  const sync = await singleElementLatency(ctx, 'bench', 's', o.ops, 'runSync');
  const async_ = await singleElementLatency(ctx, 'bench', 's', o.ops, 'run');
  const row = (scenario: string, via: string, s: Summary, note = ''): Row => ({
    scenario,
    via,
    n: String(s.n),
    median: fmt(s.median),
    p99: fmt(s.p99),
    note,
  });
  rows.push(row('single add', 'addon runSync', summarize(sync.add)));
  rows.push(row('single delete', 'addon runSync', summarize(sync.del)));
  rows.push(row('single add', 'addon run()', summarize(async_.add), 'includes the thread-pool hop'));
  rows.push(row('single delete', 'addon run()', summarize(async_.del), 'includes the thread-pool hop'));
}

function cliSingleOps(ns: string, o: Options, rows: Row[]): void {
  const add: number[] = [];
  const del: number[] = [];
  for (let i = 0; i < o.cliOps; i++) {
    add.push(timeSpawn('ip', ['netns', 'exec', ns, 'nft', 'add', 'element', 'inet', 'bench', 's', `{ ${addr(i)} }`]));
  }
  for (let i = 0; i < o.cliOps; i++) {
    del.push(timeSpawn('ip', ['netns', 'exec', ns, 'nft', 'delete', 'element', 'inet', 'bench', 's', `{ ${addr(i)} }`]));
  }
  for (const [scenario, s] of [['single add', summarize(add)], ['single delete', summarize(del)]] as const) {
    rows.push({ scenario, via: 'ip netns exec nft', n: String(s.n), median: fmt(s.median), p99: fmt(s.p99), note: 'process start included' });
  }
}

function minMax(xs: readonly number[]): string {
  return `${fmt(Math.min(...xs))}..${fmt(Math.max(...xs))}`;
}

async function batchOps(ctx: NftContext, ns: string, o: Options, rows: Row[], dir: string): Promise<void> {
  const t0 = nowMs();
  const batch = elementBatch(o.elements);
  const renderMs = nowMs() - t0;
  const file = join(dir, 'batch.nft');
  writeFileSync(file, batch);
  const n = o.elements.toLocaleString('en-US');

  const sync: number[] = [];
  const async_: number[] = [];
  const cli: number[] = [];
  const listSync: number[] = [];
  const listAsync: number[] = [];
  const listCli: number[] = [];
  for (let r = 0; r < o.repeat; r++) {
    ctx.runSync('flush set inet bench s');
    let t = nowMs();
    ctx.runSync(batch);
    sync.push(nowMs() - t);

    ctx.runSync('flush set inet bench s');
    t = nowMs();
    await ctx.run(batch);
    async_.push(nowMs() - t);

    ctx.runSync('flush set inet bench s');
    cli.push(timeSpawn('ip', ['netns', 'exec', ns, 'nft', '-f', file]));

    // Listing: the set is full again (the CLI just filled it).
    t = nowMs();
    const doc = ctx.listSync('list set inet bench s');
    listSync.push(nowMs() - t);
    if (countElements(doc) !== o.elements) throw new Error(`listed ${countElements(doc)} elements, expected ${o.elements}`);
    t = nowMs();
    await ctx.list('list set inet bench s');
    listAsync.push(nowMs() - t);
    listCli.push(timeSpawn('ip', ['netns', 'exec', ns, 'nft', '-j', 'list', 'set', 'inet', 'bench', 's']));
  }
  const med = median;
  const ratio = med(sync) / med(cli);
  const ratioAsync = med(async_) / med(cli);
  const rowOf = (scenario: string, via: string, xs: readonly number[], note: string): Row => ({
    scenario,
    via,
    n: String(xs.length),
    median: fmt(med(xs)),
    p99: minMax(xs),
    note,
  });
  rows.push(rowOf(`batch ${n} elements`, 'addon runSync', sync, `addon/CLI = ${ratio.toFixed(2)}`));
  rows.push(rowOf(`batch ${n} elements`, 'addon run()', async_, `addon/CLI = ${ratioAsync.toFixed(2)}`));
  rows.push(rowOf(`batch ${n} elements`, 'ip netns exec nft -f', cli, `rendering the text in JS: ${fmt(renderMs)}`));
  rows.push(rowOf(`list ${n} elements`, 'addon listSync', listSync, 'includes JSON.parse'));
  rows.push(rowOf(`list ${n} elements`, 'addon list()', listAsync, 'includes JSON.parse'));
  rows.push(rowOf(`list ${n} elements`, 'ip netns exec nft -j', listCli, 'process start included, no parse'));
}

function countElements(doc: unknown): number {
  if (typeof doc !== 'object' || doc === null || !('nftables' in doc)) return -1;
  const list: unknown = doc.nftables;
  if (!Array.isArray(list)) return -1;
  for (const o of list) {
    if (typeof o === 'object' && o !== null && 'set' in o) {
      const s: unknown = o.set;
      if (typeof s === 'object' && s !== null && 'elem' in s && Array.isArray(s.elem)) return s.elem.length;
    }
  }
  return 0;
}

export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const o = parseArgs(argv);
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    console.log('addon-apply: skipped, needs root (ip netns, setns)');
    return;
  }
  const ns = `napi-bench-${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), 'napi-bench-'));
  execFileSync('ip', ['netns', 'add', ns]);
  const cleanup = (): void => {
    spawnSync('ip', ['netns', 'delete', ns]);
    rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (): void => {
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const ctx = new NftContext({ netns: `/run/netns/${ns}` });
  try {
    ctx.runSync('add table inet bench\nadd set inet bench s { type ipv4_addr; }\n');
    const rows: Row[] = [];
    await singleOps(ctx, o, rows);
    ctx.runSync('flush set inet bench s');
    cliSingleOps(ns, o, rows);
    ctx.runSync('flush set inet bench s');
    await batchOps(ctx, ns, o, rows, dir);

    console.log(`addon-apply: nftables-napi vs nft ${nftVersion()}, node ${process.version}, netns ${ns}`);
    console.log(`single ops: ${o.ops} each through the addon (p99 column = p99), ${o.cliOps} through the CLI;`);
    console.log(`batches and lists: ${o.repeat} runs each (p99 column = min..max); set type ipv4_addr, lines of 1000 elements\n`);
    printTable(rows);
  } finally {
    ctx.close();
    cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function nftVersion(): string {
  const r = spawnSync('nft', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().replace(/^nftables /, '') : 'unknown';
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
