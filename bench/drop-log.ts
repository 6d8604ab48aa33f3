// Denied-traffic logging benchmarks, on the product's path (NodeCompiler -> Dataplane with drop
// logging -> kernel; NflogReader -> explain -> DropLog). Prints figures; asserts nothing. Needs root.
//
//   node build/bench/drop-log.js        (or: node build/bench/run.js drop-log)
//
// 1. Cost on allowed traffic: new TCP connections/s client -> server on one node (routed sandbox),
//    the server isolated by the 50 policies of bench/dataplane.ts's cluster (10,000 policies), with
//    drop logging off and on (log rule in the group chains, the nflog reader running), alternated,
//    BENCH_LOG_RUNS x BENCH_CONN_SECONDS each. Load: connrate (bench/dataplane.ts's tooling).
// 2. A flood of denied packets: UDP from the client to 1,000 ports the server's policies deny, as
//    fast as a sender in the client pod goes (every packet is ct state new: a dropped packet never
//    confirms its conntrack entry). Reported: the flood's rate (the group chain's drop counter), the
//    CPU the drop pipeline used (this process: reader thread + explain + aggregation; the sender is
//    another process), records read, log lines written, RSS before and after.
import { Writable } from 'node:stream';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { RuleTableElement } from '../src/api';
import { DEFAULT_DROP_LOGGING } from '../src/agent';
import { Dataplane } from '../src/dataplane';
import { KernelNftBackend } from '../src/dataplane/nft';
import { ClusterIndex } from '../src/observe/cluster-index';
import { DropLog, dropContext } from '../src/observe/drops';
import { startDropReader } from '../src/observe/drop-reader';
import { Sandbox } from '../src/sandbox';
import { printTable } from './report';
import { BENCH_NODE, BENCH_PORT, CLIENT, SERVER, buildConnrate, compile, isRoot, median, packetCluster, parseClient, startServer } from './dataplane';
import type { RunResult } from './dataplane';

const env = (name: string, dflt: number): number => {
  const v = Number(process.env[name] ?? dflt);
  return Number.isFinite(v) && v > 0 ? v : dflt;
};
const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const TABLE = `bench_droplog_${process.pid}`;
const FLOOD_PORTS = 1_000;
const FLOOD_BASE_PORT = 20_000;

/** A UDP sender run in the client pod: as many datagrams as it can to FLOOD_PORTS ports, for `seconds`. */
const FLOOD_SCRIPT = `
const dgram = require('node:dgram');
const [ip, base, ports, seconds] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
const buf = Buffer.alloc(16);
let sent = 0, inFlight = 0;
const end = Date.now() + Number(seconds) * 1000;
const done = () => { inFlight--; };
function burst() {
  for (let i = 0; i < 256 && inFlight < 4096; i++) { inFlight++; s.send(buf, Number(base) + (sent % Number(ports)), ip, done); sent++; }
  if (Date.now() < end) setImmediate(burst); else setTimeout(() => { process.stdout.write('sent=' + sent + '\\n'); s.close(); }, 200);
}
burst();
`;

export async function runDropLogBenchmark(): Promise<void> {
  if (!isRoot()) {
    console.log('drop-log: skipped, needs root (network namespaces, nftables)\n');
    return;
  }
  const SECONDS = env('BENCH_CONN_SECONDS', 3);
  const RUNS = env('BENCH_LOG_RUNS', 5);
  const FLOOD_SECONDS = env('BENCH_FLOOD_SECONDS', 10);
  const cluster = packetCluster();
  const compiled = compile(BENCH_NODE, cluster.withServerPolicies);
  const elements: RuleTableElement[] = [...compiled.compiler.elements()];
  const bin = buildConnrate();
  if (bin === null) {
    console.log('drop-log: no C compiler for connrate: skipped\n');
    return;
  }
  const serverKey = `${SERVER.namespace}/${SERVER.name}`;
  const clientKey = `${CLIENT.namespace}/${CLIENT.name}`;
  const sandbox = await Sandbox.create({
    prefix: 'bench-dl',
    topology: 'routed',
    nodes: [BENCH_NODE],
    pods: [
      { key: serverKey, node: BENCH_NODE, ips: [SERVER.ip], ports: [] },
      { key: clientKey, node: BENCH_NODE, ips: [CLIENT.ip], ports: [] },
    ],
  });
  const netns = sandbox.nodeNetnsPath(BENCH_NODE);
  const backend = new KernelNftBackend({ table: TABLE, netns });
  const server = await startServer(sandbox, bin);
  try {
    const program = async (logging: boolean): Promise<Dataplane> => {
      const dp = new Dataplane(backend, logging ? { logging: DEFAULT_DROP_LOGGING } : {});
      await dp.sync(elements);
      return dp;
    };
    const measure = async (): Promise<RunResult> => {
      const r = await sandbox.exec(clientKey, [bin, 'client', SERVER.ip, String(BENCH_PORT), String(SECONDS)], (SECONDS + 20) * 1000);
      const parsed = parseClient(r.stdout);
      if (r.code !== 0 || parsed === null) throw new Error(`connrate client failed (${String(r.code)}): ${r.stdout.trim()} ${r.stderr.trim()}`);
      return parsed;
    };
    const rate = (r: RunResult): number => r.connections / r.seconds;

    console.log(`drop-log 1. allowed traffic, logging off vs on: new TCP connections/s ${clientKey} -> ${serverKey} ${BENCH_PORT}/TCP on ${BENCH_NODE}`);
    console.log(`  rule table: ${fmt(elements.length)} elements (${fmt(cluster.pods)} pods, ${fmt(cluster.syntheticPolicies)} policies + 50 selecting the server); ${RUNS} rounds x ${SECONDS} s, order alternated`);
    await program(false);
    await measure(); // warm-up
    const results: Record<'off' | 'on', RunResult[]> = { off: [], on: [] };
    for (let round = 0; round < RUNS; round++) {
      for (const mode of round % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
        await program(mode === 'on');
        const reader = mode === 'on' ? startDropReader({ group: DEFAULT_DROP_LOGGING.group, netns, log: new DropLog({ logger: pino({ level: 'silent' }), registry: new Registry() }), context: dropContext(new Dataplane(backend), new ClusterIndex()) }) : null;
        try {
          await new Promise((r) => setTimeout(r, 200));
          results[mode].push(await measure());
        } finally {
          reader?.close();
        }
      }
    }
    const paired = results.on.map((r, i) => rate(r) / rate(results.off[i] as RunResult));
    printTable(['logging', 'conn/s (median)', 'runs', 'errors'], (['off', 'on'] as const).map((m) => [m, fmt(median(results[m].map(rate))), results[m].map((r) => fmt(rate(r))).join(' / '), String(results[m].reduce((n, r) => n + r.errors, 0))]));
    const ratio = median(results.on.map(rate)) / median(results.off.map(rate));
    console.log(`on/off = ${ratio.toFixed(3)} (target >= 0.98: ${ratio >= 0.98 ? 'met' : 'NOT met'}); per round ${paired.map((x) => x.toFixed(3)).join(' / ')} (median ${median(paired).toFixed(3)}, min ${Math.min(...paired).toFixed(3)}, max ${Math.max(...paired).toFixed(3)})\n`);

    // 2. The flood.
    const dataplane = await program(true);
    const index = new ClusterIndex();
    for (const e of cluster.withServerPolicies) index.apply(e);
    let lines = 0;
    let bytes = 0;
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines++;
        bytes += chunk.length;
        cb();
      },
    });
    const registry = new Registry();
    const log = new DropLog({ logger: pino(sink), registry, windowMs: 5_000 });
    const reader = startDropReader({ group: DEFAULT_DROP_LOGGING.group, netns, log, context: dropContext(dataplane, index) });
    const dropped = async (): Promise<number> => (await dataplane.counters()).filter((g) => g.direction === 'ingress').reduce((n, g) => n + (g.counters.drop?.packets ?? 0), 0);
    const recorded = async (): Promise<number> => (await registry.getSingleMetric('netpol_agent_denied_connections_total')?.get())?.values.reduce((n, v) => n + v.value, 0) ?? 0;
    try {
      global.gc?.();
      const rss0 = process.memoryUsage().rss;
      const drop0 = await dropped();
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const flood = await sandbox.exec(clientKey, [process.execPath, '-e', FLOOD_SCRIPT, SERVER.ip, String(FLOOD_BASE_PORT), String(FLOOD_PORTS), String(FLOOD_SECONDS)], (FLOOD_SECONDS + 30) * 1000);
      const wall = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const drops = (await dropped()) - drop0;
      const rss1 = process.memoryUsage().rss;
      log.flush(true);
      const sent = Number(/sent=(\d+)/.exec(flood.stdout)?.[1] ?? NaN);
      const cpuShare = (cpu.user + cpu.system) / 1e6 / wall;
      console.log(`drop-log 2. flood of denied UDP (${FLOOD_PORTS} ports) ${clientKey} -> ${serverKey} for ${FLOOD_SECONDS} s; kernel log limit ${DEFAULT_DROP_LOGGING.rate}/s burst ${DEFAULT_DROP_LOGGING.burst} per group chain`);
      printTable(['figure', 'value'], [
        ['datagrams sent', fmt(sent)],
        ['dropped by the group chain (kernel counter)', `${fmt(drops)} (${fmt(drops / wall)} /s over ${wall.toFixed(1)} s)`],
        ['records read and explained', fmt(await recorded())],
        ['CPU of the drop pipeline (this process)', `${(cpuShare * 100).toFixed(1)}% of one core (user ${fmt(cpu.user / 1e3)} ms, system ${fmt(cpu.system / 1e3)} ms)`],
        ['log lines written (aggregated)', `${fmt(lines)} (${fmt(bytes)} bytes)`],
        ['RSS before / after', `${fmt(rss0 / 2 ** 20, 1)} / ${fmt(rss1 / 2 ** 20, 1)} MiB`],
      ]);
      console.log(`flood >= 20,000 denied packets/s: ${drops / wall >= 20_000 ? 'yes' : 'NO'}; pipeline under 50% of one core: ${cpuShare < 0.5 ? 'yes' : 'NO'}\n`);
    } finally {
      reader.close();
      log.close();
    }
  } finally {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    backend.close();
    await sandbox.destroy();
  }
}

if (require.main === module) {
  runDropLogBenchmark().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
