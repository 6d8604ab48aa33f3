// Shared peer sets in the compiler: rules with the same peers share one maintained set, a set no rule
// uses stays maintained in the cache (or is rebuilt after eviction), and the table is always the one a
// fresh compile of the same state gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClusterEvent, PolicyRule, PolicyState } from '../../src/api';
import { NodeCompiler } from '../../src/compiler';
import type { NodeCompilerOptions } from '../../src/compiler';
import { elementKey } from '../../src/ruletable';
import { decodeObjects, eventsBetween } from '../../src/source';
import { makeNamespace, makePod, makePolicy } from '../support/builders';

/** Feeds every state in turn to one compiler; after each, its table must equal a fresh compile's. */
function compileStates(states: readonly (readonly object[])[], options: NodeCompilerOptions = {}): NodeCompiler {
  const compiler = new NodeCompiler('node-1', options);
  let prev = null;
  for (const [i, objects] of states.entries()) {
    const next = decodeObjects(objects, 'test');
    for (const e of eventsBetween(prev, next)) compiler.apply(e);
    prev = next;
    const fresh = new NodeCompiler('node-1');
    for (const e of eventsBetween(null, next)) fresh.apply(e);
    assert.deepEqual(new Set([...compiler.elements()].map(elementKey)), new Set([...fresh.elements()].map(elementKey)), `state ${i}: the incremental table differs from a fresh compile`);
  }
  return compiler;
}

const peersOf = (compiler: NodeCompiler, rule: string): string[] =>
  [...compiler.elements()].flatMap((e) => (e.kind === 'peer' && e.rule === rule ? [e.peer] : [])).sort();

test('a namespace relabelled from one peer of a rule to another changes which of its pods are peers', () => {
  const pods = [
    makePod('n', 'x', { node: 'node-2', labels: { app: 'x' }, ips: ['10.0.0.1'] }),
    makePod('n', 'y', { node: 'node-2', labels: { app: 'y' }, ips: ['10.0.0.2'] }),
    makePod('a', 'target', { labels: { app: 't' }, ips: ['10.0.1.1'] }),
  ];
  const policy = makePolicy('a', 'p', {
    podSelector: { matchLabels: { app: 't' } },
    ingress: [{ from: [
      { namespaceSelector: { matchLabels: { team: 'a' } }, podSelector: { matchLabels: { app: 'x' } } },
      { namespaceSelector: { matchLabels: { team: 'b' } }, podSelector: { matchLabels: { app: 'y' } } },
    ] }],
  });
  const compiler = compileStates([
    [makeNamespace('a'), makeNamespace('n', { team: 'a' }), ...pods, policy],
    [makeNamespace('a'), makeNamespace('n', { team: 'b' }), ...pods, policy],
  ]);
  assert.deepEqual(peersOf(compiler, 'a/p/ingress/0'), ['10.0.0.2']);
});

test('rules with the same peers share one set: the second binds without building one', () => {
  const peers = { from: [{ namespaceSelector: { matchLabels: { team: 'b' } }, podSelector: { matchLabels: { app: 'db' } } }] };
  const base = [
    makeNamespace('a'), makeNamespace('b', { team: 'b' }),
    makePod('b', 'db', { node: 'node-2', labels: { app: 'db' }, ips: ['10.0.0.1'] }),
    makePod('a', 'one', { labels: { app: 'one' }, ips: ['10.0.1.1'] }),
    makePod('a', 'two', { labels: { app: 'two' }, ips: ['10.0.1.2'] }),
    makePolicy('a', 'p1', { podSelector: { matchLabels: { app: 'one' } }, ingress: [peers] }),
  ];
  const compiler = compileStates([base, [...base, makePolicy('a', 'p2', { podSelector: { matchLabels: { app: 'two' } }, ingress: [peers] })]]);
  assert.equal(compiler.peerSetStats().built, 1);
  assert.equal(compiler.peerSetStats().reused, 1);
  assert.deepEqual(peersOf(compiler, 'a/p2/ingress/0'), ['10.0.0.1']);
});

for (const { name, options, built } of [
  { name: 'kept in the cache, it is maintained while unused and bound again without a scan', options: {}, built: 1 },
  { name: 'evicted from a cache too small for it, it is built again', options: { peerCacheMembers: 1 }, built: 2 },
]) {
  test(`a peer set no rule uses: ${name}`, () => {
    const server = (n: number, port: number): object => makePod('a', `s${n}`, { node: 'node-2', labels: { app: 'server' }, ips: [`10.0.0.${n}`], ports: [{ name: 'http', containerPort: port }] });
    const client = makePod('a', 'client', { labels: { app: 'client' }, ips: ['10.0.1.1'] });
    const policy = makePolicy('a', 'out', { podSelector: { matchLabels: { app: 'client' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { app: 'server' } } }], ports: [{ port: 'http' }] }] });
    const ns = [makeNamespace('a')];
    const compiler = compileStates([
      [...ns, server(1, 8080), server(2, 8081), client, policy],
      // The client goes: the rule is unbound; the servers change while its set is unused.
      [...ns, server(1, 9000), server(3, 8083), policy],
      [...ns, server(1, 9000), server(3, 8083), client, policy],
    ], options);
    assert.equal(compiler.peerSetStats().built, built);
    const ports = [...compiler.elements()].flatMap((e) => (e.kind === 'peer' && e.port !== null && e.port !== 'any' ? [`${e.peer}:${e.port.from}`] : [])).sort();
    assert.deepEqual(ports, ['10.0.0.1:9000', '10.0.0.3:8083']);
  });
}

/** A policy selecting the local pod "client" whose egress rule reaches every pod on named port http. */
function everyPeerOnHttp(name: string): PolicyState {
  const rule: PolicyRule = { peers: null, ports: [{ kind: 'named', protocol: 'TCP', name: 'http' }] };
  return { namespace: 'a', name, podSelector: { requirements: [{ key: 'app', operator: 'In', values: ['client'] }] }, ingressIsolation: false, egressIsolation: true, ingress: [], egress: [rule] };
}

const podEvent = (name: string, ip: string, node: string): ClusterEvent => ({
  type: 'upsert', kind: 'Pod',
  object: { namespace: 'a', name, uid: name, labels: { app: name }, nodeName: node, hostNetwork: false, phase: 'Running', ips: [ip], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] },
});

test('a rule whose peers are every pod has its set built when its policy arrives, not when a local pod starts', () => {
  const compiler = new NodeCompiler('node-1', { peerCacheMembers: 0 });
  compiler.apply(podEvent('server', '10.0.0.1', 'node-2'));
  compiler.apply({ type: 'upsert', kind: 'NetworkPolicy', object: everyPeerOnHttp('out') });
  assert.deepEqual(compiler.peerSetStats().built, 1);
  assert.deepEqual(compiler.peerSetStats().pinnedSets, 1);
  const start = compiler.apply(podEvent('client', '10.0.1.1', 'node-1'));
  assert.equal(compiler.peerSetStats().built, 1, 'the binding found the set built');
  assert.ok(start.added.some((e) => e.kind === 'peer' && e.peer === '10.0.0.1'));
  compiler.apply({ type: 'delete', kind: 'NetworkPolicy', ref: { namespace: 'a', name: 'out' } });
  assert.deepEqual([compiler.peerSetStats().liveSets, compiler.peerSetStats().pinnedSets], [0, 0], 'no policy pins it any more');
});

test('a policy update that keeps a rule\'s peers moves no peer element', () => {
  const compiler = new NodeCompiler('node-1');
  compiler.apply(podEvent('client', '10.0.1.1', 'node-1'));
  compiler.apply(podEvent('server', '10.0.0.1', 'node-2'));
  compiler.apply({ type: 'upsert', kind: 'NetworkPolicy', object: everyPeerOnHttp('out') });
  const update = compiler.apply({ type: 'upsert', kind: 'NetworkPolicy', object: { ...everyPeerOnHttp('out'), ingressIsolation: true } });
  assert.deepEqual(update.added.map(elementKey), ['isolation|a/client|ingress|a/out']);
  assert.deepEqual(update.removed, []);
});
