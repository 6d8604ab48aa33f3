// The counters listing in a process of its own (ReaderProcess), against a real table in a network
// namespace of this test: it lists what the agent's context committed, terse (no set elements), maps
// a missing table to null as the in-process listing does, and ends with the backend. Needs root.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { KernelNftBackend, Transaction, accept, counter, drop, matchSet } from '../../src/dataplane/nft';

const SKIP = process.getuid?.() !== 0 ? 'needs root (ip netns, nftables)' : false;
const NETNS = `reader-${process.pid}`;
const TABLE = `netpol_reader_${process.pid}`;
let backend: KernelNftBackend | null = null;

before(() => {
  if (SKIP !== false) return;
  execFileSync('ip', ['netns', 'add', NETNS]);
  backend = new KernelNftBackend({ table: TABLE, netns: `/run/netns/${NETNS}` });
});

after(() => {
  backend?.close();
  if (SKIP === false) spawnSync('ip', ['netns', 'delete', NETNS]);
});

test('listCounters lists from its own process: the committed chains and counters, the sets without elements', { skip: SKIP }, async () => {
  assert.ok(backend !== null);
  assert.equal(await backend.listCounters(), null, 'no table yet: null, as list() says');
  const tx = new Transaction(TABLE);
  tx.add({ kind: 'table' });
  tx.add({ kind: 'set', name: 'peers', type: ['ipv4_addr'], flags: ['interval'] });
  tx.add({ kind: 'element', set: 'peers', key: ['10.0.0.0-10.0.0.255'] });
  tx.add({ kind: 'chain', name: 'group' });
  tx.add({ kind: 'rule', chain: 'group', body: [matchSet(['ip saddr'], 'peers'), counter(), accept()] });
  tx.add({ kind: 'rule', chain: 'group', body: [counter(), drop()] });
  await backend.run(tx);
  const listed = await backend.listCounters();
  assert.deepEqual(listed?.chains.find((c) => c.name === 'group')?.counters, [{ packets: 0, bytes: 0 }, { packets: 0, bytes: 0 }]);
  assert.deepEqual(listed?.sets.find((s) => s.name === 'peers')?.elements, [], 'terse: no elements');
  assert.equal((await backend.list())?.sets.find((s) => s.name === 'peers')?.elements.length, 1, 'the full listing has them');
});
