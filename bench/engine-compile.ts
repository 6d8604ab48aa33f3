// Policy engine benchmark: full compile of one node's rule table in a 100,000-pod cluster, the RSS
// after it, the cost of incremental events, and the rules whose peers are every pod of the cluster
// (egress named ports towards every peer, ingress from every namespace). Times are the compute of
// NodeCompiler.apply, delta included; prints figures, asserts nothing about time.
import type { ClusterEvent, PodState, PolicyRule, PolicyState, RuleTableDelta } from '../src/api';
import { NodeCompiler } from '../src/compiler';
import { referenceCluster } from './synthetic-cluster';
import { percentile, printTable, mib } from './report';

const SAMPLES = 2_000;
// A node's own pods are a few dozen of the cluster's; their events are fewer and cost more.
const LOCAL_SAMPLES = 300;
// Each binding of a rule whose peers are every pod moves ~110,000 elements: fewer samples.
const EVERY_POD_SAMPLES = 40;
// Distinct definitions built cold (by a scan of the cluster) per every-pod case.
const COLD_SAMPLES = 4;
const LOCAL_TARGET_MS = 20;

function time(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function rss(): number {
  global.gc?.();
  return process.memoryUsage().rss;
}

function summary(samples: readonly number[]): [string, string, string] {
  return [percentile(samples, 0.5).toFixed(3), percentile(samples, 0.99).toFixed(3), Math.max(...samples).toFixed(3)];
}

export function runEngineBenchmark(): void {
  if (global.gc === undefined) console.log('(run node with --expose-gc: RSS figures below include garbage)');
  const { generator: g, cluster, events, node, options } = referenceCluster();
  const { pods: PODS, nodes: NODES, namespaces: NAMESPACES, policies: POLICIES } = options;
  const rssBefore = rss();
  const compiler = new NodeCompiler(node);
  const fullMs = time(() => { for (const e of events) compiler.apply(e); });
  const rssAfter = rss();
  const elementsAfterCompile = compiler.elementCount;
  const setsAfterCompile = compiler.peerSetStats();

  const pods = [...cluster.pods];
  const local = pods.filter((p) => p.nodeName === node);
  let lastDelta: RuleTableDelta = { added: [], removed: [] };
  const apply = (e: ClusterEvent): void => { lastDelta = compiler.apply(e); };
  const measure = (make: (i: number) => ClusterEvent | ClusterEvent[], samples = SAMPLES): number[] => {
    const out: number[] = [];
    for (let i = 0; i < samples; i++) {
      const ev = make(i);
      const list = Array.isArray(ev) ? ev : [ev];
      out.push(time(() => { for (const e of list) apply(e); }) / list.length);
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

  // A local pod starting, selected by a policy whose one rule has every pod of the cluster as peers.
  // Each sample adds its own policy (selecting no pod yet), then the local pod it selects, then deletes
  // the pod. The first binding of a definition scans the cluster (cold); a definition that is live or
  // cached binds with no scan (warm), and the delta is the cost.
  const everyPodCase = (label: string, rule: (variant: number) => { ingress?: PolicyRule[]; egress?: PolicyRule[] }) => {
    const cold: number[] = [];
    const add: number[] = [];
    const remove: number[] = [];
    let deltaElements = 0;
    const namespace = (local[0] as PodState).namespace;
    for (let i = 0; i < COLD_SAMPLES + EVERY_POD_SAMPLES; i++) {
      const coldSample = i < COLD_SAMPLES;
      const rules = rule(coldSample ? i : 0);
      const policy: PolicyState = {
        namespace,
        name: `bench-${label}-${i}`,
        podSelector: { requirements: [{ key: 'bench', operator: 'In', values: [`${label}-${i}`] }] },
        ingressIsolation: rules.ingress !== undefined,
        egressIsolation: rules.egress !== undefined,
        ingress: rules.ingress ?? [],
        egress: rules.egress ?? [],
      };
      apply({ type: 'upsert', kind: 'NetworkPolicy', object: policy });
      const pod0 = g.pod(namespace, node);
      const pod: PodState = { ...pod0, labels: { ...pod0.labels, bench: `${label}-${i}` } };
      const addMs = time(() => apply({ type: 'upsert', kind: 'Pod', object: pod }));
      deltaElements = Math.max(deltaElements, lastDelta.added.length);
      const removeMs = time(() => apply({ type: 'delete', kind: 'Pod', ref: { namespace, name: pod.name } }));
      apply({ type: 'delete', kind: 'NetworkPolicy', ref: { namespace, name: policy.name } });
      if (coldSample) cold.push(addMs);
      else {
        add.push(addMs);
        remove.push(removeMs);
      }
    }
    return { cold, add, remove, deltaElements };
  };
  // Distinct port lists make distinct definitions, so each cold sample builds its set from a scan.
  const namedPortLists = [['http'], ['http', 'metrics'], ['metrics', 'http'], ['metrics']];
  const namedPort = everyPodCase('named', (v) => ({
    egress: [{ peers: null, ports: (namedPortLists[v % namedPortLists.length] as string[]).map((name) => ({ kind: 'named', protocol: 'TCP', name })) }],
  }));
  const everyNamespace = everyPodCase('every', (v) => ({
    ingress: [{ peers: [{ kind: 'pods', podSelector: { requirements: v === 0 ? [] : [{ key: `bench-absent-${v}`, operator: 'DoesNotExist', values: [] }] }, namespaceSelector: { requirements: [] } }], ports: null }],
  }));
  const rssEnd = rss();
  const setsEnd = compiler.peerSetStats();

  console.log(`policy engine: ${PODS} pods, ${NODES} nodes, ${NAMESPACES} namespaces, ${POLICIES} policies; node ${node} with ${local.length} local pods`);
  printTable(['measure', 'value', 'target', 'ratio to target'], [
    ['full compile, one node', `${fullMs.toFixed(0)} ms`, '< 2000 ms', (fullMs / 2000).toFixed(2)],
    ['RSS after full compile', `${mib(rssAfter)} MiB (+${mib(rssAfter - rssBefore)} MiB over the generated cluster)`, '< 300 MB', (rssAfter / 300e6).toFixed(2)],
    ['RSS at the end of the benchmark', `${mib(rssEnd)} MiB`, '< 300 MB', (rssEnd / 300e6).toFixed(2)],
    ['rule-table elements on that node', String(elementsAfterCompile), '', ''],
    ['peer sets after compile: live / cached (members)', `${setsAfterCompile.liveSets} / ${setsAfterCompile.cachedSets} (${setsAfterCompile.cachedMembers})`, '', ''],
    ['peer sets at the end: live / cached (members); built / reused', `${setsEnd.liveSets} / ${setsEnd.cachedSets} (${setsEnd.cachedMembers}); ${setsEnd.built} / ${setsEnd.reused}`, '', ''],
  ]);
  printTable(['incremental event', 'median ms', 'p99 ms', 'max ms', 'target p99'],
    rows.map(([name, samples]) => [name, ...summary(samples), name.startsWith('pod') ? '< 1 ms' : name.startsWith('local') ? `< ${LOCAL_TARGET_MS} ms` : '']));
  const everyRows = (name: string, r: ReturnType<typeof everyPodCase>): string[][] => [
    [`${name}: local pod add, first binding (warm set)`, ...summary(r.add), `< ${LOCAL_TARGET_MS} ms`, String(r.deltaElements)],
    [`${name}: local pod delete, last unbinding`, ...summary(r.remove), `< ${LOCAL_TARGET_MS} ms`, String(r.deltaElements)],
    [`${name}: local pod add, set built cold (scan)`, ...summary(r.cold), '', String(r.deltaElements)],
  ];
  printTable(['rule whose peers are every pod', 'median ms', 'p99 ms', 'max ms', 'target p99', 'delta elements'], [
    ...everyRows('egress named port, no peers', namedPort),
    ...everyRows('ingress from every namespace', everyNamespace),
  ]);
}

if (require.main === module) runEngineBenchmark();
