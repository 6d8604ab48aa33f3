// Policy engine benchmark: full compile of one node's rule table in a 100,000-pod cluster, the RSS
// after it, and the cost of incremental events. Prints figures; asserts nothing about time.
import type { ClusterEvent, PodState } from '../src/api';
import { NodeCompiler } from '../src/compiler';
import { SyntheticGenerator, clusterEvents } from './synthetic-cluster';
import { percentile, printTable, mib } from './report';

const PODS = Number(process.env['BENCH_PODS'] ?? 100_000);
const NODES = Number(process.env['BENCH_NODES'] ?? 5_000);
const NAMESPACES = Number(process.env['BENCH_NAMESPACES'] ?? 2_000);
const POLICIES = Number(process.env['BENCH_POLICIES'] ?? 10_000);
const SAMPLES = 2_000;

function time(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

export function runEngineBenchmark(): void {
  const g = new SyntheticGenerator({ seed: 42, namespaces: NAMESPACES, nodes: NODES, pods: PODS, policies: POLICIES });
  const cluster = g.cluster();
  const events = clusterEvents(cluster);
  // The node with the most local pods: the worst case for one agent.
  const perNode = new Map<string, number>();
  for (const p of cluster.pods) perNode.set(p.nodeName, (perNode.get(p.nodeName) ?? 0) + 1);
  const node = [...perNode].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'node-0';
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  const compiler = new NodeCompiler(node);
  const fullMs = time(() => { for (const e of events) compiler.apply(e); });
  global.gc?.();
  const rssAfter = process.memoryUsage().rss;

  const pods = [...cluster.pods];
  const local = pods.filter((p) => p.nodeName === node);
  const measure = (make: (i: number) => ClusterEvent | ClusterEvent[]): number[] => {
    const out: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const ev = make(i);
      const list = Array.isArray(ev) ? ev : [ev];
      out.push(time(() => { for (const e of list) compiler.apply(e); }) / list.length);
    }
    return out;
  };
  const added: PodState[] = [];
  const rows: [string, number[]][] = [
    ['pod add', measure(() => {
      const pod = g.pod(g.namespaceName(g.int(NAMESPACES)), g.random() < 0.2 ? node : g.nodeName(g.int(NODES)));
      added.push(pod);
      return { type: 'upsert', kind: 'Pod', object: pod };
    })],
    ['pod delete', measure((i) => {
      const pod = added[i] as PodState;
      return { type: 'delete', kind: 'Pod', ref: { namespace: pod.namespace, name: pod.name } };
    })],
    ['pod relabel', measure(() => {
      const pod = g.random() < 0.2 && local.length > 0 ? g.pick(local) : g.pick(pods);
      return { type: 'upsert', kind: 'Pod', object: { ...pod, labels: g.podLabels() } };
    })],
    ['local pod relabel', measure(() => {
      const pod = g.pick(local);
      return { type: 'upsert', kind: 'Pod', object: { ...pod, labels: g.podLabels() } };
    })],
    ['namespace relabel', measure(() => {
      const ns = g.namespace(g.int(NAMESPACES));
      return { type: 'upsert', kind: 'Namespace', object: { ...ns, labels: { ...ns.labels, team: `t${g.int(20)}` } } };
    })],
    ['policy add/update', measure(() => {
      const local0 = g.random() < 0.5 ? g.pick(local) : undefined;
      const policy = g.policy(local0?.namespace ?? g.namespaceName(g.int(NAMESPACES)));
      const existing = g.random() < 0.5 ? g.pick(cluster.policies) : undefined;
      return { type: 'upsert', kind: 'NetworkPolicy', object: existing === undefined ? policy : { ...policy, namespace: existing.namespace, name: existing.name } };
    })],
  ];
  console.log(`policy engine: ${PODS} pods, ${NODES} nodes, ${NAMESPACES} namespaces, ${POLICIES} policies; node ${node} with ${local.length} local pods`);
  printTable(['measure', 'value', 'target', 'ratio to target'], [
    ['full compile, one node', `${fullMs.toFixed(0)} ms`, '< 2000 ms', (fullMs / 2000).toFixed(2)],
    ['RSS after full compile', `${mib(rssAfter)} MiB (+${mib(rssAfter - rssBefore)} MiB over the generated cluster)`, '< 300 MB', (rssAfter / 300e6).toFixed(2)],
    ['rule-table elements on that node', String(compiler.elementCount), '', ''],
  ]);
  printTable(['incremental event', 'median ms', 'p99 ms', 'target p99'],
    rows.map(([name, samples]) => [name, percentile(samples, 0.5).toFixed(3), percentile(samples, 0.99).toFixed(3), name.startsWith('pod') || name.startsWith('local') ? '< 1 ms' : '']));
}

if (require.main === module) runEngineBenchmark();
