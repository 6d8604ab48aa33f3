// The incremental compiler must always equal a from-scratch compile of the same state, after every
// event of a long random sequence, and the deltas it emits must add up to its table, whatever its peer
// set cache holds: large (sets kept and maintained while no rule uses them), none (dropped at once), or
// a few members (evicted all the time).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClusterEvent, NamespaceState, PodState, PolicyPeer, PolicyState } from '../../src/api';
import { NodeCompiler, objectKey } from '../../src/compiler';
import { elementKey } from '../../src/ruletable';
import { SyntheticGenerator, clusterEvents } from '../../bench/synthetic-cluster';

interface World {
  namespaces: Map<string, NamespaceState>;
  pods: Map<string, PodState>;
  policies: Map<string, PolicyState>;
}

function keysOf(compiler: NodeCompiler): Set<string> {
  return new Set([...compiler.elements()].map(elementKey));
}

function fromScratch(node: string, world: World, policiesFirst: boolean): Set<string> {
  const c = new NodeCompiler(node);
  const ns = [...world.namespaces.values()].map((object): ClusterEvent => ({ type: 'upsert', kind: 'Namespace', object }));
  const pods = [...world.pods.values()].map((object): ClusterEvent => ({ type: 'upsert', kind: 'Pod', object }));
  const pols = [...world.policies.values()].map((object): ClusterEvent => ({ type: 'upsert', kind: 'NetworkPolicy', object }));
  for (const e of policiesFirst ? [...pols, ...pods, ...ns] : [...ns, ...pods, ...pols]) c.apply(e);
  return keysOf(c);
}

// ipBlocks that hold the test's pods (10.0.0.x, 10.9.x.y, fd00::x): inside one address bucket, spanning
// several, and IPv6, with excepts, so that named ports towards ipBlocks resolve against real pods.
const POD_BLOCKS: readonly { cidr: string; except: string[] }[] = [
  { cidr: '10.0.0.0/24', except: ['10.0.0.16/28'] },
  { cidr: '10.0.0.0/8', except: ['10.9.1.0/24'] },
  { cidr: '10.9.0.0/16', except: [] },
  { cidr: 'fd00::/64', except: ['fd00::/125'] },
];

/** The generator's policies, with half of their ipBlocks moved over the pods' addresses. */
function randomPolicy(g: SyntheticGenerator, namespace: string): PolicyState {
  const policy = g.policy(namespace);
  const move = (peer: PolicyPeer): PolicyPeer => (peer.kind === 'ipBlock' && g.random() < 0.5 ? { kind: 'ipBlock', ...g.pick(POD_BLOCKS) } : peer);
  const rules = (rs: PolicyState['ingress']): PolicyState['ingress'] => rs.map((r) => ({ ...r, peers: r.peers === null ? null : r.peers.map(move) }));
  return { ...policy, ingress: rules(policy.ingress), egress: rules(policy.egress) };
}

function randomEvent(g: SyntheticGenerator, world: World, nodes: string[], freeIps: string[][]): ClusterEvent {
  const pods = [...world.pods.values()];
  const policies = [...world.policies.values()];
  const r = g.random();
  if (r < 0.15 || pods.length === 0) {
    const pod = g.pod(g.namespaceName(g.int(6)), g.pick(nodes));
    // Reuse a released address now and then: pod IP reuse must not leak old rules.
    const reused = freeIps.length > 0 && g.random() < 0.5 ? freeIps.splice(g.int(freeIps.length), 1)[0] : undefined;
    return { type: 'upsert', kind: 'Pod', object: reused === undefined ? pod : { ...pod, ips: reused } };
  }
  if (r < 0.25) {
    const pod = g.pick(pods);
    freeIps.push([...pod.ips]);
    return { type: 'delete', kind: 'Pod', ref: { namespace: pod.namespace, name: pod.name } };
  }
  if (r < 0.45) {
    const pod = g.pick(pods);
    return { type: 'upsert', kind: 'Pod', object: { ...pod, labels: g.podLabels() } };
  }
  if (r < 0.55) {
    const pod = g.pick(pods);
    const variant = g.int(5);
    const object: PodState =
      variant === 0 ? { ...pod, phase: g.pick(['Running', 'Succeeded', 'Failed', 'Pending']) }
      : variant === 1 ? { ...pod, hostNetwork: !pod.hostNetwork }
      : variant === 2 ? { ...pod, nodeName: g.pick(nodes) }
      : variant === 3 ? { ...pod, ips: pod.ips.length > 0 && g.random() < 0.3 ? [] : [`10.9.${g.int(4)}.${g.int(8)}`] }
      : { ...pod, ports: pod.ports.map((p) => ({ ...p, port: p.port + 1 })) };
    return { type: 'upsert', kind: 'Pod', object };
  }
  if (r < 0.68) {
    const ns = g.namespace(g.int(6));
    const labels: Record<string, string> = { ...ns.labels, team: `t${g.int(20)}`, env: g.pick(['prod', 'dev', 'staging']) };
    if (g.random() < 0.3) labels['purpose'] = 'monitoring';
    if (g.random() < 0.1) return { type: 'delete', kind: 'Namespace', name: ns.name };
    return { type: 'upsert', kind: 'Namespace', object: { name: ns.name, labels } };
  }
  if (r < 0.85 || policies.length === 0) {
    const fresh = randomPolicy(g, g.namespaceName(g.int(6)));
    // Half of the time, an update of an existing policy under the same name.
    const existing = policies.length > 0 && g.random() < 0.5 ? g.pick(policies) : undefined;
    return { type: 'upsert', kind: 'NetworkPolicy', object: existing === undefined ? fresh : { ...fresh, namespace: existing.namespace, name: existing.name } };
  }
  const policy = g.pick(policies);
  return { type: 'delete', kind: 'NetworkPolicy', ref: { namespace: policy.namespace, name: policy.name } };
}

function applyToWorld(world: World, e: ClusterEvent): void {
  if (e.kind === 'Namespace') {
    if (e.type === 'upsert') world.namespaces.set(e.object.name, e.object);
    else world.namespaces.delete(e.name);
  } else if (e.kind === 'Pod') {
    if (e.type === 'upsert') world.pods.set(objectKey(e.object), e.object);
    else world.pods.delete(objectKey(e.ref));
  } else if (e.type === 'upsert') world.policies.set(objectKey(e.object), e.object);
  else world.policies.delete(objectKey(e.ref));
}

const CACHES: readonly { name: string; peerCacheMembers?: number }[] = [
  { name: 'default peer cache' },
  { name: 'no peer cache', peerCacheMembers: 0 },
  { name: 'a peer cache of 12 members', peerCacheMembers: 12 },
];

for (const seed of [1, 2, 3]) {
  test(`incremental compile equals a from-scratch compile after every event, with every peer cache size (seed ${seed})`, () => {
    const g = new SyntheticGenerator({ seed, namespaces: 6, nodes: 3, pods: 40, policies: 0, dualStackShare: 0.3, appsPerNamespace: 2 });
    const base = g.cluster();
    const cluster = { ...base, policies: Array.from({ length: 12 }, () => randomPolicy(g, g.namespaceName(g.int(6)))) };
    const nodes = cluster.nodes;
    const world: World = {
      namespaces: new Map(cluster.namespaces.map((n) => [n.name, n])),
      pods: new Map(cluster.pods.map((p) => [objectKey(p), p])),
      policies: new Map(cluster.policies.map((p) => [objectKey(p), p])),
    };
    // One compiler per node and per cache size.
    const runs = nodes.flatMap((node) => CACHES.map((cache) => ({ node, cache, compiler: new NodeCompiler(node, cache), streamed: new Set<string>() })));
    const initial = clusterEvents(cluster);
    const freeIps: string[][] = [];
    for (let i = 0; i < 1000; i++) {
      const e = i < initial.length ? (initial[i] as ClusterEvent) : randomEvent(g, world, nodes, freeIps);
      if (i >= initial.length) applyToWorld(world, e);
      for (const run of runs) {
        const delta = run.compiler.apply(e);
        const removed = new Set(delta.removed.map(elementKey));
        for (const k of removed) assert.ok(run.streamed.delete(k), `event ${i}, ${run.cache.name}: removed an element that was not there: ${k}`);
        for (const el of delta.added) {
          const k = elementKey(el);
          assert.ok(!run.streamed.has(k), `event ${i}, ${run.cache.name}: added an element twice: ${k}`);
          assert.ok(!removed.has(k), `event ${i}, ${run.cache.name}: removed and added the same element in one delta: ${k}`);
          run.streamed.add(k);
        }
      }
      if (i < initial.length - 1) continue;
      for (const node of nodes) {
        const expected = fromScratch(node, world, i % 2 === 0);
        for (const run of runs.filter((r) => r.node === node)) {
          assert.deepEqual(run.streamed, expected, `event ${i} (${e.type} ${e.kind}) on ${node}, ${run.cache.name}: streamed deltas differ from a fresh compile`);
          assert.deepEqual(keysOf(run.compiler), expected, `event ${i} on ${node}, ${run.cache.name}: the compiler's table differs from a fresh compile`);
        }
      }
    }
    const total = runs.reduce((n, r) => n + r.compiler.elementCount, 0);
    assert.ok(total > 0, 'the random cluster should produce rules');
    const stats = runs.map((r) => r.compiler.peerSetStats());
    assert.ok(stats.some((s) => s.reused > 0), 'some rule should have found its peer set already built');
  });
}
