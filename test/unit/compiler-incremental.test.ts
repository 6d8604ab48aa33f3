// The incremental compiler must always equal a from-scratch compile of the same state, after every
// event of a long random sequence, and the deltas it emits must add up to its table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClusterEvent, NamespaceState, PodState, PolicyState } from '../../src/api';
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
    const fresh = g.policy(g.namespaceName(g.int(6)));
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

for (const seed of [1, 2, 3]) {
  test(`incremental compile equals a from-scratch compile after every event (seed ${seed})`, () => {
    const g = new SyntheticGenerator({ seed, namespaces: 6, nodes: 3, pods: 40, policies: 12, dualStackShare: 0.3, appsPerNamespace: 2 });
    const cluster = g.cluster();
    const nodes = cluster.nodes;
    const world: World = {
      namespaces: new Map(cluster.namespaces.map((n) => [n.name, n])),
      pods: new Map(cluster.pods.map((p) => [objectKey(p), p])),
      policies: new Map(cluster.policies.map((p) => [objectKey(p), p])),
    };
    const compilers = nodes.map((n) => new NodeCompiler(n));
    const streamed = nodes.map(() => new Set<string>());
    const initial = clusterEvents(cluster);
    const freeIps: string[][] = [];
    for (let i = 0; i < 1000; i++) {
      const e = i < initial.length ? (initial[i] as ClusterEvent) : randomEvent(g, world, nodes, freeIps);
      if (i >= initial.length) applyToWorld(world, e);
      compilers.forEach((c, n) => {
        const delta = c.apply(e);
        const set = streamed[n] as Set<string>;
        for (const el of delta.removed) assert.ok(set.delete(elementKey(el)), `event ${i}: removed an element that was not there: ${elementKey(el)}`);
        for (const el of delta.added) {
          const k = elementKey(el);
          assert.ok(!set.has(k), `event ${i}: added an element twice: ${k}`);
          set.add(k);
        }
      });
      if (i < initial.length - 1) continue;
      compilers.forEach((c, n) => {
        const node = nodes[n] as string;
        const expected = fromScratch(node, world, i % 2 === 0);
        assert.deepEqual(streamed[n], expected, `event ${i} (${e.type} ${e.kind}) on ${node}: streamed deltas differ from a fresh compile`);
        assert.deepEqual(keysOf(c), expected, `event ${i}: the compiler's table differs from a fresh compile`);
      });
    }
    const total = compilers.reduce((n, c) => n + c.elementCount, 0);
    assert.ok(total > 0, 'the random cluster should produce rules');
  });
}
