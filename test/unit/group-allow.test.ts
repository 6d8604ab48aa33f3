import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GroupAllow } from '../../src/dataplane/group-allow';
import type { GroupContent } from '../../src/dataplane/layout';
import { GROUP_SET_SUFFIXES } from '../../src/dataplane/layout';
import type { AllowSpan } from '../../src/ruletable';

const tcp = (from: number, to = from) => ({ protocol: 'TCP' as const, from, to });

function ids(content: GroupContent): Record<string, string[]> {
  const out: Record<string, string[]> = { allowAll: [String(content.allowAll)] };
  for (const s of GROUP_SET_SUFFIXES) out[s] = [...content.sets[s].keys()].sort();
  return out;
}

test('exact keys are independent hash-set elements (neighbours are not merged); CIDRs and ranges stay in the interval sets', () => {
  const content = GroupAllow.of([
    { peer: '10.0.0.5', port: tcp(85) },
    { peer: '10.0.0.6', port: tcp(85) },
    { peer: '10.0.0.6', port: tcp(86) },
    { peer: '10.0.0.9/32', port: tcp(80) },
    { peer: '10.0.0.7', port: tcp(80, 90) },
    { peer: '10.0.0.0/24', port: tcp(80, 90) },
    { peer: '10.0.0.1', port: 'any' },
    { peer: '10.0.0.2', port: 'any' },
    { peer: '10.0.2.0/24', port: 'any' },
    { peer: 'fd00::1', port: { protocol: 'UDP', from: 53, to: 53 } },
    { peer: 'fd00::2', port: 'any' },
    { peer: 'any', port: tcp(443) },
  ]).content();
  assert.deepEqual(ids(content), {
    allowAll: ['false'],
    px4: ['10.0.0.5 . tcp . 85', '10.0.0.6 . tcp . 85', '10.0.0.6 . tcp . 86', '10.0.0.9 . tcp . 80'],
    px6: ['fd00::1 . udp . 53'],
    ax4: ['10.0.0.1', '10.0.0.2'],
    ax6: ['fd00::2'],
    // A CIDR is flattened with the other blocks, disjointly; a pod address on a port range apart
    // from them (in its own set, even where a block covers it).
    pp4: ['10.0.0.0/24 . tcp . 80-90'],
    pp6: [],
    pa4: ['10.0.2.0/24'],
    pa6: [],
    ap: ['tcp . 443'],
    pr4: ['10.0.0.7 . tcp . 80-90'],
    pr6: [],
  });
});

test('span by span, in any order, the content equals a group built from the remaining spans, and every visible change is reported', () => {
  let seed = 11;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const pool: AllowSpan[] = [];
  for (let i = 0; i < 12; i++) pool.push({ peer: `10.0.0.${i}`, port: tcp(80 + (i % 3)) });
  for (let i = 0; i < 4; i++) pool.push({ peer: `10.0.0.${i}`, port: 'any' });
  pool.push({ peer: '10.0.0.0/30', port: tcp(80, 81) }, { peer: '10.0.0.4/32', port: 'any' }, { peer: 'fd00::1', port: tcp(80) });
  pool.push({ peer: 'any', port: tcp(8080) }, { peer: 'any', port: 'any' }, { peer: '10.0.0.2', port: tcp(70, 75) });
  for (let round = 0; round < 20; round++) {
    const group = new GroupAllow();
    const live: AllowSpan[] = [];
    for (let step = 0; step < 60; step++) {
      const before = ids(group.content());
      // Spans come twice at times (two rules allowing the same thing): a count, not a set.
      const removing = live.length > 0 && rnd(2) === 0;
      const span = removing ? (live.splice(rnd(live.length), 1)[0] as AllowSpan) : (pool[rnd(pool.length)] as AllowSpan);
      if (!removing) live.push(span);
      const change = group.change(span, removing ? -1 : 1);
      const after = ids(group.content());
      assert.deepEqual(after, ids(GroupAllow.of(live).content()), `round ${round} step ${step}`);
      for (const s of GROUP_SET_SUFFIXES) {
        const differs = JSON.stringify(before[s]) !== JSON.stringify(after[s]);
        if (!differs) continue;
        if (s.startsWith('px') || s.startsWith('ax')) assert.equal(change?.set, s, `round ${round} step ${step}: ${s} changed unreported`);
        else assert.equal(change?.set, 'interval', `round ${round} step ${step}: ${s} changed unreported`);
      }
      if (JSON.stringify(before.allowAll) !== JSON.stringify(after.allowAll)) assert.equal(change?.set, 'interval');
    }
  }
});
