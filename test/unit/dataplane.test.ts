// The dataplane against the in-memory nftables fake: incremental updates leave exactly what a fresh
// full sync would write, a second sync writes nothing, and drift is repaired.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RuleTableElement } from '../../src/api';
import { NodeCompiler } from '../../src/compiler';
import { Dataplane } from '../../src/dataplane';
import { FakeNft, NftApplyError, Transaction, accept } from '../../src/dataplane/nft';
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
