import { test } from 'node:test';
import assert from 'node:assert/strict';
import { flattenAllowSpans, unionRects } from '../../src/dataplane/flatten';
import type { AllowSpan } from '../../src/ruletable';

const tcp = (from: number, to = from) => ({ protocol: 'TCP' as const, from, to });

test('overlapping blocks become disjoint elements', () => {
  const spans: AllowSpan[] = [
    { peer: '10.0.0.0/24', port: tcp(80, 90) },
    { peer: '10.0.0.0/25', port: tcp(85, 95) }, // inside the block, more ports: its own slice
    { peer: '10.0.1.0/24', port: tcp(80, 90) }, // touching block, same ports: merged
  ];
  const flat = flattenAllowSpans(spans);
  assert.deepEqual(flat.peerPorts[4], [
    ['10.0.0.0/25', 'tcp', '80-95'],
    ['10.0.0.128-10.0.1.255', 'tcp', '80-90'],
  ]);
  assert.deepEqual(flat.podPortRanges[4], []);
});

test('one address on ports goes to its own set, flattened apart from the blocks that may cover it', () => {
  const flat = flattenAllowSpans([
    { peer: '10.0.0.0/24', port: tcp(80, 90) },
    { peer: '10.0.0.5', port: tcp(85, 99) }, // inside the block: kept in the pod set all the same
    { peer: '10.0.0.6', port: tcp(85, 99) }, // its neighbour on the same ports: merged
    { peer: '10.0.0.9', port: tcp(95) },
    { peer: 'fd00::5', port: tcp(1000, 2000) },
  ]);
  assert.deepEqual(flat.peerPorts[4], [['10.0.0.0/24', 'tcp', '80-90']]);
  assert.deepEqual(flat.podPortRanges[4], [
    ['10.0.0.5-10.0.0.6', 'tcp', '85-99'],
    ['10.0.0.9', 'tcp', '95'],
  ]);
  assert.deepEqual(flat.podPortRanges[6], [['fd00::5', 'tcp', '1000-2000']]);
});

test('every-port peers, every-peer ports and allow-all are kept apart, per family', () => {
  const flat = flattenAllowSpans([
    { peer: '10.0.0.1', port: 'any' },
    { peer: '10.0.0.2', port: 'any' },
    { peer: 'fd00::1', port: 'any' },
    { peer: 'any', port: { protocol: 'UDP', from: 53, to: 53 } },
    { peer: 'any', port: { protocol: 'UDP', from: 54, to: 60 } },
  ]);
  assert.equal(flat.allowAll, false);
  assert.deepEqual(flat.peersAllPorts[4], [['10.0.0.1-10.0.0.2']]);
  assert.deepEqual(flat.peersAllPorts[6], [['fd00::1']]);
  assert.deepEqual(flat.anyPeerPorts, [['udp', '53-60']]);
  assert.equal(flattenAllowSpans([{ peer: 'any', port: 'any' }]).allowAll, true);
});

test('rectangle union: random rectangles cover exactly the same points, disjointly', () => {
  let seed = 7;
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
  for (let round = 0; round < 50; round++) {
    const rects = Array.from({ length: 1 + rnd(8) }, () => {
      const lo = BigInt(rnd(30)); const plo = rnd(20);
      return { lo, hi: lo + BigInt(rnd(6)), ports: { lo: plo, hi: plo + rnd(5) } };
    });
    const out = unionRects(rects);
    for (let a = 0n; a < 40n; a++) {
      for (let p = 0; p < 30; p++) {
        const want = rects.some((r) => a >= r.lo && a <= r.hi && p >= r.ports.lo && p <= r.ports.hi);
        const hits = out.filter((r) => a >= r.lo && a <= r.hi && p >= r.ports.lo && p <= r.ports.hi).length;
        assert.equal(hits, want ? 1 : 0, `round ${round}: point (${a}, ${p})`);
      }
    }
  }
});
