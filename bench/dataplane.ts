// Dataplane benchmarks, with the real path (NodeCompiler -> Dataplane -> KernelNftBackend -> kernel).
// Prints figures and ratios; asserts nothing about time. Needs root (network namespaces, nftables).
// Run with --expose-gc (npm run bench does), so that RSS figures count live data only.
//
//   node --expose-gc build/bench/run.js dataplane-packets dataplane-programming   (npm run bench:dataplane)
//
// 1. Per-packet cost of every path through the table: bench/packet-paths.ts (npm run bench:paths).
//    This file keeps what it and bench/drop-log.ts share: the packet cluster (the reference cluster
//    plus a server selected by 50 policies), connrate (bench/tools/connrate.c) and its server.
// 2. Programming time: one node's rule table of the reference cluster written into a fresh netns
//    from empty, a second sync, and single updates on the product path (a compiler delta applied by
//    Dataplane.apply through the addon's async run(): remote pod relabel, local pod add/delete/relabel),
//    median, p99 and spread, next to the raw addon figure (one element, one-field hash set, empty table).
//    BENCH_UPDATE_SAMPLES (100 per kind), BENCH_RAW_OPS (1000).
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { ClusterEvent, NamespaceState, PodState, PolicyPeer, PolicyRule, PolicyState, PortSpec, Selector } from '../src/api';
import { NodeCompiler } from '../src/compiler';
import { Dataplane, DEFAULT_TABLE } from '../src/dataplane';
import type { SyncReport } from '../src/dataplane';
import { KernelNftBackend } from '../src/dataplane/nft';
import type { NftBackend, TableSnapshot, Transaction } from '../src/dataplane/nft';
import { Sandbox } from '../src/sandbox';
import { NftContext } from 'nftables-napi';
import { singleElementLatency } from './addon-apply';
import { fmtMs, median, mib, printTable, rssAfterGc, summarize } from './report';
import { clusterEvents, referenceCluster } from './synthetic-cluster';
import type { SyntheticCluster } from './synthetic-cluster';

const env = (name: string, dflt: number): number => {
  const v = Number(process.env[name] ?? dflt);
  return Number.isFinite(v) && v > 0 ? v : dflt;
};

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

export function isRoot(): boolean {
  return typeof process.getuid !== 'function' || process.getuid() === 0;
}

// ------------------------------------------------------------------------------------------ tools

const CONNRATE_SRC = resolve(__dirname, '../../bench/tools/connrate.c');
const CONNRATE_BIN = resolve(__dirname, 'tools/connrate');

/** Compiles connrate.c into build/bench/tools/ when missing or stale; null (with the reason printed) if it cannot. */
export function buildConnrate(): string | null {
  try {
    if (existsSync(CONNRATE_BIN) && statSync(CONNRATE_BIN).mtimeMs >= statSync(CONNRATE_SRC).mtimeMs) return CONNRATE_BIN;
    mkdirSync(dirname(CONNRATE_BIN), { recursive: true });
    const r = spawnSync('cc', ['-O2', '-Wall', '-o', CONNRATE_BIN, CONNRATE_SRC], { encoding: 'utf8' });
    if (r.status !== 0) {
      console.log(`dataplane: could not compile ${CONNRATE_SRC} (${r.error?.message ?? r.stderr.trim()})`);
      return null;
    }
    return CONNRATE_BIN;
  } catch (err) {
    console.log(`dataplane: could not build connrate: ${err instanceof Error ? err.message : String(err)}`);
    return null;
  }
}

/** Wraps the kernel backend to time list() and run() and keep the last transaction sent. */
class RecordingBackend implements NftBackend {
  lastTx: Transaction | null = null;
  listMs = 0;
  renderMs = 0;
  nftMs = 0;
  batchBytes = 0;

  constructor(private readonly inner: NftBackend) {}

  get table(): string {
    return this.inner.table;
  }

  reset(): void {
    this.lastTx = null;
    this.listMs = this.renderMs = this.nftMs = this.batchBytes = 0;
  }

  async run(tx: Transaction): Promise<void> {
    const t0 = nowMs();
    this.batchBytes = tx.toString().length; // renders and caches the batch lines
    const t1 = nowMs();
    this.renderMs += t1 - t0;
    await this.inner.run(tx);
    this.nftMs += nowMs() - t1;
    this.lastTx = tx;
  }

  check(tx: Transaction): Promise<void> {
    return this.inner.check(tx);
  }

  async list(): Promise<TableSnapshot | null> {
    const t0 = nowMs();
    const s = await this.inner.list();
    this.listMs += nowMs() - t0;
    return s;
  }

  listCounters(): Promise<TableSnapshot | null> {
    return this.inner.listCounters();
  }

  close(): void {
    this.inner.close();
  }
}

function opCounts(tx: Transaction | null): Map<string, number> {
  const m = new Map<string, number>();
  for (const op of tx?.operations ?? []) {
    const k = `${op.verb} ${op.object.kind}`;
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

function opSummary(tx: Transaction | null): string {
  const m = opCounts(tx);
  return m.size === 0 ? 'none' : [...m].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n} ${k}`).join(', ');
}

function snapshotCounts(s: TableSnapshot | null): { chains: number; rules: number; sets: number; setElements: number; mapElements: number } {
  return {
    chains: s?.chains.length ?? 0,
    rules: s?.chains.reduce((n, c) => n + c.rules.length, 0) ?? 0,
    sets: s?.sets.length ?? 0,
    setElements: s?.sets.reduce((n, x) => n + x.elements.length, 0) ?? 0,
    mapElements: s?.maps.reduce((n, x) => n + x.elements.length, 0) ?? 0,
  };
}

// ------------------------------------------------------------------------------------------ 1. packets

export const SERVER = { namespace: 'bench', name: 'server', ip: '10.250.0.10' };
export const CLIENT = { namespace: 'bench-client', name: 'client', ip: '10.250.0.20' };
/** The C accept-and-close server's port: declared by the server pod (container port "bench"). */
export const BENCH_PORT = 7000;
/** The sandbox helper's port (Node): the fallback server. */
const HELPER_PORT = 8080;
/** Declared by the server (container port "metrics"), which some of the 50 policies name. */
const METRICS_PORT = 9090;

const sel = (key: string, operator: 'In' | 'NotIn' | 'Exists', values: string[] = []): Selector => ({ requirements: [{ key, operator, values }] });
const EVERYTHING: Selector = { requirements: [] };
const tcp = (port: number, endPort = port): PortSpec => ({ kind: 'number', protocol: 'TCP', port, endPort });
const named = (name: string, protocol: 'TCP' | 'UDP' = 'TCP'): PortSpec => ({ kind: 'named', protocol, name });

/** 50 policies in the server's namespace that select it; policy 25 allows the client on "bench" and 8080. */
function serverPolicies(): PolicyState[] {
  const selectors: Selector[] = [sel('app', 'In', ['server']), sel('role', 'In', ['server', 'frontend']), sel('tier', 'Exists'), EVERYTHING];
  const ruleOf = (i: number, j: number): PolicyRule => {
    const k = i * 3 + j;
    switch (k % 6) {
      case 0:
        return { peers: [{ kind: 'pods', podSelector: sel('app', 'In', [`app-${k % 8}`]), namespaceSelector: sel('team', 'In', [`t${k % 20}`]) }], ports: [named('http')] };
      case 1:
        return { peers: [{ kind: 'pods', podSelector: sel('tier', 'In', ['web', 'api']), namespaceSelector: sel('env', 'NotIn', ['dev']) }], ports: [tcp(8000, 8100)] };
      case 2: {
        const b = 16 + (k % 16);
        const peers: PolicyPeer[] = [
          { kind: 'ipBlock', cidr: `172.${b}.0.0/16`, except: [`172.${b}.${k % 256}.0/24`, `172.${b}.${(k * 7 + 100) % 256}.128/25`] },
          { kind: 'ipBlock', cidr: `192.168.${k % 256}.0/24`, except: [`192.168.${k % 256}.128/26`] },
        ];
        return { peers, ports: [tcp(BENCH_PORT), { kind: 'number', protocol: 'UDP', port: 53, endPort: 53 }] };
      }
      case 3:
        return { peers: [{ kind: 'pods', podSelector: sel('role', 'In', ['worker']), namespaceSelector: null }], ports: [named('bench'), named('metrics')] };
      case 4:
        return { peers: [{ kind: 'pods', podSelector: EVERYTHING, namespaceSelector: sel('purpose', 'In', ['monitoring']) }], ports: [named('metrics')] };
      default:
        return {
          peers: [
            { kind: 'pods', podSelector: sel('access', 'Exists'), namespaceSelector: null },
            { kind: 'ipBlock', cidr: '100.64.0.0/10', except: [`100.${64 + (k % 64)}.0.0/16`] },
          ],
          ports: null,
        };
    }
  };
  return Array.from({ length: 50 }, (_, i): PolicyState => {
    const rules = i === 25
      ? [{ peers: [{ kind: 'pods', podSelector: sel('role', 'In', ['client']), namespaceSelector: sel('kubernetes.io/metadata.name', 'In', [CLIENT.namespace]) }], ports: [named('bench'), tcp(HELPER_PORT)] } satisfies PolicyRule]
      : Array.from({ length: 1 + (i % 3) }, (_, j) => ruleOf(i, j));
    return { namespace: SERVER.namespace, name: `server-policy-${i}`, podSelector: selectors[i % selectors.length] as Selector, ingressIsolation: true, egressIsolation: false, ingress: rules, egress: [] };
  });
}

export interface PacketCluster {
  readonly node: string;
  readonly events: ClusterEvent[];
  readonly serverPolicies: PolicyState[];
  readonly syntheticPolicies: number;
  readonly pods: number;
  readonly localPods: number;
}

/** The reference cluster (100,000 pods) plus the bench's server and client on its busiest node. */
export function packetCluster(): PacketCluster {
  const { cluster: c, node } = referenceCluster();
  const others = c.nodes.filter((n) => n !== node);
  const ns = (name: string, extra: Record<string, string>): NamespaceState => ({ name, labels: { 'kubernetes.io/metadata.name': name, env: 'prod', ...extra } });
  const pod = (namespace: string, name: string, ip: string, onNode: string, labels: Record<string, string>, ports: PodState['ports']): PodState => ({
    namespace, name, uid: `uid-${namespace}-${name}`, labels, nodeName: onNode, hostNetwork: false, phase: 'Running', ips: [ip], ports,
  });
  const workers = Array.from({ length: 30 }, (_, i) =>
    pod(SERVER.namespace, `worker-${i}`, `10.250.1.${i + 1}`, others[i % others.length] as string, { app: `worker-${i % 5}`, role: 'worker', tier: ['web', 'api', 'db', 'cache'][i % 4] as string, ...(i % 3 === 0 ? { access: 'true' } : {}) },
      [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'bench', port: BENCH_PORT, protocol: 'TCP' }]));
  const base: SyntheticCluster = {
    nodes: c.nodes,
    namespaces: [...c.namespaces, ns(SERVER.namespace, { team: 'bench' }), ns(CLIENT.namespace, { team: 'bench-client' })],
    pods: [
      ...c.pods,
      pod(SERVER.namespace, SERVER.name, SERVER.ip, node, { app: 'server', role: 'server', tier: 'api' }, [
        { name: 'http', port: HELPER_PORT, protocol: 'TCP' },
        { name: 'bench', port: BENCH_PORT, protocol: 'TCP' },
        { name: 'metrics', port: METRICS_PORT, protocol: 'TCP' },
      ]),
      pod(CLIENT.namespace, CLIENT.name, CLIENT.ip, node, { app: 'client', role: 'client' }, []),
      ...workers,
    ],
    policies: c.policies,
  };
  return {
    node,
    events: clusterEvents(base),
    serverPolicies: serverPolicies(),
    syntheticPolicies: c.policies.length,
    pods: base.pods.length,
    localPods: base.pods.filter((p) => p.nodeName === node).length,
  };
}

export function compile(node: string, events: readonly ClusterEvent[]): { compiler: NodeCompiler; ms: number } {
  const compiler = new NodeCompiler(node);
  const t0 = nowMs();
  for (const e of events) compiler.apply(e);
  return { compiler, ms: nowMs() - t0 };
}

export interface RunResult {
  connections: number;
  errors: number;
  seconds: number;
  firstError: string;
}

export function parseClient(out: string): RunResult | null {
  const m = /connections=(\d+) errors=(\d+) seconds=([\d.]+) first_error=(.*)/.exec(out);
  return m === null ? null : { connections: Number(m[1]), errors: Number(m[2]), seconds: Number(m[3]), firstError: (m[4] ?? '').trim() };
}

/** Starts the C server in the server pod's netns; resolves once it listens. */
export function startServer(sandbox: Sandbox, bin: string): Promise<ChildProcess> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('ip', ['netns', 'exec', sandbox.podNetnsName(`${SERVER.namespace}/${SERVER.name}`), bin, 'server', String(BENCH_PORT), '3600'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => fail(new Error(`connrate server did not start in 5 s: ${err.trim()}`)), 5000);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(e);
    };
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolvePromise(child);
      }
    });
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`connrate server exited (${String(code)}): ${err.trim()}`)));
  });
}

// ------------------------------------------------------------------------------------------ 2. programming

interface TimedSync {
  report: SyncReport;
  wallMs: number;
  listMs: number;
  renderMs: number;
  nftMs: number;
  batchBytes: number;
  tx: Transaction | null;
}

async function timed(rec: RecordingBackend, fn: () => Promise<SyncReport>): Promise<TimedSync> {
  rec.reset();
  const t0 = nowMs();
  const report = await fn();
  const wallMs = nowMs() - t0;
  return { report, wallMs, listMs: rec.listMs, renderMs: rec.renderMs, nftMs: rec.nftMs, batchBytes: rec.batchBytes, tx: rec.lastTx };
}

function splitText(t: TimedSync): string {
  const js = t.wallMs - t.listMs - t.renderMs - t.nftMs;
  return `JS state+view+diff ${fmt(js)} ms, list ${fmt(t.listMs)} ms, render batch ${fmt(t.renderMs)} ms, nft run ${fmt(t.nftMs)} ms`;
}

export async function runProgrammingBenchmark(): Promise<void> {
  const SAMPLES = env('BENCH_UPDATE_SAMPLES', 100);
  const RAW_OPS = env('BENCH_RAW_OPS', 1000);
  if (!isRoot()) {
    console.log('dataplane programming time: skipped, needs root (network namespaces, nftables)\n');
    return;
  }
  const { generator: g, cluster, events, node, options } = referenceCluster();
  const { pods: PODS, nodes: NODES, namespaces: NAMESPACES, policies: POLICIES } = options;
  const { compiler, ms: compileMs } = compile(node, events);
  const elements = [...compiler.elements()];
  const byKind = new Map<string, number>();
  for (const e of elements) byKind.set(e.kind, (byKind.get(e.kind) ?? 0) + 1);

  const netns = `bench-${process.pid}-x`;
  const add = spawnSync('ip', ['netns', 'add', netns], { encoding: 'utf8' });
  if (add.status !== 0) throw new Error(`ip netns add ${netns}: ${add.stderr.trim()}`);
  const cleanup = (): void => {
    spawnSync('ip', ['netns', 'delete', netns]);
  };
  const onSignal = (): void => {
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const rec = new RecordingBackend(new KernelNftBackend({ table: DEFAULT_TABLE, netns: `/run/netns/${netns}` }));
  try {
    // The raw addon figure first, while the netns is empty: one element in a one-field hash set.
    const raw = new NftContext({ netns: `/run/netns/${netns}` });
    let rawSync: { add: number[] };
    let rawAsync: { add: number[] };
    try {
      raw.runSync('add table inet bench_raw\nadd set inet bench_raw s { type ipv4_addr; }\n');
      rawSync = await singleElementLatency(raw, 'bench_raw', 's', RAW_OPS, 'runSync');
      rawAsync = await singleElementLatency(raw, 'bench_raw', 's', RAW_OPS, 'run');
      raw.runSync('delete table inet bench_raw');
    } finally {
      raw.close();
    }
    const dataplane = new Dataplane(rec);
    const first = await timed(rec, () => dataplane.sync(elements));
    const rss = rssAfterGc();
    const elementAdds = opCounts(first.tx).get('add element') ?? 0;
    const listT0 = nowMs();
    const snap = await rec.list();
    const listMs = nowMs() - listT0;
    const counts = snapshotCounts(snap);
    const restart = await timed(rec, () => new Dataplane(rec).sync(elements));
    const reconcile = await timed(rec, () => dataplane.reconcile());

    console.log(`dataplane programming: ${fmt(PODS)} pods, ${fmt(NODES)} nodes, ${fmt(NAMESPACES)} namespaces, ${fmt(POLICIES)} policies (seed 42); node ${node} with ${cluster.pods.filter((p) => p.nodeName === node).length} local pods; fresh netns ${netns}`);
    printTable(['measure', 'value', 'target'], [
      ['compile, one node (NodeCompiler, all events)', `${fmt(compileMs)} ms`, ''],
      ['rule-table elements', `${fmt(elements.length)} (${[...byKind].map(([k, n]) => `${k} ${fmt(n)}`).join(', ')})`, ''],
      ['groups (group chains) / chains in the kernel', `${first.report.groups} / ${counts.chains} (${counts.rules} rules)`, ''],
      ['kernel set elements written (add element ops)', `${fmt(elementAdds)}; listing: ${counts.sets} sets with ${fmt(counts.setElements)} elements + ${counts.mapElements} vmap elements`, ''],
      ['transaction of the first sync', `${fmt(first.report.operations)} operations (${opSummary(first.tx)}), batch ${fmt(first.batchBytes / 1024)} KiB`, ''],
      ['first sync into an empty netns (wall)', `${fmt(first.wallMs)} ms`, '< 1000 ms'],
      ['  split', splitText(first), ''],
      ['second sync (new Dataplane, same elements: a restart)', `${fmt(restart.wallMs)} ms, ${restart.report.operations} operations`, '0 operations'],
      ['  split', splitText(restart), ''],
      ...(restart.report.operations > 0 && restart.report.operations <= 10
        ? [['  its operations', (restart.tx?.toString() ?? '').trim().split('\n').join(' | '), '']]
        : []),
      ['reconcile() on the same Dataplane', `${fmt(reconcile.wallMs)} ms, ${reconcile.report.operations} operations`, '0 operations'],
      ['listing the table (list + JSON parse)', `${fmt(listMs)} ms`, ''],
      [`RSS after the first sync${rss.collected ? ' (after gc)' : ' (no --expose-gc: includes garbage)'}`, `${mib(rss.bytes)} MiB (generated cluster, compiler and dataplane state)`, ''],
    ]);

    // Single updates on the product path: one compiler delta -> Dataplane.apply -> KernelNftBackend.run
    // (the addon's async run(), on the libuv pool) against the populated table.
    const local = cluster.pods.filter((p) => p.nodeName === node);
    const remote = cluster.pods.filter((p) => p.nodeName !== node);
    interface Sample { compileMs: number; applyMs: number; deltaSize: number; ops: number; nftMs: number }
    const samples = new Map<string, Sample[]>();
    let emptyDeltas = 0;
    const update = async (name: string, event: ClusterEvent): Promise<void> => {
      const c0 = nowMs();
      const delta = compiler.apply(event);
      const compileUpdateMs = nowMs() - c0;
      const t = await timed(rec, () => dataplane.apply(delta));
      const deltaSize = delta.added.length + delta.removed.length;
      // An empty delta never reaches the kernel: not a single update, only counted.
      if (deltaSize === 0) {
        emptyDeltas++;
        return;
      }
      const list = samples.get(name) ?? [];
      samples.set(name, list);
      list.push({ compileMs: compileUpdateMs, applyMs: t.wallMs, deltaSize, ops: t.report.operations, nftMs: t.nftMs });
    };
    const REMOTE = 'remote pod relabel (peer address in/out of sets)';
    for (let i = 0; i < SAMPLES * 50 && (samples.get(REMOTE)?.length ?? 0) < SAMPLES; i++) {
      const at = g.int(remote.length);
      const next: PodState = { ...(remote[at] as PodState), labels: g.podLabels() };
      remote[at] = next;
      await update(REMOTE, { type: 'upsert', kind: 'Pod', object: next });
    }
    const added: PodState[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const pod = g.pod(g.namespaceName(g.int(NAMESPACES)), node);
      added.push(pod);
      await update('local pod add (pod starting on this node)', { type: 'upsert', kind: 'Pod', object: pod });
    }
    for (const pod of added) await update('local pod delete', { type: 'delete', kind: 'Pod', ref: { namespace: pod.namespace, name: pod.name } });
    for (let i = 0; i < SAMPLES; i++) {
      const at = g.int(local.length);
      const next: PodState = { ...(local[at] as PodState), labels: g.podLabels() };
      local[at] = next;
      await update('local pod relabel', { type: 'upsert', kind: 'Pod', object: next });
    }
    const spread = (xs: readonly number[]): string => `${fmtMs(Math.min(...xs))}..${fmtMs(Math.max(...xs))}`;
    const rows: string[][] = [...samples].map(([name, xs]) => {
      const apply = summarize(xs.map((x) => x.applyMs));
      return [
        name,
        String(xs.length),
        fmtMs(apply.median),
        fmtMs(apply.p99),
        spread(xs.map((x) => x.applyMs)),
        fmtMs(median(xs.map((x) => x.nftMs))),
        fmtMs(median(xs.map((x) => x.applyMs - x.nftMs))),
        fmtMs(median(xs.map((x) => x.compileMs))),
        `${median(xs.map((x) => x.deltaSize))} / ${median(xs.map((x) => x.ops))} (max ${Math.max(...xs.map((x) => x.deltaSize))} / ${Math.max(...xs.map((x) => x.ops))})`,
      ];
    });
    for (const [via, r] of [['runSync', rawSync], ['run()', rawAsync]] as const) {
      const a = summarize(r.add);
      rows.push([`raw addon: one element add, one-field hash set, empty table (${via})`, String(a.n), fmtMs(a.median), fmtMs(a.p99), spread(r.add), '', '', '', '1 / 1']);
    }
    // The same one-element operation in the kinds of set the product writes, in the populated table:
    // the largest hash set of exact keys and the largest interval set (address . protocol . port),
    // with an element no rule uses.
    const listed = (await rec.list())?.sets ?? [];
    for (const [suffix, kind] of [['_px4', 'hash'], ['_pp4', 'interval']] as const) {
      const largest = listed.filter((x) => x.name.endsWith(suffix)).sort((x, y) => y.elements.length - x.elements.length)[0];
      if (largest === undefined) continue;
      const inSet = new NftContext({ netns: `/run/netns/${netns}` });
      const add: number[] = [];
      const del: number[] = [];
      try {
        for (let i = 0; i < SAMPLES; i++) {
          const element = `{ 10.255.${i >> 8}.${i & 255} . tcp . 1 }`;
          let t = nowMs();
          inSet.runSync(`add element inet ${DEFAULT_TABLE} ${largest.name} ${element}`);
          add.push(nowMs() - t);
          t = nowMs();
          inSet.runSync(`delete element inet ${DEFAULT_TABLE} ${largest.name} ${element}`);
          del.push(nowMs() - t);
        }
      } finally {
        inSet.close();
      }
      for (const [what, xs] of [['add', add], ['delete', del]] as const) {
        const a = summarize(xs);
        rows.push([`raw addon: one element ${what}, largest addr.proto.port ${kind} set (${fmt(largest.elements.length)} elements), populated table (runSync)`, String(a.n), fmtMs(a.median), fmtMs(a.p99), spread(xs), '', '', '', '1 / 1']);
      }
    }
    console.log(`single update on the product path: compiler delta -> Dataplane.apply -> nft run() (async), table of ${fmt(elements.length)} rule-table elements on ${node}; ${emptyDeltas} events gave an empty delta (not timed)`);
    printTable(['update', 'samples', 'apply median', 'apply p99', 'apply min..max', 'nft run median', 'JS median', 'compile median', 'delta elements / nft ops median (max)'], rows);
    const after = await timed(rec, () => new Dataplane(rec).sync(compiler.elements()));
    console.log(`after the updates, a fresh sync of the compiler's elements writes ${after.report.operations} operations (0: the incremental path left the kernel exactly as a full sync would)\n`);
  } finally {
    rec.close();
    cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

if (require.main === module) {
  runProgrammingBenchmark().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
