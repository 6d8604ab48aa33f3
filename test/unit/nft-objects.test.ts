import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  MAX_COMMENT_LENGTH,
  MAX_NAME_LENGTH,
  NftValidationError,
  RuleToken,
  Transaction,
  accept,
  counter,
  ctState,
  drop,
  goto,
  icmpv6NeighborDiscovery,
  icmpv6Type,
  iifname,
  jump,
  l4proto,
  log,
  matchAddress,
  matchSet,
  namedCounter,
  nfproto,
  oifname,
  port,
  ret,
  vmap,
  type NftObject,
} from '../../src/dataplane/nft';

function dedent(text: string): string {
  const lines = text.replace(/^\n/, '').split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => /^ */.exec(l)?.[0].length ?? 0));
  return lines.map((l) => l.slice(indent)).join('\n').replace(/[ ]+$/, '');
}

/** The error a one-operation transaction keeps for `obj`, or null. */
function errorOf(verb: 'add' | 'create' | 'insert' | 'replace' | 'flush' | 'delete' | 'destroy', obj: NftObject): NftValidationError | null {
  const tx = new Transaction('np');
  tx[verb](obj);
  return tx.error;
}

describe('rendering', () => {
  it('renders every verb of every object kind (golden)', () => {
    const tx = new Transaction('np');
    tx.add({ kind: 'table' });
    tx.create({ kind: 'table' });
    tx.add({ kind: 'chain', name: 'input', base: { type: 'filter', hook: 'input', priority: -150, policy: 'drop' } });
    tx.add({ kind: 'chain', name: 'forward-0', base: { type: 'filter', hook: 'forward', priority: 0 } });
    tx.create({ kind: 'chain', name: 'pod-x' });
    tx.add({ kind: 'counter', name: 'k1' });
    tx.add({ kind: 'set', name: 's4', type: ['ipv4_addr'], flags: ['interval', 'constant'], counter: true, comment: 'peers of ns/a' });
    tx.add({ kind: 'set', name: 'cc', type: ['ipv4_addr', 'inet_proto', 'inet_service'], flags: ['interval'] });
    tx.create({ kind: 'map', name: 'm4', type: ['ipv4_addr'], value: 'verdict' });
    tx.add({ kind: 'element', set: 's4', key: ['10.0.0.0/24'], comment: 'pod ns/a' });
    tx.add({ kind: 'element', set: 'cc', key: ['10.1.0.0-10.1.0.255', 'tcp', '80-90'] });
    tx.create({ kind: 'element', set: 'm4', key: ['10.0.0.1'], value: { jump: 'pod-x' }, comment: 'e' });
    tx.add({ kind: 'element', set: 'm4', key: ['10.0.0.2'], value: 'drop' });
    tx.add({ kind: 'rule', chain: 'input', body: [ctState('related', 'established'), accept()] });
    tx.add({ kind: 'rule', chain: 'input', body: [matchSet(['ip saddr'], 's4'), counter(), jump('pod-x')], comment: 'np:ns/a/0' });
    tx.add({ kind: 'rule', chain: 'input', handle: 7, body: [matchSet(['ip saddr', 'meta l4proto', 'th dport'], 'cc'), drop()] });
    tx.insert({ kind: 'rule', chain: 'input', body: [vmap(['ip saddr'], 'm4')] });
    tx.insert({ kind: 'rule', chain: 'input', handle: 7, body: [matchAddress('ip6 saddr', 'fd00::/64', { negate: true }), ret()] });
    tx.replace({ kind: 'rule', chain: 'pod-x', handle: 9, body: [nfproto(4), l4proto('udp'), ctState('new'), goto('fwd2')] });
    tx.add({ kind: 'rule', chain: 'pod-x', body: [iifname('veth0'), oifname('eth-1'), namedCounter('k1'), log('np drop: '), drop()] });
    tx.delete({ kind: 'rule', chain: 'pod-x', handle: 12 });
    tx.flush({ kind: 'chain', name: 'pod-x' });
    tx.flush({ kind: 'set', name: 's4', type: ['ipv4_addr'] });
    tx.flush({ kind: 'map', name: 'm4', type: ['ipv4_addr'], value: 'verdict' });
    tx.flush({ kind: 'table' });
    tx.delete({ kind: 'element', set: 'm4', key: ['10.0.0.1'], value: 'accept', comment: 'ignored on delete' });
    tx.delete({ kind: 'set', name: 's4', type: ['ipv4_addr'] });
    tx.delete({ kind: 'map', name: 'm4', type: ['ipv4_addr'], value: 'verdict' });
    tx.delete({ kind: 'counter', name: 'k1' });
    tx.delete({ kind: 'chain', name: 'pod-x', base: { type: 'filter', hook: 'input', priority: 0 } });
    tx.delete({ kind: 'table' });
    assert.equal(tx.error, null);
    assert.equal(
      tx.toString(),
      dedent(`
        add table inet np
        create table inet np
        add chain inet np input { type filter hook input priority -150; policy drop; }
        add chain inet np forward-0 { type filter hook forward priority 0; }
        create chain inet np pod-x
        add counter inet np k1
        add set inet np s4 { type ipv4_addr; flags constant,interval; counter; comment "peers of ns/a"; }
        add set inet np cc { type ipv4_addr . inet_proto . inet_service; flags interval; }
        create map inet np m4 { type ipv4_addr : verdict; }
        add element inet np s4 { 10.0.0.0/24 comment "pod ns/a" }
        add element inet np cc { 10.1.0.0/24 . tcp . 80-90 }
        create element inet np m4 { 10.0.0.1 comment "e" : jump pod-x }
        add element inet np m4 { 10.0.0.2 : drop }
        add rule inet np input ct state established,related accept
        add rule inet np input ip saddr @s4 counter jump pod-x comment "np:ns/a/0"
        add rule inet np input handle 7 ip saddr . meta l4proto . th dport @cc drop
        insert rule inet np input ip saddr vmap @m4
        insert rule inet np input handle 7 ip6 saddr != fd00::/64 return
        replace rule inet np pod-x handle 9 meta nfproto ipv4 meta l4proto udp ct state new goto fwd2
        add rule inet np pod-x iifname "veth0" oifname "eth-1" counter name "k1" log prefix "np drop: " drop
        delete rule inet np pod-x handle 12
        flush chain inet np pod-x
        flush set inet np s4
        flush map inet np m4
        flush table inet np
        delete element inet np m4 { 10.0.0.1 }
        delete set inet np s4
        delete map inet np m4
        delete counter inet np k1
        delete chain inet np pod-x
        delete table inet np
      `),
    );
    assert.equal(tx.size, 31);
  });

  it('renders destroy as add + delete, which nft 1.0.6 can run', () => {
    const tx = new Transaction('np');
    tx.destroy({ kind: 'table' });
    tx.destroy({ kind: 'chain', name: 'input', base: { type: 'filter', hook: 'input', priority: 0 } });
    tx.destroy({ kind: 'set', name: 's4', type: ['ipv4_addr'], flags: ['interval'] });
    tx.destroy({ kind: 'map', name: 'm4', type: ['ipv4_addr'], value: 'verdict' });
    tx.destroy({ kind: 'element', set: 's4', key: ['10.0.0.0/8'] });
    tx.destroy({ kind: 'element', set: 'm4', key: ['10.0.0.1'], value: { goto: 'c' } });
    tx.destroy({ kind: 'counter', name: 'k' });
    assert.equal(
      tx.toString(),
      dedent(`
        add table inet np
        delete table inet np
        add chain inet np input
        delete chain inet np input
        add set inet np s4 { type ipv4_addr; flags interval; }
        delete set inet np s4
        add map inet np m4 { type ipv4_addr : verdict; }
        delete map inet np m4
        add element inet np s4 { 10.0.0.0/8 }
        delete element inet np s4 { 10.0.0.0/8 }
        add element inet np m4 { 10.0.0.1 : goto c }
        delete element inet np m4 { 10.0.0.1 }
        add counter inet np k
        delete counter inet np k
      `),
    );
    assert.deepEqual(
      tx.batchLines().map((l) => l.segments.map((s) => s.op)),
      [[0], [0], [1], [1], [2], [2], [3], [3], [4], [4], [5], [5], [6], [6]],
    );
  });

  it('writes values in the canonical form nft lists them in', () => {
    const tx = new Transaction('np');
    tx.add({ kind: 'element', set: 's', key: ['10.0.0.0-10.0.0.255'] });
    tx.add({ kind: 'element', set: 's', key: ['10.0.0.7/32'] });
    tx.add({ kind: 'element', set: 's', key: ['10.0.0.1-10.0.0.9'] });
    tx.add({ kind: 'element', set: 's', key: ['FD00:0::0:1', 80, '443-443', 'sctp'] });
    tx.add({ kind: 'element', set: 's', key: ['2001:db8::/32', '::ffff:1.2.3.4'] });
    tx.add({ kind: 'rule', chain: 'c', body: [matchAddress('ip saddr', '10.0.0.1/32'), port('udp', 'sport', 53, 53), ctState('new', 'invalid', 'new'), accept()] });
    tx.add({ kind: 'rule', chain: 'c', body: [icmpv6NeighborDiscovery(), accept()] });
    tx.add({ kind: 'rule', chain: 'c', body: [icmpv6Type('nd-redirect', 'nd-neighbor-solicit', 'nd-redirect'), accept()] });
    assert.equal(tx.error, null);
    assert.equal(
      tx.toString(),
      dedent(`
        add element inet np s { 10.0.0.0/24, 10.0.0.7, 10.0.0.1-10.0.0.9, fd00::1 . 80 . 443 . sctp, 2001:db8::/32 . ::ffff:1.2.3.4 }
        add rule inet np c ip saddr 10.0.0.1 udp sport 53 ct state invalid,new accept
        add rule inet np c icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept
        add rule inet np c icmpv6 type { nd-neighbor-solicit, nd-redirect } accept
      `),
    );
  });
});

describe('element commands', () => {
  it('groups a run of element operations per set into few commands, and maps columns back', () => {
    const tx = new Transaction('np');
    tx.add({ kind: 'element', set: 's', key: ['10.0.0.1'] });
    tx.add({ kind: 'element', set: 's', key: ['10.0.0.2'], comment: 'two' });
    tx.add({ kind: 'element', set: 'm', key: ['10.0.0.1'], value: { jump: 'c' } });
    tx.add({ kind: 'element', set: 'm', key: ['10.0.0.2'], value: 'drop', comment: 'x' });
    tx.delete({ kind: 'element', set: 'm', key: ['10.0.0.1'] });
    tx.delete({ kind: 'element', set: 'm', key: ['10.0.0.3'] });
    tx.add({ kind: 'element', set: 's', key: ['10.0.0.3'] });
    tx.add({ kind: 'element', set: 's', key: ['10.0.0.3'] }); // repeated key: a new command
    tx.create({ kind: 'element', set: 's', key: ['10.0.0.4'] });
    tx.destroy({ kind: 'element', set: 's', key: ['10.0.0.5'] });
    tx.destroy({ kind: 'element', set: 's', key: ['10.0.0.6'] });
    assert.equal(
      tx.toString(),
      dedent(`
        add element inet np s { 10.0.0.1, 10.0.0.2 comment "two", 10.0.0.3 }
        add element inet np s { 10.0.0.3 }
        create element inet np s { 10.0.0.4 }
        add element inet np m { 10.0.0.1 : jump c, 10.0.0.2 comment "x" : drop }
        delete element inet np m { 10.0.0.1, 10.0.0.3 }
        add element inet np s { 10.0.0.5 }
        delete element inet np s { 10.0.0.5 }
        add element inet np s { 10.0.0.6 }
        delete element inet np s { 10.0.0.6 }
      `),
    );
    const line1 = tx.batchLines()[0];
    assert.deepEqual(line1?.segments, [
      { op: 0, from: 25, to: 32 },
      { op: 1, from: 35, to: 56 },
      { op: 6, from: 59, to: 66 },
    ]);
    assert.equal(line1?.text.slice(34, 56), '10.0.0.2 comment "two"');
    assert.equal(tx.locate(1, 36)?.index, 1);
    assert.equal(tx.locate(1)?.index, 0);
    assert.equal(tx.locate(5, 38)?.index, 5);
    assert.equal(tx.locate(7)?.index, 9);
    assert.equal(tx.locate(99), undefined);
    // Sets do not interact, so elements are grouped per set; within a set the order is kept.
    assert.deepEqual(tx.executionOrder(), [0, 1, 6, 7, 8, 2, 3, 4, 5, 9, 10]);
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
  const hostile = [
    'a;b',
    'a}b',
    'a{b',
    'a\nb',
    'a"b',
    'a#b',
    'a b',
    'a\\b',
    'a$b',
    'a@b',
    'a/b',
    'a:b',
    "a'b",
    'pød',
    'a\u202eb',
    'a\u0000b',
    '',
    '1abc',
    '-abc',
    '.abc',
    'accept',
    'counter',
    'ip',
    'tcp',
    'table',
    'x'.repeat(MAX_NAME_LENGTH + 1),
  ];

  it('rejects names that could inject nft syntax or that nft would not parse', () => {
    for (const name of hostile) {
      for (const obj of [
        { kind: 'chain', name },
        { kind: 'counter', name },
        { kind: 'set', name, type: ['ipv4_addr'] },
        { kind: 'map', name, type: ['ipv4_addr'], value: 'verdict' },
        { kind: 'element', set: name, key: ['10.0.0.1'] },
        { kind: 'rule', chain: name, body: [accept()] },
      ] as const) {
        const err = errorOf('add', obj);
        assert.ok(err instanceof NftValidationError, `${JSON.stringify(name)} accepted as ${obj.kind}`);
        assert.equal(err.code, 'NFT_INVALID_OBJECT');
        assert.equal(err.op?.index, 0);
      }
      assert.ok(new Transaction(name).error instanceof NftValidationError, `table ${JSON.stringify(name)}`);
    }
  });

  it('rejects hostile names inside rule tokens and verdicts', () => {
    for (const name of hostile) {
      for (const tok of [jump(name), goto(name), matchSet(['ip saddr'], name), vmap(['ip saddr'], name), namedCounter(name)]) {
        assert.ok(tok.error instanceof NftValidationError, `${JSON.stringify(name)} accepted in ${tok.text}`);
        assert.ok(errorOf('add', { kind: 'rule', chain: 'c', body: [tok] }) instanceof NftValidationError);
      }
      assert.ok(errorOf('add', { kind: 'element', set: 'm', key: ['10.0.0.1'], value: { jump: name } }) instanceof NftValidationError);
    }
  });

  it('accepts ordinary names up to the limit', () => {
    for (const name of ['pod-x', 'np_ns.name-1', '_x', 'A', 'x'.repeat(MAX_NAME_LENGTH), 'state2', 'Accept']) {
      assert.equal(errorOf('add', { kind: 'chain', name }), null, name);
    }
  });

  it('rejects comments nft cannot hold safely; accepts printable ASCII', () => {
    const bad = ['a"b', 'a\nb', 'a\rb', 'a\\b', 'tab\there', 'é', '日本', 'a\u202eb', 'x'.repeat(MAX_COMMENT_LENGTH + 1), '\u0000'];
    for (const comment of bad) {
      assert.ok(errorOf('add', { kind: 'rule', chain: 'c', body: [accept()], comment }) instanceof NftValidationError, JSON.stringify(comment));
      assert.ok(errorOf('add', { kind: 'set', name: 's', type: ['ipv4_addr'], comment }) instanceof NftValidationError);
      assert.ok(errorOf('add', { kind: 'element', set: 's', key: ['10.0.0.1'], comment }) instanceof NftValidationError);
      assert.ok(log(comment).error instanceof NftValidationError);
    }
    const good = 'np:ns/name; } { # $x @y \'q\' ' + 'x'.repeat(50);
    const tx = new Transaction('np');
    tx.add({ kind: 'rule', chain: 'c', body: [accept()], comment: good });
    tx.add({ kind: 'rule', chain: 'c', body: [accept()], comment: 'x'.repeat(MAX_COMMENT_LENGTH) });
    assert.equal(tx.error, null);
    assert.equal(tx.toString().split('\n')[0], `add rule inet np c accept comment "${good}"`);
  });

  it('validates addresses, CIDRs, ranges, ports and protocols', () => {
    const badKeys: (string | number)[] = [
      '10.0.0.256',
      '10.0.0',
      '010.0.0.1',
      '10.0.0.1/33',
      '10.0.0.1/24',
      '10.0.0.9-10.0.0.1',
      '10.0.0.1-fd00::1',
      'fd00::1/129',
      'fd00::1%eth0',
      'fd00:::1',
      '1.2.3.4; drop',
      '65536',
      -1,
      1.5,
      '80-70',
      '080',
      'icmp',
      'TCP',
      'tcp }',
      '',
    ];
    for (const key of badKeys) {
      const err = errorOf('add', { kind: 'element', set: 's', key: [key] });
      assert.ok(err instanceof NftValidationError, `${JSON.stringify(key)} accepted`);
      assert.equal(err.field, 'key[0]');
    }
    for (const tok of [
      matchAddress('ip saddr', 'fd00::1'),
      matchAddress('ip6 daddr', '10.0.0.1'),
      matchAddress('ip saddr', '10.0.0.1/24'),
      port('tcp', 'dport', 70000),
      port('tcp', 'dport', 90, 80),
      iifname('veth0"; drop'),
      iifname('x'.repeat(16)),
      ctState(),
    ]) {
      assert.ok(tok.error instanceof NftValidationError, tok.text);
    }
  });

  it('checks the verb against the object kind and required fields', () => {
    assert.match(errorOf('destroy', { kind: 'rule', chain: 'c', handle: 3 })?.message ?? '', /nft 1\.0\.6 has no destroy/);
    assert.ok(errorOf('insert', { kind: 'chain', name: 'c' }));
    assert.ok(errorOf('replace', { kind: 'set', name: 's', type: ['ipv4_addr'] }));
    assert.ok(errorOf('flush', { kind: 'element', set: 's', key: ['10.0.0.1'] }));
    assert.ok(errorOf('flush', { kind: 'counter', name: 'k' }));
    assert.ok(errorOf('create', { kind: 'rule', chain: 'c', body: [accept()] }));
    assert.match(errorOf('replace', { kind: 'rule', chain: 'c', body: [accept()] })?.message ?? '', /needs the rule's handle/);
    assert.match(errorOf('delete', { kind: 'rule', chain: 'c' })?.message ?? '', /needs the rule's handle/);
    assert.ok(errorOf('add', { kind: 'rule', chain: 'c', body: [] }));
    assert.ok(errorOf('add', { kind: 'rule', chain: 'c', handle: 0, body: [accept()] }));
    assert.ok(errorOf('add', { kind: 'rule', chain: 'c', handle: 1.5, body: [accept()] }));
    assert.ok(errorOf('add', { kind: 'set', name: 's', type: [] }));
    assert.ok(errorOf('add', { kind: 'element', set: 's', key: [] }));
  });

  it('refuses token combinations that nft rewrites in its listing', () => {
    const rewritten = [
      [nfproto(4), matchAddress('ip saddr', '10.0.0.1'), accept()],
      [nfproto(6), counter(), matchSet(['ip6 daddr'], 's6'), accept()],
      [nfproto(4), vmap(['ip saddr', 'th dport'], 'm')],
      [nfproto(6), matchAddress('ip saddr', '10.0.0.1'), accept()],
      [l4proto('tcp'), port('tcp', 'dport', 80), accept()],
      [l4proto('udp'), port('tcp', 'dport', 80), accept()],
      [l4proto('tcp'), matchSet(['ip saddr', 'meta l4proto', 'th dport'], 'cc'), accept()],
      [port('tcp', 'dport', 80), port('tcp', 'sport', 1), accept()],
      [port('tcp', 'dport', 80), port('udp', 'dport', 53), accept()],
      [matchAddress('ip saddr', '10.0.0.1'), matchAddress('ip6 daddr', 'fd00::1'), accept()],
      [matchSet(['ip saddr'], 's'), icmpv6NeighborDiscovery(), accept()],
      [nfproto(6), icmpv6Type('nd-neighbor-solicit'), accept()],
      [l4proto('tcp'), icmpv6Type('nd-neighbor-solicit'), accept()],
      [port('tcp', 'dport', 80), icmpv6Type('nd-neighbor-solicit'), accept()],
    ];
    for (const body of rewritten) {
      const err = errorOf('add', { kind: 'rule', chain: 'c', body });
      assert.ok(err instanceof NftValidationError, body.map((t) => t.text).join(' '));
      assert.match(err.field, /^body\[\d\]$/);
    }
    const kept = [
      [nfproto(4), ctState('established'), accept()],
      [matchAddress('ip saddr', '10.0.0.1'), nfproto(4), accept()],
      [l4proto('tcp'), iifname('veth0'), accept()],
      [l4proto('tcp'), matchSet(['ip saddr', 'meta l4proto'], 'x'), accept()],
      [matchAddress('ip6 saddr', 'fd00::1'), icmpv6NeighborDiscovery(), accept()],
    ];
    for (const body of kept) assert.equal(errorOf('add', { kind: 'rule', chain: 'c', body }), null, body.map((t) => t.text).join(' '));
  });

  it('accepts rule bodies only from the helpers', () => {
    const forged = { text: 'accept; flush ruleset', refs: { sets: [], chains: [], counters: [] }, error: null } as unknown as RuleToken;
    const err = errorOf('add', { kind: 'rule', chain: 'c', body: [forged] });
    assert.ok(err instanceof NftValidationError);
    assert.equal(err.field, 'body[0]');
    assert.throws(() => new RuleToken(Symbol('nft.RuleToken'), 'accept', { sets: [], chains: [], counters: [] }), TypeError);
    assert.ok(RuleToken.isToken(accept()));
    assert.ok(!RuleToken.isToken(forged));
  });

  it('rejects objects smuggled past the types', () => {
    const odd = [
      { kind: 'rule', chain: 'c', body: [accept()], comment: 42 },
      { kind: 'set', name: 's', type: ['ipv4_addr; flush ruleset'] },
      { kind: 'set', name: 's', type: ['ipv4_addr'], flags: ['timeout'] },
      { kind: 'chain', name: 'c', base: { type: 'filter', hook: 'input', priority: '0; flush ruleset' } },
      { kind: 'chain', name: 'c', base: { type: 'filter', hook: 'input', priority: 0, policy: 'continue' } },
      { kind: 'element', set: 's', key: ['10.0.0.1'], value: 'jump x' },
      { kind: 'element', set: 's', key: ['10.0.0.1'], value: { jump: 'x', goto: 'y' } },
      { kind: 'map', name: 'm', type: ['ipv4_addr'], value: 'ipv4_addr' },
      { kind: 'bogus' },
    ] as unknown as NftObject[];
    for (const obj of odd) assert.ok(errorOf('add', obj) instanceof NftValidationError, JSON.stringify(obj));
    const tx = new Transaction('np');
    tx.add(null as unknown as NftObject);
    assert.equal(tx.error?.op?.kind, 'unknown');
  });
});

describe('transaction', () => {
  it('keeps the first error, ignores later operations, and shows it in toString', () => {
    const tx = new Transaction('np');
    tx.add({ kind: 'table' });
    tx.add({ kind: 'chain', name: 'ok' });
    tx.add({ kind: 'chain', name: 'bad;name' });
    tx.add({ kind: 'chain', name: 'after' });
    tx.add({ kind: 'chain', name: 'also"bad' });
    const err = tx.error;
    assert.ok(err instanceof NftValidationError);
    assert.deepEqual(err.op, { index: 2, verb: 'add', kind: 'chain', name: 'chain bad;name' });
    assert.equal(err.field, 'name');
    assert.equal(tx.size, 2);
    assert.equal(
      tx.toString(),
      dedent(`
        add table inet np
        add chain inet np ok
        # ERROR: #2 add chain bad;name: invalid name "bad;name": must match [A-Za-z_][A-Za-z0-9_.-]* and be at most 128 characters
      `),
    );
  });

  it('reports a poisoned token as the transaction error, with its operation', () => {
    const tx = new Transaction('np');
    tx.add({ kind: 'rule', chain: 'c', body: [matchAddress('ip saddr', 'not-an-ip'), accept()] });
    assert.match(tx.error?.message ?? '', /^#0 add rule c: invalid ip saddr "not-an-ip": /);
  });

  it('stores frozen copies: later mutation of the input changes nothing', () => {
    const tx = new Transaction('np');
    const key = ['10.0.0.1'];
    tx.add({ kind: 'element', set: 's', key });
    key[0] = '1.2.3.4 }; flush ruleset; add element inet np s { 1.2.3.4';
    assert.equal(tx.toString(), 'add element inet np s { 10.0.0.1 }\n');
    const op = tx.operations[0];
    assert.ok(op !== undefined && Object.isFrozen(op.object));
  });

  it('renders an empty transaction as the empty string', () => {
    assert.equal(new Transaction('np').toString(), '');
  });
});
