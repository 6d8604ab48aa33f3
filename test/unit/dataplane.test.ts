// The dataplane against the in-memory nftables fake: incremental updates leave exactly what a fresh
// full sync would write, a second sync writes nothing, and drift is repaired.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RuleTableElement } from '../../src/api';
import { NodeCompiler } from '../../src/compiler';
import { Dataplane } from '../../src/dataplane';
import { NftApplyError, Transaction, accept } from '../../src/dataplane/nft';
import { FakeNft, type ForeignPlant } from '../support/fake-nft';
import { objectKey } from '../../src/compiler';
import { parseIp } from '../../src/net/ip';
import { probeCases } from '../../src/probe';
import { RuleState } from '../../src/ruletable';
import { decodeObjects, eventsBetween } from '../../src/source';
import type { ClusterObjects } from '../../src/source';
import type { ConformanceCase } from '../conformance/upstream-cases';
import { baseCluster } from '../conformance/cluster';
import { replay } from '../conformance/scenario';
import { upstreamCases } from '../conformance/upstream-cases';
import { extraCases } from '../conformance/extra-cases';

const TABLE = 'netpol_test';

async function freshDump(elements: Iterable<RuleTableElement>): Promise<string> {
  const fake = new FakeNft(TABLE);
  await new Dataplane(fake).sync(elements);
  return fake.dump();
}

test('every upstream case, step by step: incremental state equals a fresh full sync', async () => {
  const cluster = baseCluster({ dualStack: true });
  for (const c of [...upstreamCases, ...extraCases]) {
    for (const node of cluster.nodes) {
      const compiler = new NodeCompiler(node);
      const fake = new FakeNft(TABLE);
      const dataplane = new Dataplane(fake);
      let prev: ClusterObjects | null = null;
      let started = false;
      for (const state of replay(c, cluster)) {
        const next = decodeObjects(state.objects, c.name);
        for (const e of eventsBetween(prev, next)) {
          const delta = compiler.apply(e);
          if (started) await dataplane.apply(delta);
        }
        if (!started) {
          await dataplane.sync(compiler.elements());
          started = true;
        }
        prev = next;
        assert.equal(fake.dump(), await freshDump(compiler.elements()), `${c.name} step ${state.index + 1} on ${node}`);
        assert.equal((await dataplane.reconcile()).operations, 0, `${c.name}: a reconcile after an update must find nothing to do`);
      }
    }
  }
});

test('drift is detected and repaired: a deleted element, a deleted chain, a deleted table', async () => {
  const cluster = baseCluster({ dualStack: false });
  const c = upstreamCases.find((k) => k.name.includes('enforce policy based on Ports'));
  assert.ok(c);
  const compiler = new NodeCompiler('node-1');
  for (const e of eventsBetween(null, decodeObjects(replay(c, cluster).at(-1)?.objects ?? [], c.name))) compiler.apply(e);
  const fake = new FakeNft(TABLE);
  const dataplane = new Dataplane(fake);
  await dataplane.sync(compiler.elements());
  const good = fake.dump();
  const snapshot = await fake.list();
  assert.ok(snapshot);
  const map = snapshot.maps.find((m) => m.elements.length > 0);
  assert.ok(map, 'some pod is isolated');
  const tamper = async (edit: (tx: Transaction) => void): Promise<void> => {
    const tx = new Transaction(TABLE);
    edit(tx);
    await fake.run(tx);
    assert.notEqual(fake.dump(), good);
    const report = await dataplane.reconcile();
    assert.ok(report.operations > 0);
    assert.equal(fake.dump(), good);
  };
  await tamper((tx) => tx.delete({ kind: 'element', set: map.name, key: map.elements[0]?.key ?? [] }));
  const group = snapshot.chains.find((ch) => ch.name.startsWith('in_'));
  assert.ok(group);
  await tamper((tx) => {
    tx.flush({ kind: 'chain', name: 'forward' });
    tx.add({ kind: 'rule', chain: 'forward', body: [accept()] });
  });
  await tamper((tx) => tx.delete({ kind: 'table' }));
});

test('a peer pod coming or going is one element operation; only non-empty sets have a lookup rule, rewritten atomically as they fill or empty', async () => {
  const rule = 'ns/allow-web/ingress/0';
  const peer = (ip: string): RuleTableElement => ({ kind: 'peer', rule, direction: 'ingress', peer: ip, port: null });
  const fake = new FakeNft(TABLE);
  const dataplane = new Dataplane(fake);
  await dataplane.sync([
    { kind: 'address', pod: 'ns/web', ip: '10.0.0.2' },
    { kind: 'isolation', pod: 'ns/web', direction: 'ingress', policy: 'ns/allow-web' },
    { kind: 'bind', pod: 'ns/web', direction: 'ingress', rule, port: null },
    { kind: 'bind', pod: 'ns/web', direction: 'ingress', rule, port: { protocol: 'TCP', from: 80, to: 80 } },
    peer('10.1.0.7'),
  ]);
  const lookups = async (): Promise<string[]> => {
    const chain = (await fake.list())?.chains.find((c) => c.name.startsWith('in_'));
    return (chain?.rules ?? []).flatMap((r) => /@\S+_(\w+)/.exec(r)?.[1] ?? []);
  };
  assert.deepEqual(await lookups(), ['px4']);
  for (const ip of ['10.1.0.8', '10.1.0.6']) {
    const report = await dataplane.apply({ added: [peer(ip)], removed: [] });
    assert.equal(report.operations, 1, `peer ${ip} in: one element, its neighbours untouched`);
  }
  assert.equal((await dataplane.apply({ added: [], removed: [peer('10.1.0.7')] })).operations, 1, 'peer out: one element');
  // A CIDR fills the interval set: its element and its lookup rule, in one transaction.
  await dataplane.apply({ added: [peer('10.2.0.0/16')], removed: [] });
  assert.deepEqual(await lookups(), ['px4', 'pp4']);
  await dataplane.apply({ added: [], removed: [peer('10.1.0.8'), peer('10.1.0.6')] });
  assert.deepEqual(await lookups(), ['pp4']);
  const rebuilt = [...(await fake.list())?.sets.filter((x) => x.name.endsWith('_pp4')) ?? []];
  assert.deepEqual(rebuilt.map((x) => x.elements.map((e) => e.key.join(' . '))), [['10.2.0.0/16 . tcp . 80']]);
  assert.equal((await dataplane.reconcile()).operations, 0);
});

/** The dataplane calls a case makes on one node: a full sync of the first state, then one apply per event. */
function* caseCalls(c: ConformanceCase, node: string, dualStack: boolean): Generator<{ call: (d: Dataplane) => Promise<unknown>; compiler: NodeCompiler; step: number }> {
  const cluster = baseCluster({ dualStack });
  const compiler = new NodeCompiler(node);
  let prev: ClusterObjects | null = null;
  for (const state of replay(c, cluster)) {
    const next = decodeObjects(state.objects, c.name);
    const deltas = eventsBetween(prev, next).map((e) => compiler.apply(e));
    if (prev === null) {
      const elements = [...compiler.elements()];
      yield { call: (d) => d.sync(elements), compiler, step: state.index };
    } else for (const delta of deltas) yield { call: (d) => d.apply(delta), compiler, step: state.index };
    prev = next;
  }
}

test('after a failed transaction of any kind, the next call repairs everything (the fake fails at every step of multi-step cases)', async () => {
  const multiStep = [...upstreamCases, ...extraCases].filter((c) => c.build(baseCluster({ dualStack: false })).length > 1);
  assert.ok(multiStep.length >= 5);
  const faults: [string, () => Error, boolean][] = [
    ['an error from outside nft (context closed, netns gone)', () => new Error('injected: context closed'), false],
    ['nft refusing the transaction', () => new NftApplyError('EINVAL', 'injected: Invalid argument', null), false],
    ['an error after the kernel committed (reply lost)', () => new Error('injected: reply lost'), true],
  ];
  let failures = 0;
  for (const c of multiStep) {
    const node = 'node-1';
    const clean = new FakeNft(TABLE);
    const cleanDataplane = new Dataplane(clean);
    for (const { call } of caseCalls(c, node, true)) await call(cleanDataplane);
    for (let at = 1; at <= clean.runs; at++) {
      for (const [what, error, afterCommit] of faults) {
        const fake = new FakeNft(TABLE);
        const dataplane = new Dataplane(fake);
        fake.failRun(at, error(), { afterCommit });
        let failedAt: number | null = null;
        let compiler: NodeCompiler | null = null;
        for (const step of caseCalls(c, node, true)) {
          compiler = step.compiler;
          try {
            await step.call(dataplane);
          } catch (err) {
            assert.match(String(err), /injected/);
            failedAt = step.step;
            failures++;
            // One more call, with nothing new in it, must bring the table back to what the rule table says.
            await dataplane.apply({ added: [], removed: [] });
            assert.equal(fake.dump(), await freshDump(step.compiler.elements()), `${c.name}: ${what} at transaction ${at} (step ${step.step + 1}): not repaired by the next call`);
          }
        }
        assert.ok(compiler);
        assert.equal(fake.dump(), await freshDump(compiler.elements()), `${c.name}: ${what} at transaction ${at} (failed at step ${failedAt})`);
      }
    }
  }
  assert.ok(failures > 0);
});

test('the fake evaluator, walking the programmed chains, maps and sets, agrees with RuleState for every pair, port and protocol of every case', async () => {
  const cluster = baseCluster({ dualStack: true });
  let checked = 0;
  for (const c of [...upstreamCases, ...extraCases]) {
    const compilers = new Map(cluster.nodes.map((n) => [n, new NodeCompiler(n)]));
    const fakes = new Map(cluster.nodes.map((n) => [n, new FakeNft(TABLE)]));
    const dataplanes = new Map([...fakes].map(([n, f]) => [n, new Dataplane(f)]));
    let prev: ClusterObjects | null = null;
    for (const state of replay(c, cluster)) {
      const next = decodeObjects(state.objects, c.name);
      const events = eventsBetween(prev, next);
      for (const node of cluster.nodes) {
        const compiler = compilers.get(node) as NodeCompiler;
        const dataplane = dataplanes.get(node) as Dataplane;
        const deltas = events.map((e) => compiler.apply(e));
        if (prev === null) await dataplane.sync(compiler.elements());
        else for (const d of deltas) await dataplane.apply(d);
      }
      prev = next;
      const tables = new Map([...compilers].map(([n, comp]) => [n, RuleState.of(comp.elements())]));
      const nodeOf = new Map(next.pods.map((p) => [objectKey(p), p.nodeName]));
      const ports = [80, 81, 8080];
      for (const family of [4, 6] as const) {
        for (const protocol of ['TCP', 'UDP', 'SCTP'] as const) {
          for (const port of ports) {
            const cases = probeCases(next, { family }).filter((k) => k.from !== k.to);
            const seen = new Set<string>();
            for (const k of cases) {
              const id = `${k.from}>${k.to}`;
              if (seen.has(id)) continue;
              seen.add(id);
              const [srcNode, dstNode] = [nodeOf.get(k.from) as string, nodeOf.get(k.to) as string];
              const egress = (tables.get(srcNode) as RuleState).decide(k.from, 'egress', parseIp(k.toIp)!, protocol, port).allowed;
              const ingress = (tables.get(dstNode) as RuleState).decide(k.to, 'ingress', parseIp(k.fromIp)!, protocol, port).allowed;
              const packet = { saddr: k.fromIp, daddr: k.toIp, protocol: protocol.toLowerCase() as 'tcp' | 'udp' | 'sctp', dport: port, ct: 'new' as const };
              const atSource = (fakes.get(srcNode) as FakeNft).evaluate({ ...packet, hook: 'forward' });
              const atDestination = srcNode === dstNode ? atSource : (fakes.get(dstNode) as FakeNft).evaluate({ ...packet, hook: 'forward' });
              const where = `${c.name} step ${state.index + 1}: ${k.from} (${srcNode}) -> ${k.to} (${dstNode}) ${protocol}/${port} IPv${family}`;
              assert.equal(atSource === 'accept' && atDestination === 'accept', egress && ingress, where);
              // The input hook judges the egress part alone (a pod reaching its own node).
              assert.equal((fakes.get(srcNode) as FakeNft).evaluate({ ...packet, hook: 'input' }) === 'accept', egress, `${where} at the input hook`);
              // Replies of an accepted connection always pass.
              assert.equal((fakes.get(dstNode) as FakeNft).evaluate({ ...packet, hook: 'forward', ct: 'established' }), 'accept', where);
              checked++;
            }
          }
        }
      }
    }
  }
  assert.ok(checked > 10000, `${checked} verdicts checked`);
});

test('reconcile replaces whatever someone else left in our table, in one transaction, and the result equals a fresh sync', async () => {
  const cluster = baseCluster({ dualStack: false });
  const c = upstreamCases.find((k) => k.name.includes('enforce policy based on Ports'));
  assert.ok(c);
  const compiler = new NodeCompiler('node-1');
  for (const e of eventsBetween(null, decodeObjects(replay(c, cluster).at(-1)?.objects ?? [], c.name))) compiler.apply(e);
  const good = await freshDump(compiler.elements());
  const base = (hook: string, priority: number, policy = 'accept') => ({ type: 'filter', hook, priority, policy });
  const tampers: [string, ForeignPlant[]][] = [
    ['a set with flags we never use', [{ kind: 'set', name: 'weird', type: ['ipv4_addr'], flags: ['timeout'], foreign: 'timeout 3600' }]],
    ['one of our maps with another type', [{ kind: 'map', name: 'ingress_v4', type: ['ipv4_addr', 'inet_service'], flags: [] }]],
    ['a data map', [{ kind: 'map', name: 'datamap', type: ['ipv4_addr'], flags: [], value: 'ipv4_addr' }]],
    ['our forward chain on another hook', [{ kind: 'chain', name: 'forward', base: base('input', 10) }]],
    ['a base chain of someone else that drops everything', [{ kind: 'chain', name: 'other', base: base('prerouting', -5, 'drop') }, { kind: 'rule', chain: 'other', text: 'meta mark set 0x3 accept' }]],
    ['statements no helper writes, in our chain', [{ kind: 'rule', chain: 'input', text: 'ip saddr 1.2.3.4 meta mark set 0x3 accept' }]],
    ['a flowtable, a named counter and a quota', [{ kind: 'object', type: 'flowtable', name: 'ft' }, { kind: 'object', type: 'counter', name: 'cnt' }, { kind: 'object', type: 'quota', name: 'q' }]],
    ['an object no command can name', [{ kind: 'object', type: 'synproxy', name: 'bad name' }]],
    ['an object of a kind nft may add later', [{ kind: 'object', type: 'tunnel', name: 't' }]],
  ];
  for (const [what, plants] of tampers) {
    const fake = new FakeNft(TABLE);
    const dataplane = new Dataplane(fake);
    await dataplane.sync(compiler.elements());
    fake.plant(plants);
    assert.notEqual(fake.dump(), good, what);
    const runs = fake.runs;
    const report = await dataplane.reconcile();
    assert.equal(fake.runs - runs, 1, `${what}: repaired in one transaction`);
    assert.ok(report.operations > 0, what);
    assert.equal(fake.dump(), good, `${what}: not repaired`);
    assert.equal((await dataplane.reconcile()).operations, 0, `${what}: a second reconcile finds nothing`);
    // A restarted agent (a new Dataplane over the tampered table) repairs it the same way.
    fake.plant(plants);
    await new Dataplane(fake).sync(compiler.elements());
    assert.equal(fake.dump(), good, `${what}: not repaired by a restart`);
  }
});

test('counters: a dropped and an allowed packet move their group chain counters; moved counters and drop logging never make a restart rewrite anything', async () => {
  const cluster = baseCluster({ dualStack: false });
  const c = upstreamCases.find((k) => k.name.includes('enforce policy based on Ports'));
  assert.ok(c);
  const compiler = new NodeCompiler('node-1');
  for (const e of eventsBetween(null, decodeObjects(replay(c, cluster).at(-1)?.objects ?? [], c.name))) compiler.apply(e);
  const logging = { group: 7, rate: 10, burst: 5 };
  const fake = new FakeNft(TABLE);
  const dataplane = new Dataplane(fake, { logging });
  await dataplane.sync(compiler.elements());
  const [group] = (await dataplane.counters()).filter((g) => g.direction === 'ingress');
  assert.ok(group, 'some pod is isolated for ingress');
  assert.equal(group.counters.drop?.packets, 0);
  const listedChain = (await fake.list())?.chains.find((ch) => ch.name === group.chain);
  assert.ok(listedChain?.rules.includes(`ct state new limit rate 10/second burst 5 packets log prefix "${group.chain}" group 7`), 'the log rule is in the group chain');
  const pod = group.pods[0] ?? '';
  const addresses = [...compiler.elements()].flatMap((e) => (e.kind === 'address' && !e.ip.includes(':') ? [{ pod: e.pod, ip: e.ip }] : []));
  const own = addresses.find((a) => a.pod === pod);
  assert.ok(own);
  const allowedPeer = addresses
    .filter((a) => a.pod !== pod)
    .flatMap((a) => [80, 81].map((port) => ({ ...a, port })))
    .find((a) => dataplane.decide(pod, 'ingress', parseIp(a.ip) ?? assert.fail(a.ip), 'TCP', a.port).allowed);
  assert.ok(allowedPeer, 'some pod is allowed on port 80 or 81');
  const packet = { hook: 'forward' as const, saddr: '192.0.2.77', daddr: own.ip, protocol: 'tcp' as const, dport: allowedPeer.port, ct: 'new' as const, length: 60 };
  assert.equal(fake.evaluate(packet), 'drop', 'an outside address is not allowed');
  assert.equal(fake.evaluate({ ...packet, saddr: allowedPeer.ip }), 'accept');
  const after = (await dataplane.counters()).find((g) => g.chain === group.chain);
  assert.deepEqual(after?.counters.drop, { packets: 1, bytes: 60 });
  const allowed = Object.entries(after?.counters ?? {}).filter(([role, v]) => role !== 'drop' && v.packets > 0);
  assert.equal(allowed.length, 1, 'exactly one allowing lookup counted the allowed packet');
  assert.deepEqual(allowed[0]?.[1], { packets: 1, bytes: 60 });
  const restart = await new Dataplane(fake, { logging }).sync(compiler.elements());
  assert.equal(restart.operations, 0, 'moved counters do not count as a change');
  assert.deepEqual((await dataplane.counters()).find((g) => g.chain === group.chain)?.counters.drop, { packets: 1, bytes: 60 }, 'and they survive the restart');
  const withoutLogging = await new Dataplane(fake).sync(compiler.elements());
  assert.ok(withoutLogging.operations > 0, 'turning logging off rewrites the group chains');
});
