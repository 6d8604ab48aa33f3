import { test } from 'node:test';
import assert from 'node:assert/strict';
import { flattenAllowSpans, unionRects } from '../../src/dataplane/flatten';
import type { AllowSpan } from '../../src/ruletable';

const tcp = (from: number, to = from) => ({ protocol: 'TCP' as const, from, to });

test('overlapping CIDRs and pod addresses become disjoint elements', () => {
  const spans: AllowSpan[] = [
    { peer: '10.0.0.0/24', port: tcp(80, 90) },
    { peer: '10.0.0.5', port: tcp(85) }, // inside the block: absorbed
    { peer: '10.0.0.7', port: tcp(95) }, // inside the block, other port: its own slice
    { peer: '10.0.1.0/24', port: tcp(80, 90) }, // touching block, same ports: merged
  ];
  const flat = flattenAllowSpans(spans);
  assert.deepEqual(flat.peerPorts[4], [
    ['10.0.0.0-10.0.0.6', 'tcp', '80-90'],
    ['10.0.0.7', 'tcp', '80-90'],
    ['10.0.0.7', 'tcp', '95'],
    ['10.0.0.8-10.0.1.255', 'tcp', '80-90'],
  ]);
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
