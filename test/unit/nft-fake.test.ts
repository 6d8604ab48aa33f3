import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  NftApplyError,
  NftClosedError,
  NftValidationError,
  Transaction,
  accept,
  counter,
  ctState,
  drop,


  jump,
  ret,
  matchSet,
  vmap,
  type NftApplyErrorCode,
} from '../../src/dataplane/nft';
import { FakeNft } from '../support/fake-nft';

const T = 'np';

function dedent(text: string): string {
  const lines = text.replace(/^\n/, '').split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => /^ */.exec(l)?.[0].length ?? 0));
  return lines.map((l) => l.slice(indent)).join('\n').replace(/[ ]+$/, '');
}

function tx(build: (t: Transaction) => void): Transaction {
  const t = new Transaction(T);
  build(t);
  return t;
}

/** A fake holding a small table: chains in (base), a, b; sets s4 (interval), h4 (hash), cc (concat interval); map m4. */
async function seeded(): Promise<FakeNft> {
  const fake = new FakeNft(T);
  await fake.run(
    tx((t) => {
      t.add({ kind: 'table' });
      t.add({ kind: 'chain', name: 'in', base: { type: 'filter', hook: 'input', priority: 0, policy: 'accept' } });
      t.add({ kind: 'chain', name: 'a' });
      t.add({ kind: 'chain', name: 'b' });
      t.add({ kind: 'set', name: 's4', type: ['ipv4_addr'], flags: ['interval'] });
      t.add({ kind: 'set', name: 'h4', type: ['ipv4_addr'] });
      t.add({ kind: 'set', name: 'cc', type: ['ipv4_addr', 'inet_proto', 'inet_service'], flags: ['interval'] });
      t.add({ kind: 'map', name: 'm4', type: ['ipv4_addr'] });
      t.add({ kind: 'element', set: 's4', key: ['10.0.0.0/24'] });
      t.add({ kind: 'element', set: 'h4', key: ['10.9.9.9'] });
      t.add({ kind: 'element', set: 'cc', key: ['10.0.0.0/24', 'tcp', '80-90'] });
      t.add({ kind: 'element', set: 'm4', key: ['10.0.0.1'], value: { jump: 'b' } });
      t.add({ kind: 'rule', chain: 'in', body: [jump('a')] });
      t.add({ kind: 'rule', chain: 'a', body: [matchSet(['ip saddr'], 's4'), counter(), accept()] });
    }),
  );
  return fake;
}

/** Runs `t` on `fake`, expects the code, and checks that nothing changed. */
async function expectFailure(fake: FakeNft, t: Transaction, code: NftApplyErrorCode, opIndex?: number): Promise<NftApplyError> {
  const before = fake.dump();
  let caught: unknown;
  try {
    await fake.run(t);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof NftApplyError, `expected ${code}, got ${String(caught)}\n${t.toString()}`);
  assert.equal(caught.nftCode, code, `${caught.message}\n${t.toString()}`);
  if (opIndex !== undefined) assert.equal(caught.op?.index, opIndex, caught.message);
  assert.equal(fake.dump(), before, 'a failed transaction changed the state');
  return caught;
}

describe('FakeNft transactions', () => {
  it('commits all operations or none', async () => {
    const fake = await seeded();
    const t = tx((t) => {
      t.add({ kind: 'chain', name: 'c' });
      t.add({ kind: 'element', set: 'h4', key: ['10.1.1.1'] });
      t.delete({ kind: 'chain', name: 'absent' });
      t.add({ kind: 'chain', name: 'never' });
    });
    const err = await expectFailure(fake, t, 'ENOENT', 2);
    assert.deepEqual(err.op, { index: 2, verb: 'delete', kind: 'chain', name: 'chain absent' });
    assert.equal(fake.lastTransaction, t);
    assert.ok(!fake.dump().includes('chain inet np c'));
  });

  it('check() reports the same failure and never commits', async () => {
    const fake = await seeded();
    const before = fake.dump();
    await fake.check(tx((t) => t.add({ kind: 'chain', name: 'c' })));
    assert.equal(fake.dump(), before);
    await assert.rejects(fake.check(tx((t) => t.add({ kind: 'set', name: 'h4', type: ['ipv6_addr'] }))), (e: unknown) => e instanceof NftApplyError && e.nftCode === 'EEXIST');
  });

  it('throws a pending validation error without applying anything', async () => {
    const fake = await seeded();
    const before = fake.dump();
    const t = tx((t) => {
      t.add({ kind: 'chain', name: 'c' });
      t.add({ kind: 'chain', name: 'bad name' });
    });
    await assert.rejects(fake.run(t), NftValidationError);
    assert.equal(fake.dump(), before);
  });

  it('refuses transactions for another table, and use after close', async () => {
    const fake = await seeded();
    await assert.rejects(fake.run(new Transaction('other')), NftValidationError);
    fake.close();
    await assert.rejects(fake.run(tx((t) => t.add({ kind: 'table' }))), NftClosedError);
    await assert.rejects(fake.list(), NftClosedError);
  });
});

describe('FakeNft idempotence and updates', () => {
  it('add is a no-op for existing tables, chains, sets, maps and identical elements', async () => {
    const fake = await seeded();
    const before = fake.dump();
    await fake.run(
      tx((t) => {
        t.add({ kind: 'table' });
        t.add({ kind: 'chain', name: 'a' });
        t.add({ kind: 'chain', name: 'in' });
        t.add({ kind: 'set', name: 's4', type: ['ipv4_addr'], flags: ['interval'] });
        t.add({ kind: 'map', name: 'm4', type: ['ipv4_addr'] });
          t.add({ kind: 'element', set: 's4', key: ['10.0.0.0-10.0.0.255'] });
        t.add({ kind: 'element', set: 'h4', key: ['10.9.9.9'] });
        t.add({ kind: 'element', set: 'h4', key: ['10.9.9.9'] });
        t.add({ kind: 'element', set: 'cc', key: ['10.0.0.0/24', 'tcp', '80-90'] });
        t.add({ kind: 'element', set: 'm4', key: ['10.0.0.1'], value: { jump: 'b' } });
      }),
    );
    assert.equal(fake.dump(), before);
  });

  it('add chain applies a new policy to an existing base chain', async () => {
    const fake = await seeded();
    await fake.run(tx((t) => t.add({ kind: 'chain', name: 'in', base: { type: 'filter', hook: 'input', priority: 0, policy: 'drop' } })));
    assert.equal((await fake.list())?.chains.find((c) => c.name === 'in')?.base?.policy, 'drop');
  });

  it('deleting a chain takes its rules and their references with it', async () => {
    const fake = await seeded();
    await fake.run(
      tx((t) => {
        t.flush({ kind: 'chain', name: 'in' });
        t.delete({ kind: 'chain', name: 'a' });
        t.delete({ kind: 'set', name: 's4' });
      }),
    );
    const snap = await fake.list();
    assert.deepEqual(snap?.chains.map((c) => c.name), ['in', 'b']);
  });

  it('delete set also deletes a map of that name (as nft does)', async () => {
    const fake = await seeded();
    await fake.run(tx((t) => t.delete({ kind: 'set', name: 'm4' })));
    assert.deepEqual((await fake.list())?.maps, []);
  });

});

describe('FakeNft failures', () => {
  it('ENOENT: missing table, chain, set, map, element, jump target', async () => {
    const fresh = new FakeNft(T);
    await expectFailure(fresh, tx((t) => t.delete({ kind: 'table' })), 'ENOENT');
    await expectFailure(fresh, tx((t) => t.add({ kind: 'chain', name: 'c' })), 'ENOENT');
    const fake = await seeded();
    const cases: [string, (t: Transaction) => void][] = [
      ['delete chain', (t) => t.delete({ kind: 'chain', name: 'x' })],
      ['flush chain', (t) => t.flush({ kind: 'chain', name: 'x' })],
      ['rule in missing chain', (t) => t.add({ kind: 'rule', chain: 'x', body: [accept()] })],
      ['jump to missing chain', (t) => t.add({ kind: 'rule', chain: 'a', body: [jump('x')] })],
      ['missing @set', (t) => t.add({ kind: 'rule', chain: 'a', body: [matchSet(['ip saddr'], 'x'), accept()] })],
      ['missing vmap', (t) => t.add({ kind: 'rule', chain: 'a', body: [vmap(['ip saddr'], 'x')] })],
      ['element of missing set', (t) => t.add({ kind: 'element', set: 'x', key: ['10.0.0.1'] })],
      ['map element to missing chain', (t) => t.add({ kind: 'element', set: 'm4', key: ['10.0.0.2'], value: { jump: 'x' } })],
      ['delete missing hash element', (t) => t.delete({ kind: 'element', set: 'h4', key: ['10.0.0.1'] })],
      ['delete part of an interval', (t) => t.delete({ kind: 'element', set: 's4', key: ['10.0.0.0/25'] })],
      ['delete missing concat element', (t) => t.delete({ kind: 'element', set: 'cc', key: ['10.5.0.0/24', 'tcp', '80'] })],
      ['delete set', (t) => t.delete({ kind: 'set', name: 'x' })],
    ];
    for (const [what, build] of cases) {
      const err = await expectFailure(fake, tx(build), 'ENOENT', 0);
      assert.ok(err.message.length > 0, what);
    }
    const interval = await expectFailure(fake, tx((t) => t.delete({ kind: 'element', set: 's4', key: ['10.7.0.0/24'] })), 'ENOENT');
    assert.equal(interval.nftMessage, 'element does not exist');
  });

  it('EEXIST: conflicting definitions and values', async () => {
    const fake = await seeded();
    const cases: [string, (t: Transaction) => void][] = [
      ['set with another type', (t) => t.add({ kind: 'set', name: 'h4', type: ['ipv6_addr'] })],
      ['set with other flags', (t) => t.add({ kind: 'set', name: 'h4', type: ['ipv4_addr'], flags: ['interval'] })],
      ['map over a set', (t) => t.add({ kind: 'map', name: 'h4', type: ['ipv4_addr'] })],
      ['map element with another value', (t) => t.add({ kind: 'element', set: 'm4', key: ['10.0.0.1'], value: 'accept' })],
    ];
    for (const [what, build] of cases) assert.ok((await expectFailure(fake, tx(build), 'EEXIST')).message.length > 0, what);
  });

  it('EEXIST: overlapping elements in a single-field interval set (any overlap, as nft checks it)', async () => {
    const fake = await seeded(); // s4 holds 10.0.0.0/24
    for (const key of ['10.0.0.5', '10.0.0.0/16', '10.0.0.128/25', '10.0.0.200-10.0.1.5']) {
      const err = await expectFailure(fake, tx((t) => t.add({ kind: 'element', set: 's4', key: [key] })), 'EEXIST');
      assert.equal(err.nftMessage, 'interval overlaps with an existing one', key);
    }
    await expectFailure(
      fake,
      tx((t) => {
        t.add({ kind: 'element', set: 's4', key: ['10.5.0.0/24'] });
        t.add({ kind: 'element', set: 's4', key: ['10.5.0.0/16'] });
      }),
      'EEXIST',
      1,
    );
    // Adjacent is not overlapping; a removed element frees its space in the same batch.
    await fake.run(
      tx((t) => {
        t.add({ kind: 'element', set: 's4', key: ['10.0.1.0/24'] });
        t.delete({ kind: 'element', set: 's4', key: ['10.0.0.0/24'] });
        t.add({ kind: 'element', set: 's4', key: ['10.0.0.0/25'] });
      }),
    );
    assert.deepEqual(
      (await fake.list())?.sets.find((s) => s.name === 's4')?.elements.map((e) => e.key[0]),
      ['10.0.1.0/24', '10.0.0.0/25'],
    );
  });

  it('EEXIST: concatenated interval sets reject a new first or last point inside an element (pipapo)', async () => {
    const fake = await seeded(); // cc holds 10.0.0.0/24 . tcp . 80-90
    for (const key of [
      ['10.0.0.5', 'tcp', '85'], // the verified case: inside
      ['10.0.0.0/16', 'tcp', '80-100'], // first point inside
      ['10.0.0.0/24', 'tcp', '70-85'], // last point inside
      ['10.0.0.1', 'tcp', '80'],
    ]) {
      await expectFailure(fake, tx((t) => t.add({ kind: 'element', set: 'cc', key })), 'EEXIST');
    }
    // Accepted by the kernel too: another protocol, and an element strictly containing the old one.
    await fake.run(
      tx((t) => {
        t.add({ kind: 'element', set: 'cc', key: ['10.0.0.0/24', 'udp', '80-90'] });
        t.add({ kind: 'element', set: 'cc', key: ['10.0.0.0/24', 'tcp', '70-100'] });
      }),
    );
    assert.equal((await fake.list())?.sets.find((s) => s.name === 'cc')?.elements.length, 3);
  });

  it('deletes the element containing the first point in concatenated interval sets (kernel behaviour)', async () => {
    const fake = await seeded();
    await fake.run(tx((t) => t.delete({ kind: 'element', set: 'cc', key: ['10.0.0.0/24', 'tcp', '80-91'] })));
    assert.deepEqual((await fake.list())?.sets.find((s) => s.name === 'cc')?.elements, []);
  });

  it('EBUSY: deleting referenced objects', async () => {
    const fake = await seeded();
    await fake.run(
      tx((t) => {
        t.add({ kind: 'chain', name: 'self' });
        t.add({ kind: 'rule', chain: 'self', body: [jump('self')] });
        t.add({ kind: 'rule', chain: 'b', body: [matchSet(['ip saddr'], 'h4'), vmap(['ip saddr'], 'm4')] });
      }),
    );
    const cases: [string, (t: Transaction) => void][] = [
      ['chain referenced by a jump', (t) => t.delete({ kind: 'chain', name: 'a' })],
      ['chain referenced by its own rule', (t) => t.delete({ kind: 'chain', name: 'self' })],
      ['chain referenced by a map element', (t) => t.delete({ kind: 'chain', name: 'b' })],
      ['set referenced by a rule', (t) => t.delete({ kind: 'set', name: 's4' })],
      ['map referenced by a vmap', (t) => t.delete({ kind: 'map', name: 'm4' })],
    ];
    for (const [what, build] of cases) assert.ok((await expectFailure(fake, tx(build), 'EBUSY')).message.length > 0, what);
  });

  it('EINVAL: type mismatches, element shapes, unsupported chain changes, loops', async () => {
    const fake = await seeded();
    const cases: [string, (t: Transaction) => void][] = [
      ['hook and policy on a regular chain', (t) => t.add({ kind: 'chain', name: 'a', base: { type: 'filter', hook: 'input', priority: 0, policy: 'accept' } })],
      ['hook change', (t) => t.add({ kind: 'chain', name: 'in', base: { type: 'filter', hook: 'forward', priority: 0, policy: 'accept' } })],
      ['priority change', (t) => t.add({ kind: 'chain', name: 'in', base: { type: 'filter', hook: 'input', priority: 10, policy: 'accept' } })],
      ['rule key type mismatch', (t) => t.add({ kind: 'rule', chain: 'a', body: [matchSet(['ip6 saddr'], 'h4'), accept()] })],
      ['rule concat mismatch', (t) => t.add({ kind: 'rule', chain: 'a', body: [matchSet(['ip saddr', 'th dport'], 'cc'), accept()] })],
      ['vmap on a set', (t) => t.add({ kind: 'rule', chain: 'a', body: [vmap(['ip saddr'], 'h4')] })],
      ['set match on a map', (t) => t.add({ kind: 'rule', chain: 'a', body: [matchSet(['ip saddr'], 'm4'), accept()] })],
      ['jump to a base chain', (t) => t.add({ kind: 'rule', chain: 'a', body: [jump('in')] })],
      ['map element jumping to a base chain', (t) => t.add({ kind: 'element', set: 'm4', key: ['10.0.0.2'], value: { jump: 'in' } })],
      ['key arity', (t) => t.add({ kind: 'element', set: 'h4', key: ['10.0.0.1', '80'] })],
      ['key kind', (t) => t.add({ kind: 'element', set: 'h4', key: ['fd00::1'] })],
      ['prefix in a hash set', (t) => t.add({ kind: 'element', set: 'h4', key: ['10.1.0.0/24'] })],
      ['port range in a hash set', (t) => t.add({ kind: 'element', set: 'h4', key: ['80-81'] })],
      ['value in a set', (t) => t.add({ kind: 'element', set: 'h4', key: ['10.1.0.1'], value: 'accept' })],
      ['no value in a map', (t) => t.add({ kind: 'element', set: 'm4', key: ['10.1.0.1'] })],
    ];
    for (const [what, build] of cases) {
      const err = await expectFailure(fake, tx(build), 'EINVAL', 0);
      assert.ok(err.message.length > 0, what);
    }
  });

  it('EINVAL: jump loops reachable from a base chain (kernel ELOOP), but not unreachable ones', async () => {
    const fake = await seeded(); // in -> a
    await fake.run(
      tx((t) => {
        t.add({ kind: 'rule', chain: 'b', body: [jump('b')] }); // unreachable loop: accepted, as in the kernel
      }),
    );
    const err = await expectFailure(fake, tx((t) => t.add({ kind: 'rule', chain: 'a', body: [jump('b')] })), 'EINVAL', 0);
    assert.match(err.nftMessage, /Too many links/);
    await fake.run(
      tx((t) => {
        t.add({ kind: 'chain', name: 'c' });
        t.add({ kind: 'element', set: 'm4', key: ['10.0.0.2'], value: { jump: 'c' } });
        t.add({ kind: 'rule', chain: 'a', body: [vmap(['ip saddr'], 'm4')] }); // a -> {b (loop!)...}
      }),
    ).then(
      () => assert.fail('loop through a vmap element accepted'),
      (e: unknown) => assert.ok(e instanceof NftApplyError && e.nftCode === 'EINVAL'),
    );
  });
});

describe('FakeNft views', () => {
  it('dump() prints the state as a canonical batch', async () => {
    const fake = await seeded();
    assert.equal(
      fake.dump(),
      dedent(`
        add table inet np
        add chain inet np a
        add chain inet np b
        add chain inet np in { type filter hook input priority 0; policy accept; }
        add set inet np cc { type ipv4_addr . inet_proto . inet_service; flags interval; }
        add set inet np h4 { type ipv4_addr; }
        add map inet np m4 { type ipv4_addr : verdict; }
        add set inet np s4 { type ipv4_addr; flags interval; }
        add element inet np cc { 10.0.0.0/24 . tcp . 80-90 }
        add element inet np h4 { 10.9.9.9 }
        add element inet np m4 { 10.0.0.1 : jump b }
        add element inet np s4 { 10.0.0.0/24 }
        add rule inet np a ip saddr @s4 counter accept
        add rule inet np in jump a
      `),
    );
    assert.equal(new FakeNft(T).dump(), '');
  });

  it('list() returns the TableSnapshot shape', async () => {
    const fake = await seeded();
    assert.deepEqual(await fake.list(), {
      family: 'inet',
      name: 'np',
      chains: [
        { name: 'in', base: { type: 'filter', hook: 'input', priority: 0, policy: 'accept' }, rules: ['jump a'], counters: [null] },
        { name: 'a', rules: ['ip saddr @s4 counter accept'], counters: [{ packets: 0, bytes: 0 }] },
        { name: 'b', rules: [], counters: [] },
      ],
      sets: [
        { name: 's4', type: ['ipv4_addr'], flags: ['interval'], elements: [{ key: ['10.0.0.0/24'] }] },
        { name: 'h4', type: ['ipv4_addr'], flags: [], elements: [{ key: ['10.9.9.9'] }] },
        { name: 'cc', type: ['ipv4_addr', 'inet_proto', 'inet_service'], flags: ['interval'], elements: [{ key: ['10.0.0.0/24', 'tcp', '80-90'] }] },
      ],
      maps: [{ name: 'm4', type: ['ipv4_addr'], flags: [], elements: [{ key: ['10.0.0.1'], value: { jump: 'b' } }], value: 'verdict' }],
      foreign: [],
    });
    assert.equal(await new FakeNft(T).list(), null);
  });
});

describe('FakeNft planted objects', () => {
  it('lists what someone else left as the kernel would, deletes it, and refuses to add ours over it', async () => {
    const fake = await seeded();
    fake.plant([
      { kind: 'set', name: 'weird', type: ['ipv4_addr'], flags: ['timeout'], foreign: 'timeout 3600' },
      { kind: 'map', name: 'data', type: ['ipv4_addr'], flags: [], value: 'ipv4_addr' },
      { kind: 'chain', name: 'pre', base: { type: 'filter', hook: 'prerouting', priority: -5, policy: 'drop' } },
      { kind: 'rule', chain: 'pre', text: 'ip saddr @weird meta mark set 0x3' },
      { kind: 'object', type: 'flowtable', name: 'ft' },
    ]);
    const snap = await fake.list();
    assert.deepEqual(snap?.sets.find((x) => x.name === 'weird'), { name: 'weird', type: ['ipv4_addr'], flags: ['timeout'], foreign: 'timeout 3600', elements: [] });
    assert.equal(snap?.maps.find((x) => x.name === 'data')?.value, 'ipv4_addr');
    assert.deepEqual(snap?.chains.find((c) => c.name === 'pre')?.rules, ['<foreign ip saddr @weird meta mark set 0x3>']);
    assert.deepEqual(snap?.foreign, [{ type: 'flowtable', name: 'ft' }]);
    assert.match(fake.dump(), /^# foreign set weird .*$/m);
    assert.match(fake.dump(), /^# foreign map data .*$/m);
    await expectFailure(fake, tx((t) => t.add({ kind: 'set', name: 'weird', type: ['ipv4_addr'] })), 'EEXIST');
    await expectFailure(fake, tx((t) => t.add({ kind: 'element', set: 'data', key: ['10.0.0.1'], value: 'accept' })), 'EINVAL');
    await expectFailure(fake, tx((t) => t.delete({ kind: 'set', name: 'weird' })), 'EBUSY');
    await fake.run(
      tx((t) => {
        t.flush({ kind: 'chain', name: 'pre' });
        t.delete({ kind: 'chain', name: 'pre' });
        t.delete({ kind: 'set', name: 'weird' });
        t.delete({ kind: 'map', name: 'data' });
        t.delete({ kind: 'foreign', type: 'flowtable', name: 'ft' });
      }),
    );
    assert.ok(!fake.dump().includes('foreign'));
    await expectFailure(fake, tx((t) => t.delete({ kind: 'foreign', type: 'flowtable', name: 'ft' })), 'ENOENT');
  });
});

describe('FakeNft packet evaluator', () => {
  it('walks base chains by hook, rules in order, jumps and returns, verdict maps and set lookups', async () => {
    const fake = new FakeNft(T);
    await fake.run(
      tx((t) => {
        t.add({ kind: 'table' });
        t.add({ kind: 'chain', name: 'forward', base: { type: 'filter', hook: 'forward', priority: 0, policy: 'accept' } });
        t.add({ kind: 'chain', name: 'late', base: { type: 'filter', hook: 'forward', priority: 10, policy: 'drop' } });
        t.add({ kind: 'chain', name: 'g' });
        t.add({ kind: 'set', name: 'pp', type: ['ipv4_addr', 'inet_proto', 'inet_service'], flags: ['interval'] });
        t.add({ kind: 'map', name: 'm', type: ['ipv4_addr'] });
        t.add({ kind: 'element', set: 'pp', key: ['10.0.0.0/24', 'tcp', '80-81'] });
        t.add({ kind: 'element', set: 'm', key: ['10.1.0.1'], value: { jump: 'g' } });
        t.add({ kind: 'element', set: 'm', key: ['10.1.0.2'], value: 'drop' });
        t.add({ kind: 'rule', chain: 'forward', body: [ctState('established', 'related'), accept()] });
        t.add({ kind: 'rule', chain: 'forward', body: [vmap(['ip daddr'], 'm')] });
        t.add({ kind: 'rule', chain: 'forward', body: [counter(), accept()] });
        t.add({ kind: 'rule', chain: 'g', body: [matchSet(['ip saddr', 'meta l4proto', 'th dport'], 'pp'), ret()] });
        t.add({ kind: 'rule', chain: 'g', body: [counter(), drop()] });
        t.add({ kind: 'rule', chain: 'late', body: [accept()] });
      }),
    );
    const p = { hook: 'forward' as const, saddr: '10.0.0.7', daddr: '10.1.0.1', protocol: 'tcp' as const, dport: 80, ct: 'new' as const };
    assert.equal(fake.evaluate(p), 'accept', 'g returns, the next rule of forward accepts, then the later base chain accepts');
    assert.equal(fake.evaluate({ ...p, dport: 82 }), 'drop', 'no element matches: g drops');
    assert.equal(fake.evaluate({ ...p, protocol: 'udp' }), 'drop');
    assert.equal(fake.evaluate({ ...p, saddr: '10.0.1.7' }), 'drop');
    assert.equal(fake.evaluate({ ...p, ct: 'established', dport: 82 }), 'accept', 'conntrack first');
    assert.equal(fake.evaluate({ ...p, daddr: '10.1.0.2' }), 'drop', 'a drop element of the map');
    assert.equal(fake.evaluate({ ...p, daddr: '10.1.0.3' }), 'accept', 'a map miss goes on to the next rule');
    assert.equal(fake.evaluate({ ...p, saddr: 'fd00::7', daddr: 'fd00::1' }), 'accept', 'ip daddr does not match an IPv6 packet');
    assert.equal(fake.evaluate({ ...p, hook: 'input' }), 'accept', 'no base chain on input');
    await fake.run(tx((t) => t.flush({ kind: 'chain', name: 'late' })));
    assert.equal(fake.evaluate(p), 'drop', 'a later base chain with policy drop still sees an accepted packet');
  });

  it('moves a rule counter only when the packet reaches it, keeps it across transactions that leave the rule, restarts it with the rule', async () => {
    const fake = new FakeNft(T);
    await fake.run(
      tx((t) => {
        t.add({ kind: 'table' });
        t.add({ kind: 'chain', name: 'forward', base: { type: 'filter', hook: 'forward', priority: 0, policy: 'accept' } });
        t.add({ kind: 'set', name: 's4', type: ['ipv4_addr'], flags: ['interval'] });
        t.add({ kind: 'element', set: 's4', key: ['10.0.0.0/24'] });
        t.add({ kind: 'rule', chain: 'forward', body: [matchSet(['ip saddr'], 's4'), counter(), accept()] });
        t.add({ kind: 'rule', chain: 'forward', body: [counter(), drop()] });
      }),
    );
    const p = { hook: 'forward' as const, saddr: '10.0.0.7', daddr: '10.1.0.1', protocol: 'tcp' as const, dport: 80, ct: 'new' as const, length: 60 };
    fake.evaluate(p);
    fake.evaluate(p);
    fake.evaluate({ ...p, saddr: '10.9.0.1', length: 40 });
    const counters = async (): Promise<unknown> => (await fake.list())?.chains.find((c) => c.name === 'forward')?.counters;
    assert.deepEqual(await counters(), [{ packets: 2, bytes: 120 }, { packets: 1, bytes: 40 }]);
    await fake.run(tx((t) => t.add({ kind: 'element', set: 's4', key: ['10.2.0.0/24'] })));
    assert.deepEqual(await counters(), [{ packets: 2, bytes: 120 }, { packets: 1, bytes: 40 }], 'an element change leaves the rules and their counters');
    await fake.run(
      tx((t) => {
        t.flush({ kind: 'chain', name: 'forward' });
        t.add({ kind: 'rule', chain: 'forward', body: [counter(), drop()] });
      }),
    );
    assert.deepEqual(await counters(), [{ packets: 0, bytes: 0 }], 'a rewritten rule starts at 0');
  });
});
