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
// 3. The same flood against the real agent: `netpol-agent run` in the node's namespace (a small
//    datastore: the two pods and a policy that allows the client on the bench port only), its CPU
//    and RSS from /proc, its output (lines, bytes) during the flood.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import { median, printTable } from './report';
import { BENCH_PORT, CLIENT, SERVER, buildConnrate, compile, isRoot, packetCluster, parseClient, startServer } from './dataplane';
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
  const BENCH_NODE = cluster.node;
  const withServerPolicies = [...cluster.events, ...cluster.serverPolicies.map((object) => ({ type: 'upsert', kind: 'NetworkPolicy', object }) as const)];
  const compiled = compile(BENCH_NODE, withServerPolicies);
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
    // 'off again' is an A/A control: the same configuration as 'off', measured in the same rounds, so
    // its ratio to 'off' shows how much two identical configurations differ on this machine.
    type Mode = 'off' | 'on' | 'off again';
    const modes: readonly Mode[] = ['off', 'on', 'off again'];
    const results: Record<Mode, RunResult[]> = { off: [], on: [], 'off again': [] };
    for (let round = 0; round < RUNS; round++) {
      for (let i = 0; i < modes.length; i++) {
        const mode = modes[(round + i) % modes.length] as Mode;
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
    const med = (m: Mode): number => median(results[m].map(rate));
    const pairedTo = (m: Mode): number[] => results[m].map((r, i) => rate(r) / rate(results.off[i] as RunResult));
    const spread = (xs: number[]): string => `per round ${xs.map((x) => x.toFixed(3)).join(' / ')} (median ${median(xs).toFixed(3)}, min ${Math.min(...xs).toFixed(3)}, max ${Math.max(...xs).toFixed(3)})`;
    printTable(['logging', 'conn/s (median)', 'runs', 'errors'], modes.map((m) => [m, fmt(med(m)), results[m].map((r) => fmt(rate(r))).join(' / '), String(results[m].reduce((n, r) => n + r.errors, 0))]));
    const ratio = med('on') / med('off');
    console.log(`on/off = ${ratio.toFixed(3)} (target >= 0.98: ${ratio >= 0.98 ? 'met' : 'NOT met'}); ${spread(pairedTo('on'))}`);
    console.log(`A/A control, off again/off = ${(med('off again') / med('off')).toFixed(3)}; ${spread(pairedTo('off again'))}\n`);

    // 2. The flood.
    const dataplane = await program(true);
    const index = new ClusterIndex();
    for (const e of withServerPolicies) index.apply(e);
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
    // The bench's own table and reader are gone: the agent programs its own and binds the group.
    await sandbox.exec(`node:${BENCH_NODE}`, ['nft', 'delete', 'table', 'inet', TABLE], 10_000);
    await floodTheAgent(sandbox, BENCH_NODE, FLOOD_SECONDS);
  } finally {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    backend.close();
    await sandbox.destroy();
  }
}

const MAIN = join(__dirname, '..', 'src', 'cli', 'main.js');

/** The two bench pods and a policy that lets the client reach the server on BENCH_PORT only. */
function agentDatastore(node: string): string {
  const ns = (name: string): string => `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${name}}\n`;
  const pod = (namespace: string, name: string, ip: string, labels: string): string =>
    `apiVersion: v1\nkind: Pod\nmetadata: {namespace: ${namespace}, name: ${name}, labels: ${labels}}\nspec: {nodeName: ${node}, containers: [{name: c}]}\nstatus: {phase: Running, podIPs: [{ip: ${ip}}]}\n`;
  const policy = `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {namespace: ${SERVER.namespace}, name: server-in}\nspec:\n  podSelector: {matchLabels: {app: server}}\n  ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: client}}}], ports: [{port: ${BENCH_PORT}}]}]\n`;
  return [ns(SERVER.namespace), ns(CLIENT.namespace), pod(SERVER.namespace, SERVER.name, SERVER.ip, '{app: server}'), pod(CLIENT.namespace, CLIENT.name, CLIENT.ip, '{app: client}'), policy].join('---\n');
}

/** utime + stime of a process, in seconds, and its RSS in MiB (from /proc). */
function procUsage(pid: number): { cpu: number; rssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return { cpu: ticks / 100, rssMiB: Number(rss) / 1024 };
}

/** Part 3: the real agent under the flood. */
async function floodTheAgent(sandbox: Sandbox, node: string, seconds: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-droplog-'));
  writeFileSync(join(dir, 'cluster.yaml'), agentDatastore(node));
  const table = `bench_agent_${process.pid}`;
  let out = '';
  let lines = 0;
  let bytes = 0;
  let counting = false;
  const debugDir = join(tmpdir(), `drop-log-bench-${process.pid}`);
  const agent: ChildProcess = spawn('ip', ['netns', 'exec', sandbox.nodeNetnsName(node), process.execPath, MAIN, 'run', '--node-name', node, '--datastore-file', dir, '--metrics-listen', '127.0.0.1:9979', '--debug-socket', join(debugDir, 'debug.sock'), '--table', table, '--resync-period', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  agent.stdout?.on('data', (d: Buffer) => {
    if (counting) {
      bytes += d.length;
      lines += d.toString().split('\n').length - 1;
    } else out += d.toString();
  });
  agent.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const end = Date.now() + 30_000;
    while (!out.includes('full sync committed')) {
      if (Date.now() > end || agent.exitCode !== null) throw new Error(`the agent did not sync:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1_000));
    const pid = agent.pid as number;
    const u0 = procUsage(pid);
    counting = true;
    const t0 = performance.now();
    const clientKey = `${CLIENT.namespace}/${CLIENT.name}`;
    const flood = await sandbox.exec(clientKey, [process.execPath, '-e', FLOOD_SCRIPT, SERVER.ip, String(FLOOD_BASE_PORT), String(FLOOD_PORTS), String(seconds)], (seconds + 30) * 1000);
    const wall = (performance.now() - t0) / 1000;
    const u1 = procUsage(pid);
    await new Promise((r) => setTimeout(r, 6_000)); // the last aggregation window ends
    const sent = Number(/sent=(\d+)/.exec(flood.stdout)?.[1] ?? NaN);
    const script = 'fetch(process.argv[1]).then(r=>r.text()).then(t=>process.stdout.write(t))';
    const metrics = (await sandbox.exec(`node:${node}`, [process.execPath, '-e', script, 'http://127.0.0.1:9979/metrics'], 10_000)).stdout;
    const droppedPackets = [...metrics.matchAll(/^netpol_agent_policy_packets_total\{[^}]*verdict="dropped"\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    const sum = (name: string): number => [...metrics.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
    const share = (u1.cpu - u0.cpu) / wall;
    console.log(`drop-log 3. the same flood against \`netpol-agent run\` (pid ${pid}, drop logging on, defaults) for ${seconds} s`);
    printTable(['figure', 'value'], [
      ['datagrams sent (all denied)', `${fmt(sent)} (${fmt(sent / wall)} /s)`],
      ['agent CPU', `${(share * 100).toFixed(1)}% of one core (${(u1.cpu - u0.cpu).toFixed(2)} s in ${wall.toFixed(1)} s, 10 ms ticks)`],
      ['dropped (agent /metrics, kernel counters)', fmt(droppedPackets)],
      ['records read (agent /metrics)', fmt(sum('netpol_agent_denied_connections_total'))],
      ['agent output during the flood and one window after', `${fmt(lines)} lines, ${fmt(bytes)} bytes`],
      ['agent RSS before / after', `${fmt(u0.rssMiB, 1)} / ${fmt(u1.rssMiB, 1)} MiB`],
    ]);
    console.log(`agent under 50% of one core: ${share < 0.5 ? 'yes' : 'NO'}\n`);
  } finally {
    if (agent.exitCode === null) {
      const exited = new Promise((r) => agent.once('exit', r));
      agent.kill('SIGTERM');
      await exited;
    }
    await sandbox.exec(`node:${node}`, ['nft', 'delete', 'table', 'inet', table], 10_000);
    rmSync(dir, { recursive: true, force: true });
    rmSync(debugDir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  runDropLogBenchmark().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
