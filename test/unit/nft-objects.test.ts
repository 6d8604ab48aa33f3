// The typed nft objects: what each operation renders to, how element commands are grouped, and what
// validation refuses before anything reaches nft.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  NftValidationError,
  Transaction,
  accept,
  counter,
  ctState,
  drop,
  icmpv6NeighborDiscovery,
  jump,
  limit,
  log,
  matchSet,
  ret,
  vmap,
  type NftObject,
  type Verb,
} from '../../src/dataplane/nft';
import { MAX_NAME_LENGTH } from '../../src/dataplane/nft/objects';

function dedent(text: string): string {
  const lines = text.replace(/^\n/, '').split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => /^ */.exec(l)?.[0].length ?? 0));
  return lines.map((l) => l.slice(indent)).join('\n').replace(/[ ]+$/, '');
}

function errorOf(verb: Verb, obj: NftObject): NftValidationError | null {
  const tx = new Transaction('np');
  if (verb === 'add') tx.add(obj);
  else if (verb === 'flush') tx.flush(obj);
  else tx.delete(obj);
  return tx.error;
}

describe('rendering', () => {
  it('renders every verb of every object kind (golden)', () => {
    const tx = new Transaction('np');
    tx.add({ kind: 'table' });
    tx.add({ kind: 'chain', name: 'forward', base: { type: 'filter', hook: 'forward', priority: 0, policy: 'accept' } });
    tx.add({ kind: 'chain', name: 'in_a' });
    tx.add({ kind: 'set', name: 'pp4', type: ['ipv4_addr', 'inet_proto', 'inet_service'], flags: ['interval'] });
    tx.add({ kind: 'map', name: 'ingress_v4', type: ['ipv4_addr'] });
    tx.add({ kind: 'rule', chain: 'forward', body: [ctState('related', 'established'), accept()] });
    tx.add({ kind: 'rule', chain: 'forward', body: [icmpv6NeighborDiscovery(), accept()] });
    tx.add({ kind: 'rule', chain: 'forward', body: [vmap(['ip daddr'], 'ingress_v4')] });
    tx.add({ kind: 'rule', chain: 'in_a', body: [matchSet(['ip saddr', 'meta l4proto', 'th dport'], 'pp4'), ret()] });
    tx.add({ kind: 'rule', chain: 'in_a', body: [limit(10, 'second'), log({ prefix: 'np drop: ', group: 2 }), counter(), drop()] });
    tx.add({ kind: 'rule', chain: 'in_a', body: [jump('in_b')] });
    tx.flush({ kind: 'chain', name: 'in_a' });
    tx.delete({ kind: 'chain', name: 'in_a' });
    tx.delete({ kind: 'set', name: 'pp4' });
    tx.delete({ kind: 'map', name: 'ingress_v4' });
    tx.delete({ kind: 'foreign', type: 'flowtable', name: 'ft' });
    tx.delete({ kind: 'foreign', type: 'ct helper', name: 'h' });
    tx.delete({ kind: 'table' });
    assert.equal(tx.error, null);
    assert.equal(
      tx.toString(),
      dedent(`
        add table inet np
        add chain inet np forward { type filter hook forward priority 0; policy accept; }
        add chain inet np in_a
        add set inet np pp4 { type ipv4_addr . inet_proto . inet_service; flags interval; }
        add map inet np ingress_v4 { type ipv4_addr : verdict; }
        add rule inet np forward ct state established,related accept
        add rule inet np forward icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept
        add rule inet np forward ip daddr vmap @ingress_v4
        add rule inet np in_a ip saddr . meta l4proto . th dport @pp4 return
        add rule inet np in_a limit rate 10/second burst 5 packets log prefix "np drop: " group 2 counter drop
        add rule inet np in_a jump in_b
        flush chain inet np in_a
        delete chain inet np in_a
        delete set inet np pp4
        delete map inet np ingress_v4
        delete flowtable inet np ft
        delete ct helper inet np h
        delete table inet np
      `),
    );
  });

  it('writes values in the canonical form nft lists them in', () => {
    const tx = new Transaction('np');
    tx.add({ kind: 'element', set: 's', key: ['10.0.0.0-10.0.0.255', 'tcp', '80-80'] });
    tx.add({ kind: 'element', set: 's6', key: ['FD00:0::1/128'] });
    assert.equal(tx.toString(), 'add element inet np s { 10.0.0.0/24 . tcp . 80 }\nadd element inet np s6 { fd00::1 }\n');
  });
});

describe('element commands', () => {
  it('groups a run of element operations per set into few commands, and maps columns back', () => {
    const tx = new Transaction('np');
    tx.add({ kind: 'element', set: 's', key: ['10.0.0.1'] });
    tx.add({ kind: 'element', set: 's', key: ['10.0.0.2'] });
    tx.add({ kind: 'element', set: 'm', key: ['10.0.0.1'], value: { jump: 'c' } });
    tx.add({ kind: 'element', set: 'm', key: ['10.0.0.2'], value: 'drop' });
    tx.delete({ kind: 'element', set: 'm', key: ['10.0.0.1'] });
    tx.delete({ kind: 'element', set: 'm', key: ['10.0.0.3'] });
    tx.add({ kind: 'element', set: 's', key: ['10.0.0.3'] });
    tx.add({ kind: 'element', set: 's', key: ['10.0.0.3'] }); // repeated key: a new command
    assert.equal(
      tx.toString(),
      dedent(`
        add element inet np s { 10.0.0.1, 10.0.0.2, 10.0.0.3 }
        add element inet np s { 10.0.0.3 }
        add element inet np m { 10.0.0.1 : jump c, 10.0.0.2 : drop }
        delete element inet np m { 10.0.0.1, 10.0.0.3 }
      `),
    );
    assert.deepEqual(tx.batchLines()[0]?.segments, [
      { op: 0, from: 25, to: 32 },
      { op: 1, from: 35, to: 42 },
      { op: 6, from: 45, to: 52 },
    ]);
    assert.equal(tx.locate(1, 36)?.index, 1);
    assert.equal(tx.locate(1)?.index, 0);
    assert.equal(tx.locate(4, 38)?.index, 5);
    assert.equal(tx.locate(99), undefined);
    // Sets do not interact, so elements are grouped per set; within a set the order is kept.
    assert.deepEqual(tx.executionOrder(), [0, 1, 6, 7, 2, 3, 4, 5]);
  });

  it('caps a command at MAX_ELEMENTS_PER_COMMAND elements', () => {
    const tx = new Transaction('np');
    for (let i = 0; i < 2500; i++) tx.add({ kind: 'element', set: 's', key: [i] });
    const lines = tx.batchLines();
    assert.deepEqual(lines.map((l) => l.segments.length), [1000, 1000, 500]);
    assert.equal(tx.locate(2, lines[1]?.segments[999]?.from)?.index, 1999);
  });
});

describe('validation', () => {
  const hostile = ['a;b', 'a}b', 'a\nb', 'a"b', 'a b', 'a\\b', 'a@b', 'a/b', 'pød', 'a\u0000b', '', '1abc', '-abc', 'accept', 'ip', 'table', 'x'.repeat(MAX_NAME_LENGTH + 1)];

  it('rejects names that could inject nft syntax or that nft would not parse, everywhere a name goes', () => {
    for (const name of hostile) {
      for (const obj of [
        { kind: 'chain', name },
        { kind: 'set', name, type: ['ipv4_addr'] },
        { kind: 'map', name, type: ['ipv4_addr'] },
        { kind: 'element', set: name, key: ['10.0.0.1'] },
        { kind: 'rule', chain: name, body: [accept()] },
        { kind: 'foreign', type: 'counter', name },
      ] as const) {
        const err = errorOf(obj.kind === 'foreign' ? 'delete' : 'add', obj);
        assert.ok(err instanceof NftValidationError, `${JSON.stringify(name)} accepted as ${obj.kind}`);
        assert.equal(err.code, 'NFT');
        assert.equal(err.op?.index, 0);
      }
      for (const tok of [jump(name), matchSet(['ip saddr'], name), vmap(['ip saddr'], name)]) {
        assert.ok(tok.error instanceof NftValidationError, `${JSON.stringify(name)} accepted in ${tok.text}`);
      }
      assert.ok(new Transaction(name).error instanceof NftValidationError, `table ${JSON.stringify(name)}`);
    }
    for (const name of ['pod-x', 'np_ns.name-1', '_x', 'x'.repeat(MAX_NAME_LENGTH), 'Accept']) assert.equal(errorOf('add', { kind: 'chain', name }), null, name);
  });

  it('rejects log prefixes nft cannot hold, bad groups and limits', () => {
    for (const prefix of ['a"b', 'a\nb', 'a\\b', 'é', 'x'.repeat(128)]) assert.ok(log({ prefix }).error instanceof NftValidationError, JSON.stringify(prefix));
    assert.ok(log({ group: 70000 }).error instanceof NftValidationError);
    assert.ok(limit(0, 'second').error instanceof NftValidationError);
    assert.equal(log({ prefix: 'ok: ', group: 0 }).text, 'log prefix "ok: " group 0');
  });

  it('validates element keys and checks the verb against the object kind', () => {
    for (const key of ['10.0.0.1/24', '300.0.0.1', '10.0.0.2-10.0.0.1', '70000', 'icmp']) {
      assert.ok(errorOf('add', { kind: 'element', set: 's', key: [key] }) instanceof NftValidationError, key);
    }
    assert.ok(errorOf('flush', { kind: 'set', name: 's' }) instanceof NftValidationError);
    assert.ok(errorOf('add', { kind: 'foreign', type: 'flowtable', name: 'ft' }) instanceof NftValidationError);
    assert.ok(errorOf('add', { kind: 'set', name: 's', type: ['ipv4_addr'], flags: ['timeout'] } as unknown as NftObject) instanceof NftValidationError);
    assert.ok(errorOf('add', { kind: 'chain', name: 'c', base: { type: 'filter', hook: 'prerouting', priority: 0, policy: 'accept' } } as unknown as NftObject) instanceof NftValidationError);
    assert.ok(errorOf('add', { kind: 'rule', chain: 'c', body: ['accept'] } as unknown as NftObject) instanceof NftValidationError);
  });
});

describe('transaction', () => {
  it('keeps the first error, ignores later operations, and shows it in toString', () => {
    const tx = new Transaction('np');
    tx.add({ kind: 'chain', name: 'a' });
    tx.add({ kind: 'chain', name: 'bad name' });
    tx.add({ kind: 'chain', name: 'c' });
    assert.equal(tx.size, 1);
    assert.match(tx.error?.message ?? '', /^#1 add chain bad name: invalid name "bad name"/);
    assert.match(tx.toString(), /^add chain inet np a\n# ERROR: #1 add chain/);
  });

  it('reports a poisoned token as the transaction error, and renders an empty transaction as ""', () => {
    const tx = new Transaction('np');
    tx.add({ kind: 'rule', chain: 'c', body: [matchSet(['ip saddr'], 'bad name'), accept()] });
    assert.equal(tx.error?.op?.index, 0);
    assert.equal(new Transaction('np').toString(), '');
  });
});
