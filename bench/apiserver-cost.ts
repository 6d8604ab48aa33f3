// What one agent costs the API server, and what the Kubernetes source costs the agent, measured with
// the product's source (KubernetesSource) against the fake API server of the tests, which counts the
// bytes it serves. The server runs in a child process so that the agent's RSS is the agent's alone.
//
//   node --expose-gc build/bench/apiserver-cost.js        (BENCH_PODS, BENCH_CHURN_SECONDS, BENCH_AGENTS to change)
//
// Pods are the synthetic reference cluster dressed as the API server serves them (bench/served-pod.ts).
// Churn is pod lifecycles, one write per step: created, scheduled, running, ready, terminating, deleted.
import { fork } from 'node:child_process';
import * as os from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import type { ClusterEvent, SourceSink } from '../src/api';
import { KubernetesSource } from '../src/source/kubernetes';
import { FakeApiServer } from '../test/support/fake-apiserver';
import { servedNamespace, servedPod } from './served-pod';
import type { PodStage } from './served-pod';
import { referenceCluster } from './synthetic-cluster';

interface Ready { readonly type: 'ready'; readonly kubeconfigPath: string; readonly pods: number; readonly podBytes: number[]; readonly pageGzipRatio: number }
interface Bytes { readonly type: 'bytes'; readonly list: number; readonly watch: number; readonly listUncompressed: number }
interface Churned { readonly type: 'churned'; readonly events: Record<string, number>; readonly bytesByStage: Record<string, number>; readonly seconds: number }
type FromServer = Ready | Bytes | Churned;
type ToServer = { readonly type: 'bytes' } | { readonly type: 'churn'; readonly rate: number; readonly seconds: number } | { readonly type: 'exit' };

const STAGES: readonly (PodStage | 'deleted')[] = ['pending', 'scheduled', 'running', 'ready', 'terminating', 'deleted'];

function envNumber(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

async function serve(): Promise<void> {
  const { cluster, generator } = referenceCluster();
  const server = new FakeApiServer();
  await server.start();
  for (const ns of cluster.namespaces) server.put('namespaces', servedNamespace(ns.name, ns.labels));
  const podBytes: number[] = [];
  for (const [i, pod] of cluster.pods.entries()) podBytes.push(JSON.stringify(server.put('pods', servedPod(pod, 'ready', i))).length);
  // One page of 500 as the server sends it to a client that accepts gzip.
  const page = JSON.stringify({ items: cluster.pods.slice(0, 500).map((p, i) => servedPod(p, 'ready', i)) });
  const pageGzipRatio = gzipSync(page).length / page.length;
  server.compact();
  server.sendBookmarksEvery(60_000); // as kube-apiserver does for watches that allow bookmarks
  const send = (m: FromServer): void => { process.send?.(m); };
  send({ type: 'ready', kubeconfigPath: server.kubeconfigPath, pods: cluster.pods.length, podBytes, pageGzipRatio });
  process.on('message', (m: ToServer) => {
    if (m.type === 'bytes') send({ type: 'bytes', ...server.bytes });
    if (m.type === 'exit') void server.close().then(() => process.exit(0));
    if (m.type === 'churn') {
      const events: Record<string, number> = {};
      const bytesByStage: Record<string, number> = {};
      const lifecycle = { pod: generator.pod('ns-1', 'node-1'), step: 0, number: 0 };
      const started = Date.now();
      let writes = 0;
      const timer = setInterval(() => {
        const stage = STAGES[lifecycle.step] ?? 'deleted';
        const before = server.bytes.watch;
        if (stage === 'deleted') server.remove('pods', `${lifecycle.pod.namespace}/${lifecycle.pod.name}`);
        else server.put('pods', servedPod(lifecycle.pod, stage, lifecycle.number));
        bytesByStage[stage] = (server.bytes.watch - before) / Math.max(1, server.openWatches('pods'));
        events[stage] = (events[stage] ?? 0) + 1;
        writes += 1;
        lifecycle.step += 1;
        if (lifecycle.step === STAGES.length) {
          lifecycle.pod = generator.pod('ns-1', `node-${writes % 5000}`);
          lifecycle.step = 0;
          lifecycle.number += 1;
        }
        if (writes >= m.rate * m.seconds) {
          clearInterval(timer);
          send({ type: 'churned', events, bytesByStage, seconds: (Date.now() - started) / 1000 });
        }
      }, 1000 / m.rate);
    }
  });
}

class CountingSink implements SourceSink {
  upserts = 0;
  deletes = 0;
  batches = 0;
  rejections = 0;
  problems: string[] = [];
  isSynced = false;
  events(batch: readonly ClusterEvent[]): void {
    this.batches += 1;
    for (const e of batch) {
      if (e.type === 'upsert') this.upserts += 1;
      else this.deletes += 1;
    }
  }
  rejected(): void { this.rejections += 1; }
  synced(): void { this.isSynced = true; }
  problem(message: string): void { this.problems.push(message); }
  health(): void {}
}

function request(child: ChildProcess, m: ToServer, type: FromServer['type']): Promise<FromServer> {
  return new Promise((resolve) => {
    const on = (r: FromServer): void => {
      if (r.type !== type) return;
      child.off('message', on);
      resolve(r);
    };
    child.on('message', on);
    child.send(m);
  });
}

async function waitFor(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 20));
}

const mb = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

export async function runApiServerCostBenchmark(): Promise<void> {
  const agents = envNumber('BENCH_AGENTS', 3);
  const churnSeconds = envNumber('BENCH_CHURN_SECONDS', 20);
  const child = fork(__filename, ['--serve'], { stdio: 'inherit' });
  try {
    const ready = await new Promise<Ready>((resolve) => child.once('message', (m: FromServer) => resolve(m as Ready)));
    const sizes = [...ready.podBytes].sort((a, b) => a - b);
    const meanPod = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    console.log(`pods: ${ready.pods}; one pod as served (JSON): mean ${meanPod.toFixed(0)} B, min ${sizes[0]} B, max ${sizes[sizes.length - 1]} B; a page of 500 gzips to ${(ready.pageGzipRatio * 100).toFixed(1)}%`);

    gc();
    const baseline = process.memoryUsage();
    const sources: { source: KubernetesSource; sink: CountingSink }[] = [];
    const syncSeconds: number[] = [];
    const syncCpuSeconds: number[] = [];
    let agentRss = 0;
    let agentHeap = 0;
    for (let i = 0; i < agents; i++) {
      const before = (await request(child, { type: 'bytes' }, 'bytes')) as Bytes;
      const sink = new CountingSink();
      const source = new KubernetesSource({ kubeconfigPath: ready.kubeconfigPath });
      const t0 = process.hrtime.bigint();
      const cpu0 = process.cpuUsage();
      source.start(sink);
      await waitFor(() => sink.isSynced);
      syncSeconds.push(Number(process.hrtime.bigint() - t0) / 1e9);
      const cpu = process.cpuUsage(cpu0);
      syncCpuSeconds.push((cpu.user + cpu.system) / 1e6);
      const after = (await request(child, { type: 'bytes' }, 'bytes')) as Bytes;
      sources.push({ source, sink });
      if (i === 0) {
        gc();
        const m = process.memoryUsage();
        agentRss = m.rss - baseline.rss;
        agentHeap = m.heapUsed - baseline.heapUsed;
        const wire = after.list - before.list;
        const raw = after.listUncompressed - before.listUncompressed;
        console.log(`list per agent: ${mb(raw)} of JSON, ${mb(wire)} on the wire with gzip (${(raw / ready.pods).toFixed(0)} B and ${(wire / ready.pods).toFixed(0)} B per pod, namespaces included)`);
        console.log(`source state after sync (one agent, batches dropped by the sink): RSS +${mb(agentRss)}, heap +${mb(agentHeap)} over ${mb(baseline.rss)} before; ${sink.upserts} upserts in ${sink.batches} batches`);
      }
    }
    {
      // One more agent reads the state as a streaming list (WatchList): watch events, not compressed.
      const before = (await request(child, { type: 'bytes' }, 'bytes')) as Bytes;
      const sink = new CountingSink();
      const source = new KubernetesSource({ kubeconfigPath: ready.kubeconfigPath, streamingList: true });
      const t0 = process.hrtime.bigint();
      const cpu0 = process.cpuUsage();
      source.start(sink);
      await waitFor(() => sink.isSynced);
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpu = process.cpuUsage(cpu0);
      const after = (await request(child, { type: 'bytes' }, 'bytes')) as Bytes;
      await source.stop();
      const streamed = after.watch - before.watch;
      console.log(`streaming list (sendInitialEvents) per agent: ${mb(streamed)} on the wire (${(streamed / ready.pods).toFixed(0)} B per pod), no list request; sync wall ${wall.toFixed(2)} s, agent CPU ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s`);
    }
    console.log(`first sync (list 3 kinds, gunzip, parse, reduce, diff) per agent, wall: ${syncSeconds.map((s) => s.toFixed(2)).join(' s, ')} s (median ${median(syncSeconds).toFixed(2)} s); agent CPU: ${syncCpuSeconds.map((s) => s.toFixed(2)).join(' s, ')} s (median ${median(syncCpuSeconds).toFixed(2)} s); ${agents} agents one after the other while the earlier ones watch; load average ${os.loadavg()[0]?.toFixed(1)} on ${os.cpus().length} cores`);

    const rate = 10;
    for (const s of sources) { s.sink.upserts = 0; s.sink.deletes = 0; s.sink.batches = 0; }
    const before = (await request(child, { type: 'bytes' }, 'bytes')) as Bytes;
    const churned = (await request(child, { type: 'churn', rate, seconds: churnSeconds }, 'churned')) as Churned;
    await new Promise((r) => setTimeout(r, 500));
    const after = (await request(child, { type: 'bytes' }, 'bytes')) as Bytes;
    const watchBytes = after.watch - before.watch;
    const perAgent = watchBytes / agents / churned.seconds;
    console.log(`churn: ${rate} pod writes/s for ${churned.seconds.toFixed(1)} s (${JSON.stringify(churned.events)}); bytes of one watch event per stage: ${JSON.stringify(churned.bytesByStage)}`);
    console.log(`watch per agent: ${(perAgent / 1024).toFixed(1)} KiB/s (${watchBytes} B to ${agents} agents); engine events per agent: ${sources.map((s) => `${s.sink.upserts} upserts + ${s.sink.deletes} deletes`).join('; ')} for ${rate * churnSeconds} writes`);
    const problems = sources.flatMap((s) => s.sink.problems);
    if (problems.length > 0) console.log(`problems: ${problems.join(' | ')}`);
    for (const s of sources) await s.source.stop();
    retainedObjectCost();
  } finally {
    child.send({ type: 'exit' });
  }
}

// Parsed pods measured for the informer-cache estimate: enough for a stable mean, few enough that the
// benchmark does not hold the whole cluster's objects twice.
const RETAINED_SAMPLE_PODS = 20_000;

/**
 * What a cache of full objects (an informer's) would hold: the heap of RETAINED_SAMPLE_PODS parsed served
 * pods, kept alive, per pod, and that mean multiplied out to the whole cluster (an extrapolation, not a
 * measurement of a cache that size).
 */
function retainedObjectCost(): void {
  const { cluster } = referenceCluster();
  const n = Math.min(RETAINED_SAMPLE_PODS, cluster.pods.length);
  const texts = cluster.pods.slice(0, n).map((p, i) => JSON.stringify(servedPod(p, 'ready', i)));
  gc();
  const before = process.memoryUsage().heapUsed;
  const kept = texts.map((t) => JSON.parse(t) as unknown);
  gc();
  const perPod = (process.memoryUsage().heapUsed - before) / kept.length;
  const whole = n === cluster.pods.length
    ? `${mb(perPod * n)} for all ${n} pods (measured)`
    : `${mb(perPod * cluster.pods.length)} for ${cluster.pods.length} pods (extrapolated: the mean of ${n} measured pods times ${cluster.pods.length}, not measured)`;
  console.log(`a full pod object kept in memory (what an informer cache holds): ${(perPod / 1024).toFixed(1)} KiB of heap each, measured over ${n} parsed pods; ${whole}`);
}

if (process.argv[2] === '--serve') {
  void serve();
} else if (require.main === module) {
  runApiServerCostBenchmark().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
