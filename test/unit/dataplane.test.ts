// The dataplane against the in-memory nftables fake: incremental updates leave exactly what a fresh
// full sync would write, a second sync writes nothing, and drift is repaired.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RuleTableElement } from '../../src/api';
import { NodeCompiler } from '../../src/compiler';
import { Dataplane } from '../../src/dataplane';
import { FakeNft, Transaction, accept } from '../../src/dataplane/nft';
import { decodeObjects, eventsBetween } from '../../src/source';
import type { ClusterObjects } from '../../src/source';
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
