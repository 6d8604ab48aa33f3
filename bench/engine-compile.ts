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
// The resident-memory budget of an agent, in the unit the figures are printed in.
const RSS_TARGET_MIB = 300;
const RSS_TARGET_BYTES = RSS_TARGET_MIB * 1024 * 1024;

/** Wall time and CPU time of the process (ms): on a shared machine, wall time includes waiting for a core. */
interface Sample {
  readonly wall: number;
  readonly cpu: number;
}

function time(fn: () => void): Sample {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1000 };
}

function memory(): { rss: number; heap: number; committed: number } {
  global.gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed, committed: m.heapTotal };
}

/** Median, p99 and max of wall time, then median and p99 of CPU time. */
function summary(samples: readonly Sample[]): [string, string, string, string, string] {
  const wall = samples.map((s) => s.wall);
  const cpu = samples.map((s) => s.cpu);
  return [percentile(wall, 0.5).toFixed(3), percentile(wall, 0.99).toFixed(3), Math.max(...wall).toFixed(3), percentile(cpu, 0.5).toFixed(3), percentile(cpu, 0.99).toFixed(3)];
}

export function runEngineBenchmark(): void {
  if (global.gc === undefined) console.log('(run node with --expose-gc: RSS figures below include garbage)');
  const { generator: g, cluster, events, node, options } = referenceCluster();
  const { pods: PODS, nodes: NODES, namespaces: NAMESPACES, policies: POLICIES } = options;
  const before = memory();
  const compiler = new NodeCompiler(node);
  const full = time(() => { for (const e of events) compiler.apply(e); });
  const after = memory();
  const elementsAfterCompile = compiler.elementCount;
  const setsAfterCompile = compiler.peerSetStats();

  const pods = [...cluster.pods];
  const local = pods.filter((p) => p.nodeName === node);
  let lastDelta: RuleTableDelta = { added: [], removed: [] };
  const apply = (e: ClusterEvent): void => { lastDelta = compiler.apply(e); };
  const measure = (make: (i: number) => ClusterEvent, samples = SAMPLES): Sample[] => {
    const out: Sample[] = [];
    for (let i = 0; i < samples; i++) {
      const e = make(i);
      out.push(time(() => apply(e)));
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
  const rows: [string, Sample[]][] = [
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

  const afterRows = memory();

  // A local pod starting, selected by a policy whose one rule has every pod of the cluster as peers.
  // Each sample adds its own policy (selecting no pod yet), then the local pod it selects, then deletes
  // both. The set of such a rule is built when the first policy with its definition arrives (the cost
  // of the expansion, on the policy event) and pinned while a policy has it, so the local pod's binding
  // finds it built: its cost is the delta.
  const everyPodCase = (label: string, rule: (variant: number) => { ingress?: PolicyRule[]; egress?: PolicyRule[] }) => {
    const build: Sample[] = [];
    const add: Sample[] = [];
    const remove: Sample[] = [];
    // The largest delta of each: an add's and a delete's are the same size only when nothing else moved.
    let addDeltaElements = 0;
    let removeDeltaElements = 0;
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
      const policyAdd = time(() => apply({ type: 'upsert', kind: 'NetworkPolicy', object: policy }));
      const pod0 = g.pod(namespace, node);
      const pod: PodState = { ...pod0, labels: { ...pod0.labels, bench: `${label}-${i}` } };
      const podAdd = time(() => apply({ type: 'upsert', kind: 'Pod', object: pod }));
      addDeltaElements = Math.max(addDeltaElements, lastDelta.added.length + lastDelta.removed.length);
      const podRemove = time(() => apply({ type: 'delete', kind: 'Pod', ref: { namespace, name: pod.name } }));
      removeDeltaElements = Math.max(removeDeltaElements, lastDelta.added.length + lastDelta.removed.length);
      apply({ type: 'delete', kind: 'NetworkPolicy', ref: { namespace, name: policy.name } });
      if (coldSample) build.push(policyAdd);
      add.push(podAdd);
      remove.push(podRemove);
    }
    return { build, add, remove, addDeltaElements, removeDeltaElements };
  };
  // Distinct port lists make distinct definitions, so each cold sample builds its set from a scan.
  const namedPortLists = [['http'], ['http', 'metrics'], ['metrics', 'http'], ['metrics']];
  const namedPort = everyPodCase('named', (v) => ({
    egress: [{ peers: null, ports: (namedPortLists[v % namedPortLists.length] as string[]).map((name) => ({ kind: 'named', protocol: 'TCP', name })) }],
  }));
  const everyNamespace = everyPodCase('every', (v) => ({
    ingress: [{ peers: [{ kind: 'pods', podSelector: { requirements: v === 0 ? [] : [{ key: `bench-absent-${v}`, operator: 'DoesNotExist', values: [] }] }, namespaceSelector: { requirements: [] } }], ports: null }],
  }));
  const end = memory();
  const setsEnd = compiler.peerSetStats();

  const setText = (st: ReturnType<NodeCompiler['peerSetStats']>): string =>
    `${st.liveSets} (${st.liveMembers} members, ${st.pinnedSets} pinned) / ${st.cachedSets} (${st.cachedMembers}); ${st.built} / ${st.reused}`;
  console.log(`policy engine: ${PODS} pods, ${NODES} nodes, ${NAMESPACES} namespaces, ${POLICIES} policies; node ${node} with ${local.length} local pods`);
  console.log('(wall times include waiting for a core on a busy machine; CPU times are the compute of this process, GC threads included)');
  printTable(['measure', 'value', 'target', 'ratio to target'], [
    ['full compile, one node', `${full.wall.toFixed(0)} ms (CPU ${full.cpu.toFixed(0)} ms)`, '< 2000 ms', (full.wall / 2000).toFixed(2)],
    ['RSS after full compile', `${mib(after.rss)} MiB (+${mib(after.rss - before.rss)} MiB over the generated cluster; heap ${mib(after.heap)} MiB used of ${mib(after.committed)})`, `< ${RSS_TARGET_MIB} MiB`, (after.rss / RSS_TARGET_BYTES).toFixed(2)],
    ['RSS at the end of the benchmark', `${mib(end.rss)} MiB (heap ${mib(end.heap)} MiB used of ${mib(end.committed)}; after the event rows ${mib(afterRows.rss)} MiB)`, `< ${RSS_TARGET_MIB} MiB`, (end.rss / RSS_TARGET_BYTES).toFixed(2)],
    ['rule-table elements on that node', String(elementsAfterCompile), '', ''],
    ['peer sets after compile: live / cached (members); built / reused', setText(setsAfterCompile), '', ''],
    ['peer sets at the end', setText(setsEnd), '', ''],
  ]);
  const target = (name: string): string => (name.startsWith('pod') ? '< 1 ms' : name.startsWith('local') ? `< ${LOCAL_TARGET_MS} ms` : '');
  printTable(['incremental event', 'median ms', 'p99 ms', 'max ms', 'median CPU ms', 'p99 CPU ms', 'target p99'],
    rows.map(([name, samples]) => [name, ...summary(samples), target(name)]));
  const everyRows = (name: string, r: ReturnType<typeof everyPodCase>): string[][] => [
    [`${name}: local pod add, first binding`, ...summary(r.add), `< ${LOCAL_TARGET_MS} ms`, String(r.addDeltaElements)],
    [`${name}: local pod delete, last unbinding`, ...summary(r.remove), `< ${LOCAL_TARGET_MS} ms`, String(r.removeDeltaElements)],
    [`${name}: policy add building the set (expansion)`, ...summary(r.build), '', ''],
  ];
  printTable(['rule whose peers are every pod', 'median ms', 'p99 ms', 'max ms', 'median CPU ms', 'p99 CPU ms', 'target p99', 'largest delta (elements added + removed)'], [
    ...everyRows('egress named port, no peers', namedPort),
    ...everyRows('ingress from every namespace', everyNamespace),
  ]);
}

if (require.main === module) runEngineBenchmark();
