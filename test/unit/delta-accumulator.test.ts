// Deltas compiled while a transaction is in flight fold into one net delta.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RuleTableElement } from '../../src/api';
import { DeltaAccumulator } from '../../src/agent/delta-accumulator';

const peer = (ip: string): RuleTableElement => ({ kind: 'peer', rule: 'ns/p/ingress/0', direction: 'ingress', peer: ip, port: null });
const ips = (es: readonly RuleTableElement[]): string[] => es.map((e) => (e.kind === 'peer' ? e.peer : '')).sort();

test('added then removed cancels out, removed then added is no change, the last change of the rest wins', () => {
  const acc = new DeltaAccumulator();
  acc.add({ added: [peer('10.0.0.1'), peer('10.0.0.2')], removed: [peer('10.0.0.3'), peer('10.0.0.4')] });
  acc.add({ added: [peer('10.0.0.3'), peer('10.0.0.5')], removed: [peer('10.0.0.1')] });
  acc.add({ added: [], removed: [peer('10.0.0.5')] });
  acc.add({ added: [peer('10.0.0.5')], removed: [] });
  const net = acc.take();
  assert.deepEqual(ips(net.added), ['10.0.0.2', '10.0.0.5']);
  assert.deepEqual(ips(net.removed), ['10.0.0.4']);
  assert.equal(acc.empty, true);
});

test('a single delta passes through as it is', () => {
  const acc = new DeltaAccumulator();
  const delta = { added: [peer('10.0.0.1')], removed: [peer('10.0.0.2')] };
  acc.add({ added: [], removed: [] });
  acc.add(delta);
  assert.equal(acc.take(), delta);
});
