import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  FakeNft,
  NftApplyError,
  NftClosedError,
  NftValidationError,
  Transaction,
  accept,
  counter,
  ctState,
  drop,
  isAlreadyExists,
  isBusy,
  isNotFound,
  jump,
  matchSet,
  namedCounter,
  vmap,
  type NftApplyErrorCode,
} from '../../src/dataplane/nft';

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

/** A fake holding a small table: chains in (base), a, b; sets s4 (interval), h4 (hash), cc (concat interval); map m4; counter k. */
async function seeded(): Promise<FakeNft> {
  const fake = new FakeNft(T);
  await fake.run(
    tx((t) => {
      t.add({ kind: 'table' });
      t.add({ kind: 'chain', name: 'in', base: { type: 'filter', hook: 'input', priority: 0, policy: 'accept' } });
      t.add({ kind: 'chain', name: 'a' });
      t.add({ kind: 'chain', name: 'b' });
      t.add({ kind: 'counter', name: 'k' });
      t.add({ kind: 'set', name: 's4', type: ['ipv4_addr'], flags: ['interval'] });
      t.add({ kind: 'set', name: 'h4', type: ['ipv4_addr'] });
      t.add({ kind: 'set', name: 'cc', type: ['ipv4_addr', 'inet_proto', 'inet_service'], flags: ['interval'] });
      t.add({ kind: 'map', name: 'm4', type: ['ipv4_addr'], value: 'verdict' });
      t.add({ kind: 'element', set: 's4', key: ['10.0.0.0/24'] });
      t.add({ kind: 'element', set: 'h4', key: ['10.9.9.9'] });
      t.add({ kind: 'element', set: 'cc', key: ['10.0.0.0/24', 'tcp', '80-90'] });
      t.add({ kind: 'element', set: 'm4', key: ['10.0.0.1'], value: { jump: 'b' } });
      t.add({ kind: 'rule', chain: 'in', body: [jump('a')] });
      t.add({ kind: 'rule', chain: 'a', body: [matchSet(['ip saddr'], 's4'), namedCounter('k'), accept()], comment: 'r-a' });
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
  assert.equal(caught.code, code, `${caught.message}\n${t.toString()}`);
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
    await assert.rejects(fake.check(tx((t) => t.create({ kind: 'chain', name: 'a' }))), (e: unknown) => isAlreadyExists(e));
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
  it('add is a no-op for existing tables, chains, sets, maps, counters and identical elements', async () => {
    const fake = await seeded();
    const before = fake.dump();
    await fake.run(
      tx((t) => {
        t.add({ kind: 'table' });
        t.add({ kind: 'chain', name: 'a' });
        t.add({ kind: 'chain', name: 'in' });
        t.add({ kind: 'set', name: 's4', type: ['ipv4_addr'], flags: ['interval'], comment: 'a comment is not compared' });
        t.add({ kind: 'map', name: 'm4', type: ['ipv4_addr'], value: 'verdict' });
        t.add({ kind: 'counter', name: 'k' });
        t.add({ kind: 'element', set: 's4', key: ['10.0.0.0-10.0.0.255'], comment: 'not updated' });
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

  it('flush table removes rules but keeps set elements', async () => {
    const fake = await seeded();
    await fake.run(tx((t) => t.flush({ kind: 'table' })));
    const snap = await fake.list();
    assert.ok(snap !== null);
    assert.ok(snap.chains.every((c) => c.rules.length === 0));
    assert.deepEqual(snap.sets.find((s) => s.name === 's4')?.elements, [{ key: ['10.0.0.0/24'] }]);
  });

  it('deleting a chain takes its rules and their references with it', async () => {
    const fake = await seeded();
    await fake.run(
      tx((t) => {
        t.flush({ kind: 'chain', name: 'in' });
        t.delete({ kind: 'chain', name: 'a' });
        t.delete({ kind: 'set', name: 's4' });
        t.delete({ kind: 'counter', name: 'k' });
      }),
    );
    const snap = await fake.list();
    assert.deepEqual(snap?.chains.map((c) => c.name), ['in', 'b']);
  });

  it('delete set also deletes a map of that name (as nft does)', async () => {
    const fake = await seeded();
    await fake.run(tx((t) => t.delete({ kind: 'set', name: 'm4', type: ['ipv4_addr'] })));
    assert.deepEqual((await fake.list())?.maps, []);
  });

  it('destroy deletes what exists and ignores what does not', async () => {
    const fake = await seeded();
    await fake.run(
      tx((t) => {
        t.destroy({ kind: 'chain', name: 'nope' });
        t.destroy({ kind: 'set', name: 'nope', type: ['ipv4_addr'] });
        t.destroy({ kind: 'counter', name: 'nope' });
        t.destroy({ kind: 'element', set: 'h4', key: ['10.1.2.3'] });
        t.destroy({ kind: 'element', set: 'h4', key: ['10.9.9.9'] });
        t.destroy({ kind: 'element', set: 'm4', key: ['10.0.0.1'], value: { jump: 'b' } });
        t.destroy({ kind: 'chain', name: 'b' });
      }),
    );
    const snap = await fake.list();
    assert.deepEqual(snap?.sets.find((s) => s.name === 'h4')?.elements, []);
    assert.deepEqual(snap?.maps.find((s) => s.name === 'm4')?.elements, []);
    assert.ok(!snap?.chains.some((c) => c.name === 'b'));
    await fake.run(tx((t) => t.destroy({ kind: 'table' })));
    assert.equal(await fake.list(), null);
    await fake.run(tx((t) => t.destroy({ kind: 'table' })));
    assert.equal(fake.dump(), '');
  });

  it('positions rules by handle and keeps the handle on replace', async () => {
    const fake = new FakeNft(T);
    await fake.run(
      tx((t) => {
        t.add({ kind: 'table' });
        t.add({ kind: 'chain', name: 'c' }); // handle 1
        t.add({ kind: 'rule', chain: 'c', body: [counter(), accept()], comment: 'one' }); // 2
        t.add({ kind: 'rule', chain: 'c', body: [drop()], comment: 'two' }); // 3
      }),
    );
    await fake.run(
      tx((t) => {
        t.add({ kind: 'rule', chain: 'c', handle: 2, body: [accept()], comment: 'after-one' }); // 4
        t.insert({ kind: 'rule', chain: 'c', handle: 3, body: [accept()], comment: 'before-two' }); // 5
        t.insert({ kind: 'rule', chain: 'c', body: [ctState('invalid'), drop()], comment: 'top' }); // 6
        t.replace({ kind: 'rule', chain: 'c', handle: 3, body: [accept()], comment: 'two-replaced' });
      }),
    );
    const rules = (await fake.list())?.chains[0]?.rules;
    assert.deepEqual(rules, [
      { handle: 6, body: 'ct state invalid drop', comment: 'top' },
      { handle: 2, body: 'counter accept', comment: 'one' },
      { handle: 4, body: 'accept', comment: 'after-one' },
      { handle: 5, body: 'accept', comment: 'before-two' },
      { handle: 3, body: 'accept', comment: 'two-replaced' },
    ]);
    await fake.run(tx((t) => t.delete({ kind: 'rule', chain: 'c', handle: 4 })));
    assert.equal((await fake.list())?.chains[0]?.rules.length, 4);
  });
});

describe('FakeNft failures', () => {
  it('ENOENT: missing table, chain, set, map, counter, element, rule handle, jump target', async () => {
    const fresh = new FakeNft(T);
    await expectFailure(fresh, tx((t) => t.delete({ kind: 'table' })), 'ENOENT');
    await expectFailure(fresh, tx((t) => t.flush({ kind: 'table' })), 'ENOENT');
    await expectFailure(fresh, tx((t) => t.add({ kind: 'chain', name: 'c' })), 'ENOENT');
    const fake = await seeded();
    const cases: [string, (t: Transaction) => void][] = [
      ['delete chain', (t) => t.delete({ kind: 'chain', name: 'x' })],
      ['flush chain', (t) => t.flush({ kind: 'chain', name: 'x' })],
      ['rule in missing chain', (t) => t.add({ kind: 'rule', chain: 'x', body: [accept()] })],
      ['jump to missing chain', (t) => t.add({ kind: 'rule', chain: 'a', body: [jump('x')] })],
      ['missing @set', (t) => t.add({ kind: 'rule', chain: 'a', body: [matchSet(['ip saddr'], 'x'), accept()] })],
      ['missing vmap', (t) => t.add({ kind: 'rule', chain: 'a', body: [vmap(['ip saddr'], 'x')] })],
      ['missing counter', (t) => t.add({ kind: 'rule', chain: 'a', body: [namedCounter('x'), accept()] })],
      ['element of missing set', (t) => t.add({ kind: 'element', set: 'x', key: ['10.0.0.1'] })],
      ['map element to missing chain', (t) => t.add({ kind: 'element', set: 'm4', key: ['10.0.0.2'], value: { goto: 'x' } })],
      ['delete missing hash element', (t) => t.delete({ kind: 'element', set: 'h4', key: ['10.0.0.1'] })],
      ['delete part of an interval', (t) => t.delete({ kind: 'element', set: 's4', key: ['10.0.0.0/25'] })],
      ['delete missing concat element', (t) => t.delete({ kind: 'element', set: 'cc', key: ['10.5.0.0/24', 'tcp', '80'] })],
      ['delete rule with a handle of another chain', (t) => t.delete({ kind: 'rule', chain: 'a', handle: 9 })],
      ['replace missing handle', (t) => t.replace({ kind: 'rule', chain: 'a', handle: 99, body: [drop()] })],
      ['add after missing handle', (t) => t.add({ kind: 'rule', chain: 'a', handle: 99, body: [drop()] })],
      ['insert before missing handle', (t) => t.insert({ kind: 'rule', chain: 'a', handle: 99, body: [drop()] })],
      ['delete counter', (t) => t.delete({ kind: 'counter', name: 'x' })],
      ['delete set', (t) => t.delete({ kind: 'set', name: 'x', type: ['ipv4_addr'] })],
      ['flush set that is a map', (t) => t.flush({ kind: 'set', name: 'm4', type: ['ipv4_addr'] })],
      ['flush map that is a set', (t) => t.flush({ kind: 'map', name: 'h4', type: ['ipv4_addr'], value: 'verdict' })],
    ];
    for (const [what, build] of cases) {
      const err = await expectFailure(fake, tx(build), 'ENOENT', 0);
      assert.ok(isNotFound(err), what);
    }
    const interval = await expectFailure(fake, tx((t) => t.delete({ kind: 'element', set: 's4', key: ['10.7.0.0/24'] })), 'ENOENT');
    assert.equal(interval.nftMessage, 'element does not exist');
  });

  it('EEXIST: create of existing objects, conflicting definitions and values', async () => {
    const fake = await seeded();
    const cases: [string, (t: Transaction) => void][] = [
      ['create table', (t) => t.create({ kind: 'table' })],
      ['create chain', (t) => t.create({ kind: 'chain', name: 'a' })],
      ['create set', (t) => t.create({ kind: 'set', name: 'h4', type: ['ipv4_addr'] })],
      ['create map', (t) => t.create({ kind: 'map', name: 'm4', type: ['ipv4_addr'], value: 'verdict' })],
      ['create counter', (t) => t.create({ kind: 'counter', name: 'k' })],
      ['create element', (t) => t.create({ kind: 'element', set: 'h4', key: ['10.9.9.9'] })],
      ['create interval element', (t) => t.create({ kind: 'element', set: 's4', key: ['10.0.0.0/24'] })],
      ['create concat element', (t) => t.create({ kind: 'element', set: 'cc', key: ['10.0.0.0/24', 'tcp', '80-90'] })],
      ['create element twice in one batch', (t) => t.create({ kind: 'element', set: 'h4', key: ['10.1.1.1'] })],
      ['set with another type', (t) => t.add({ kind: 'set', name: 'h4', type: ['ipv6_addr'] })],
      ['set with other flags', (t) => t.add({ kind: 'set', name: 'h4', type: ['ipv4_addr'], flags: ['interval'] })],
      ['set with counter', (t) => t.add({ kind: 'set', name: 'h4', type: ['ipv4_addr'], counter: true })],
      ['map over a set', (t) => t.add({ kind: 'map', name: 'h4', type: ['ipv4_addr'], value: 'verdict' })],
      ['hook on a regular chain', (t) => t.add({ kind: 'chain', name: 'a', base: { type: 'filter', hook: 'input', priority: 0 } })],
      ['map element with another value', (t) => t.add({ kind: 'element', set: 'm4', key: ['10.0.0.1'], value: 'accept' })],
      ['destroy element with another value', (t) => t.destroy({ kind: 'element', set: 'm4', key: ['10.0.0.1'], value: 'drop' })],
      ['destroy set with another type', (t) => t.destroy({ kind: 'set', name: 'h4', type: ['ipv6_addr'] })],
    ];
    for (const [what, build] of cases) {
      const t = tx(build);
      if (what === 'create element twice in one batch') t.create({ kind: 'element', set: 'h4', key: ['10.1.1.1'] });
      const err = await expectFailure(fake, t, 'EEXIST');
      assert.ok(isAlreadyExists(err), what);
    }
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

  it('EBUSY: deleting referenced objects, changing a bound constant set', async () => {
    const fake = await seeded();
    await fake.run(
      tx((t) => {
        t.add({ kind: 'chain', name: 'self' });
        t.add({ kind: 'rule', chain: 'self', body: [jump('self')] });
        t.add({ kind: 'set', name: 'k4', type: ['ipv4_addr'], flags: ['constant'] });
        t.add({ kind: 'element', set: 'k4', key: ['10.0.0.1'] });
        t.add({ kind: 'rule', chain: 'b', body: [matchSet(['ip saddr'], 'k4'), vmap(['ip saddr'], 'm4')] });
      }),
    );
    const cases: [string, (t: Transaction) => void][] = [
      ['chain referenced by a jump', (t) => t.delete({ kind: 'chain', name: 'a' })],
      ['chain referenced by its own rule', (t) => t.delete({ kind: 'chain', name: 'self' })],
      ['chain referenced by a map element', (t) => t.delete({ kind: 'chain', name: 'b' })],
      ['destroy of a referenced chain', (t) => t.destroy({ kind: 'chain', name: 'a' })],
      ['set referenced by a rule', (t) => t.delete({ kind: 'set', name: 's4', type: ['ipv4_addr'] })],
      ['map referenced by a vmap', (t) => t.delete({ kind: 'map', name: 'm4', type: ['ipv4_addr'], value: 'verdict' })],
      ['counter referenced by a rule', (t) => t.delete({ kind: 'counter', name: 'k' })],
      ['add to a bound constant set', (t) => t.add({ kind: 'element', set: 'k4', key: ['10.0.0.2'] })],
      ['delete from a bound constant set', (t) => t.delete({ kind: 'element', set: 'k4', key: ['10.0.0.1'] })],
      ['flush a bound constant set', (t) => t.flush({ kind: 'set', name: 'k4', type: ['ipv4_addr'] })],
    ];
    for (const [what, build] of cases) assert.ok(isBusy(await expectFailure(fake, tx(build), 'EBUSY')), what);
    // An unbound constant set can still change.
    await fake.run(
      tx((t) => {
        t.add({ kind: 'set', name: 'k5', type: ['ipv4_addr'], flags: ['constant'] });
        t.add({ kind: 'element', set: 'k5', key: ['10.0.0.1'] });
        t.delete({ kind: 'element', set: 'k5', key: ['10.0.0.1'] });
      }),
    );
  });

  it('EINVAL: type mismatches, element shapes, unsupported chain changes, loops', async () => {
    const fake = await seeded();
    const cases: [string, (t: Transaction) => void][] = [
      ['hook change', (t) => t.add({ kind: 'chain', name: 'in', base: { type: 'filter', hook: 'output', priority: 0 } })],
      ['priority change', (t) => t.add({ kind: 'chain', name: 'in', base: { type: 'filter', hook: 'input', priority: 10 } })],
      ['regular to base with a policy', (t) => t.add({ kind: 'chain', name: 'a', base: { type: 'filter', hook: 'input', priority: 0, policy: 'accept' } })],
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
      ['destroy map element without value', (t) => t.destroy({ kind: 'element', set: 'm4', key: ['10.0.0.1'] })],
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
      (e: unknown) => assert.ok(e instanceof NftApplyError && e.code === 'EINVAL'),
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
        add counter inet np k
        add set inet np cc { type ipv4_addr . inet_proto . inet_service; flags interval; }
        add set inet np h4 { type ipv4_addr; }
        add map inet np m4 { type ipv4_addr : verdict; }
        add set inet np s4 { type ipv4_addr; flags interval; }
        add element inet np cc { 10.0.0.0/24 . tcp . 80-90 }
        add element inet np h4 { 10.9.9.9 }
        add element inet np m4 { 10.0.0.1 : jump b }
        add element inet np s4 { 10.0.0.0/24 }
        add rule inet np a ip saddr @s4 counter name "k" accept comment "r-a"
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
        { name: 'in', base: { type: 'filter', hook: 'input', priority: 0, policy: 'accept' }, rules: [{ handle: 9, body: 'jump a' }] },
        { name: 'a', rules: [{ handle: 10, body: 'ip saddr @s4 counter name "k" accept', comment: 'r-a' }] },
        { name: 'b', rules: [] },
      ],
      sets: [
        { name: 's4', type: ['ipv4_addr'], flags: ['interval'], counter: false, elements: [{ key: ['10.0.0.0/24'] }] },
        { name: 'h4', type: ['ipv4_addr'], flags: [], counter: false, elements: [{ key: ['10.9.9.9'] }] },
        { name: 'cc', type: ['ipv4_addr', 'inet_proto', 'inet_service'], flags: ['interval'], counter: false, elements: [{ key: ['10.0.0.0/24', 'tcp', '80-90'] }] },
      ],
      maps: [{ name: 'm4', type: ['ipv4_addr'], flags: [], counter: false, elements: [{ key: ['10.0.0.1'], value: { jump: 'b' } }], value: 'verdict' }],
      counters: [{ name: 'k', packets: 0, bytes: 0 }],
    });
    assert.equal(await new FakeNft(T).list(), null);
  });
});
