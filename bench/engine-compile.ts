// Policy engine benchmark: full compile of one node's rule table in a 100,000-pod cluster, the RSS
// after it, and the cost of incremental events. Prints figures; asserts nothing about time.
import type { ClusterEvent, PodState } from '../src/api';
import { NodeCompiler } from '../src/compiler';
import { referenceCluster } from './synthetic-cluster';
import { percentile, printTable, mib } from './report';

const SAMPLES = 2_000;
// A node's own pods are a few dozen of the cluster's; their events are fewer and cost more.
const LOCAL_SAMPLES = 300;

function time(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

export function runEngineBenchmark(): void {
  const { generator: g, cluster, events, node, options } = referenceCluster();
  const { pods: PODS, nodes: NODES, namespaces: NAMESPACES, policies: POLICIES } = options;
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  const compiler = new NodeCompiler(node);
  const fullMs = time(() => { for (const e of events) compiler.apply(e); });
  global.gc?.();
  const rssAfter = process.memoryUsage().rss;
  const elementsAfterCompile = compiler.elementCount;

  const pods = [...cluster.pods];
  const local = pods.filter((p) => p.nodeName === node);
  const measure = (make: (i: number) => ClusterEvent | ClusterEvent[], samples = SAMPLES): number[] => {
    const out: number[] = [];
    for (let i = 0; i < samples; i++) {
      const ev = make(i);
      const list = Array.isArray(ev) ? ev : [ev];
      out.push(time(() => { for (const e of list) compiler.apply(e); }) / list.length);
    }
    return out;
  };
  // Pods land on uniformly random nodes, as in the cluster: almost every pod event an agent sees is
  // about a pod on another node. Events of the node's own pods are measured on their own below.
  const podAdds = (onNode: () => string): { add: (i: number) => ClusterEvent; remove: (i: number) => ClusterEvent } => {
    const added: PodState[] = [];
    return {
      add: () => {
        const pod = g.pod(g.namespaceName(g.int(NAMESPACES)), onNode());
        added.push(pod);
        return { type: 'upsert', kind: 'Pod', object: pod };
      },
      remove: (i) => {
        const pod = added[i] as PodState;
        return { type: 'delete', kind: 'Pod', ref: { namespace: pod.namespace, name: pod.name } };
      },
    };
  };
  const anyNode = podAdds(() => g.nodeName(g.int(NODES)));
  const thisNode = podAdds(() => node);
  const rows: [string, number[]][] = [
    ['pod add', measure(anyNode.add)],
    ['pod delete', measure(anyNode.remove)],
    ['pod relabel', measure(() => {
      const pod = g.pick(pods);
      return { type: 'upsert', kind: 'Pod', object: { ...pod, labels: g.podLabels() } };
    })],
    ['local pod add', measure(thisNode.add, LOCAL_SAMPLES)],
    ['local pod delete', measure(thisNode.remove, LOCAL_SAMPLES)],
    ['local pod relabel', measure(() => {
      const pod = g.pick(local);
      return { type: 'upsert', kind: 'Pod', object: { ...pod, labels: g.podLabels() } };
    }, LOCAL_SAMPLES)],
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
    ['rule-table elements on that node', String(elementsAfterCompile), '', ''],
  ]);
  printTable(['incremental event', 'median ms', 'p99 ms', 'target p99'],
    rows.map(([name, samples]) => [name, percentile(samples, 0.5).toFixed(3), percentile(samples, 0.99).toFixed(3), name.startsWith('pod') ? '< 1 ms' : '']));
}

if (require.main === module) runEngineBenchmark();
