// The agent's programming latency: from a change written to the file datastore to the kernel
// transaction that carries it committed, on the product's own path (FileSource -> AgentLoop ->
// NodeCompiler -> Dataplane -> nftables-napi), in a throwaway network namespace. Prints median and
// p99 per event kind, with local pod events as their own rows, at 1,000 and 100,000 pods, and the
// agent's RSS once synced. Needs root; run with --expose-gc for the RSS figure.
//
//   node --expose-gc build/bench/agent-latency.js [1000] [100000]      (BENCH_SAMPLES=n per row)
//
// The datastore is written by a child process; run one scale per process for a clean RSS figure.
// BENCH_TRACE=1 prints each sample's commit (events carried, when each was received, dataplane time).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import pino from 'pino';
import type { NamespaceState, PodState, PolicyState } from '../src/api';
import { namespaceJson, podJson, policyJson } from './manifests';
import { startAgent } from '../src/agent';
import type { CommitInfo } from '../src/agent';
import { KernelNftBackend } from '../src/dataplane/nft';
import { mib, percentile, printTable } from './report';
import { SyntheticGenerator, busiestNode } from './synthetic-cluster';
import type { SyntheticOptions } from './synthetic-cluster';

const SCALES: Record<string, SyntheticOptions> = {
  '1000': { seed: 42, pods: 1_000, nodes: 50, namespaces: 20, policies: 100 },
  '100000': { seed: 42, pods: 100_000, nodes: 5_000, namespaces: 2_000, policies: 10_000 },
};
const SAMPLES = Number(process.env['BENCH_SAMPLES'] ?? 20);
const TABLE = 'netpol_bench';
const CHANGE_FILE = 'zz-change.json';
const COMMIT_TIMEOUT_MS = 120_000;
const WRITE_DATASTORE = '--write-datastore';

// --- the synthetic cluster as manifests ---------------------------------------------------------

export const list = (items: object[]): string => JSON.stringify({ apiVersion: 'v1', kind: 'List', items });

// --- the run ---------------------------------------------------------------------------------

interface Row {
  readonly name: string;
  /** File change -> kernel commit. */
  readonly samples: number[];
  /** File change -> events delivered by the source (watch, debounce, stat, read, diff). */
  readonly source: number[];
  /** The dataplane's transaction, diff and kernel commit included. */
  readonly dataplane: number[];
}

export interface Datastore {
  readonly node: string;
  readonly localTemplate: PodState | undefined;
  readonly remoteNode: string;
  readonly toggled: NamespaceState;
  readonly counts: { namespaces: number; pods: number; policies: number; local: number };
}

/**
 * Writes the synthetic cluster as one JSON List per namespace, plus the change file the samples
 * rewrite; returns only what the samples need, so the cluster itself is garbage before the agent starts.
 */
export function writeDatastore(options: SyntheticOptions, dir: string): Datastore {
  const cluster = new SyntheticGenerator(options).cluster();
  const node = busiestNode(cluster);
  const localPods = cluster.pods.filter((p) => p.nodeName === node);
  // The change file owns one namespace (its labels are toggled) and a policy whose rule takes every
  // pod of the cluster as peers, selecting no pod until a local pod labelled bench=all-peers starts.
  const toggled = cluster.namespaces[1] ?? cluster.namespaces[0];
  if (toggled === undefined) throw new Error('the synthetic cluster has no namespace');
  const byNamespace = new Map<string, object[]>();
  const add = (namespace: string, item: object): void => {
    const items = byNamespace.get(namespace);
    if (items === undefined) byNamespace.set(namespace, [item]);
    else items.push(item);
  };
  for (const n of cluster.namespaces) if (n !== toggled) add(n.name, namespaceJson(n));
  for (const p of cluster.pods) add(p.namespace, podJson(p));
  for (const p of cluster.policies) add(p.namespace, policyJson(p));
  for (const [ns, items] of byNamespace) writeFileSync(join(dir, `${ns}.json`), list(items));
  return {
    node,
    localTemplate: localPods[0],
    remoteNode: cluster.nodes.find((n) => n !== node) ?? node,
    toggled,
    counts: { namespaces: cluster.namespaces.length, pods: cluster.pods.length, policies: cluster.policies.length, local: localPods.length },
  };
}

/** New objects for the samples: names and addresses of their own, never reused from the cluster. */
export class SampleObjects {
  private readonly generator: SyntheticGenerator;
  private n = 0;
  constructor(options: SyntheticOptions) {
    this.generator = new SyntheticGenerator({ ...options, seed: options.seed + 1 });
  }
  pod(namespace: string, node: string): PodState {
    const n = this.n++;
    return { ...this.generator.pod(namespace, node), name: `bench-pod-${n}`, uid: `bench-uid-${n}`, ips: [`10.250.${(n >> 8) & 255}.${n & 255}`] };
  }
  policy(namespace: string): PolicyState {
    return this.generator.policy(namespace);
  }
  podLabels(): Record<string, string> {
    return this.generator.podLabels();
  }
}

/** The datastore is written by a child process, so that this one holds only the agent once it runs. */
function writeDatastoreInChild(scale: string, dir: string): Datastore {
  const out = execFileSync(process.execPath, [__filename, WRITE_DATASTORE, scale, dir], { encoding: 'utf8', maxBuffer: 1 << 20 });
  return JSON.parse(out) as Datastore;
}

async function runScale(label: string, options: SyntheticOptions): Promise<void> {
  const generator = new SampleObjects(options);
  const dir = mkdtempSync(join(tmpdir(), 'agent-bench-'));
  const netns = `agentbench-${process.pid}`;
  const { node, localTemplate, remoteNode, toggled, counts } = writeDatastoreInChild(label, dir);
  const allPeersPolicy: object = {
    apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy',
    metadata: { namespace: localTemplate?.namespace ?? 'default', name: 'bench-all-peers' },
    spec: { podSelector: { matchLabels: { bench: 'all-peers' } }, ingress: [{ from: [{ namespaceSelector: {} }] }] },
  };
  const base = (envLabel: string): object[] => [namespaceJson({ name: toggled.name, labels: { ...toggled.labels, env: envLabel } }), allPeersPolicy];
  const envOriginal = toggled.labels['env'] ?? 'prod';
  const writeChange = (items: object[]): void => {
    const file = join(dir, CHANGE_FILE);
    writeFileSync(`${file}.tmp`, list(items));
    renameSync(`${file}.tmp`, file);
  };
  writeChange(base(envOriginal));

  execFileSync('ip', ['netns', 'add', netns]);
  const backend = new KernelNftBackend({ table: TABLE, netns: `/run/netns/${netns}` });
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const baselineRss = process.memoryUsage().rss;
  let waiter: ((c: CommitInfo) => void) | null = null;
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  const started = performance.now();
  let firstSync = 0;
  const synced = new Promise<void>((resolve) => {
    waiter = (c) => {
      if (c.report.kind === 'full') {
        firstSync = c.committedAt - started;
        resolve();
      }
    };
  });
  const agent = await startAgent({
    node, table: TABLE, metricsListen: '127.0.0.1:0', debugSocket: null, datastoreFile: dir, resyncPeriodMs: 0, backend,
    logger: pino({ level: 'warn' }),
    onCommitted: (c) => { if (c.events.length > 0) waiter?.(c); },
  });
  try {
    await synced;
    const syncLoopMax = loopDelay.max / 1e6;
    gc?.();
    const syncedRss = process.memoryUsage();
    loopDelay.reset();

    const rows: Row[] = [];
    const row = (name: string): Row => {
      let r = rows.find((x) => x.name === name);
      if (r === undefined) rows.push((r = { name, samples: [], source: [], dataplane: [] }));
      return r;
    };
    /** Writes the change file and times it until the transaction carrying its event is committed. */
    const measure = async (name: string, items: object[]): Promise<void> => {
      await new Promise((r) => setTimeout(r, 30)); // a lone change, not part of the previous one's burst
      const committed = new Promise<CommitInfo>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name}: no transaction committed within ${COMMIT_TIMEOUT_MS} ms`)), COMMIT_TIMEOUT_MS);
        waiter = (c) => {
          clearTimeout(timer);
          resolve(c);
        };
      });
      const t0 = performance.now();
      writeChange(items);
      const c = await committed;
      waiter = null;
      const r = row(name);
      if (process.env['BENCH_TRACE'] !== undefined) console.log(JSON.stringify({ name, total: c.committedAt - t0, kind: c.report.kind, events: c.events.length, received: c.events.map((e) => e.receivedAt - t0), dataplane: c.report.durationMs, ops: c.report.operations }));
      r.samples.push(c.committedAt - t0);
      r.source.push(Math.min(...c.events.map((e) => e.receivedAt)) - t0);
      r.dataplane.push(c.report.durationMs);
    };
    for (let i = 0; i < SAMPLES; i++) {
      const env = envOriginal;
      const policy = generator.policy(localTemplate?.namespace ?? 'default');
      const selecting: PolicyState = { ...policy, name: `bench-policy-${i}`, podSelector: { requirements: [{ key: 'app', operator: 'In', values: [localTemplate?.labels['app'] ?? 'app-0'] }] } };
      const changed: PolicyState = { ...selecting, ingress: [...selecting.ingress, { peers: [{ kind: 'ipBlock', cidr: `192.168.${i}.0/24`, except: [] }], ports: null }], ingressIsolation: true };
      await measure('NetworkPolicy add (selects a local pod)', [...base(env), policyJson(selecting)]);
      await measure('NetworkPolicy update', [...base(env), policyJson(changed)]);
      await measure('NetworkPolicy delete', base(env));
      const remote = generator.pod(localTemplate?.namespace ?? 'default', remoteNode);
      await measure('Pod add (remote)', [...base(env), podJson(remote)]);
      await measure('Pod label change (remote)', [...base(env), podJson({ ...remote, labels: { ...generator.podLabels(), rev: String(i) } })]);
      await measure('Pod delete (remote)', base(env));
      await measure('Namespace label change', base(env === 'dev' ? 'prod' : 'dev'));
      await measure('Namespace label change', base(env));
      const local = generator.pod(localTemplate?.namespace ?? 'default', node);
      await measure('LocalPod add', [...base(env), podJson(local)]);
      await measure('LocalPod delete', base(env));
      await measure('LocalPod add (rule peers: every pod)', [...base(env), podJson({ ...local, labels: { ...local.labels, bench: 'all-peers' } })]);
      await measure('LocalPod delete (rule peers: every pod)', base(env));
    }
    const loopMax = loopDelay.max / 1e6;
    const loopP99 = loopDelay.percentile(99) / 1e6;
    console.log(`${label} pods: ${counts.pods} pods, ${counts.namespaces} namespaces, ${counts.policies} policies; node ${node} with ${counts.local} local pods`);
    console.log(`start-up: read, compiled and programmed in ${(firstSync / 1000).toFixed(2)} s (event loop blocked at most ${syncLoopMax.toFixed(0)} ms)`);
    console.log(`agent RSS once synced: ${mib(syncedRss.rss)} MiB (heap used ${mib(syncedRss.heapUsed)} MiB; the process before the agent started: ${mib(baselineRss)} MiB)${gc === undefined ? ' [run with --expose-gc for a settled figure]' : ''}`);
    console.log(`event loop during the samples: p99 delay ${loopP99.toFixed(1)} ms, max ${loopMax.toFixed(1)} ms\n`);
    const ms = (samples: readonly number[], q: number): string => percentile(samples, q).toFixed(1);
    printTable(['event (file change -> kernel commit)', 'n', 'median ms', 'p99 ms', 'max ms', 'of which source (median)', 'dataplane (median)'], rows.map((r) => [
      r.name, String(r.samples.length), ms(r.samples, 0.5), ms(r.samples, 0.99), Math.max(...r.samples).toFixed(1), ms(r.source, 0.5), ms(r.dataplane, 0.5),
    ]));
  } finally {
    await agent.stop();
    loopDelay.disable();
    execFileSync('ip', ['netns', 'del', netns]);
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runAgentLatencyBenchmark(scales: readonly string[] = Object.keys(SCALES)): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('agent latency: skipped (needs root for a network namespace and nftables)');
    return;
  }
  for (const s of scales) {
    const options = SCALES[s];
    if (options === undefined) throw new Error(`unknown scale ${s}; choose from ${Object.keys(SCALES).join(', ')}`);
    await runScale(s, options);
  }
}

if (require.main === module && process.argv[2] === WRITE_DATASTORE) {
  const options = SCALES[process.argv[3] ?? ''];
  if (options === undefined) throw new Error(`unknown scale ${process.argv[3] ?? ''}`);
  process.stdout.write(JSON.stringify(writeDatastore(options, process.argv[4] ?? '')));
} else if (require.main === module) {
  runAgentLatencyBenchmark(process.argv.slice(2).length > 0 ? process.argv.slice(2) : undefined).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
