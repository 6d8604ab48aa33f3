// The kernel backend's own logic, with a stand-in for nftables-napi's
// NftContext: JSON parsing, normalization, error mapping, what gets sent.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  FakeNft,
  KernelNftBackend,
  NftApplyError,
  NftClosedError,
  NftListError,
  NftValidationError,
  Transaction,
  accept,
  classifyNftMessage,
  counter,
  ctState,
  drop,
  iifname,
  jump,
  log,
  matchAddress,
  matchSet,
  namedCounter,
  port,
  vmap,
  findRuleByComment,
  normalizeSnapshot,
  parseTableJson,
  type NftContextLike,
  type TableSnapshot,
} from '../../src/dataplane/nft';

/** `nft -j list table inet np` as nft 1.0.6 printed it for the table built in the fake below. */
const LISTING: unknown = JSON.parse(
  '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "np", "handle": 154}}, {"counter": {"family": "inet", "name": "k1", "table": "np", "handle": 3, "packets": 5, "bytes": 300}}, {"set": {"family": "inet", "name": "s4", "table": "np", "type": "ipv4_addr", "handle": 4, "comment": "c;1", "flags": ["interval"], "elem": [{"elem": {"val": {"prefix": {"addr": "10.0.0.0", "len": 24}}, "comment": "x", "counter": {"packets": 0, "bytes": 0}}}], "stmt": [{"counter": null}]}}, {"set": {"family": "inet", "name": "cc", "table": "np", "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 5, "flags": ["interval"], "elem": [{"concat": [{"prefix": {"addr": "10.0.0.0", "len": 24}}, "tcp", {"range": [80, 90]}]}]}}, {"map": {"family": "inet", "name": "vmp", "table": "np", "type": "ipv4_addr", "handle": 6, "map": "verdict", "elem": [[{"elem": {"val": "10.0.0.1", "comment": "e"}}, {"jump": {"target": "pod-x"}}]]}}, {"chain": {"family": "inet", "table": "np", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"chain": {"family": "inet", "table": "np", "name": "pod-x", "handle": 2}}, {"rule": {"family": "inet", "table": "np", "chain": "input", "handle": 7, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "np", "chain": "input", "handle": 8, "comment": "r1", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@s4"}}, {"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "pod-x"}}]}}, {"rule": {"family": "inet", "table": "np", "chain": "input", "handle": 9, "expr": [{"match": {"op": "==", "left": {"concat": [{"payload": {"protocol": "ip", "field": "saddr"}}, {"meta": {"key": "l4proto"}}, {"payload": {"protocol": "th", "field": "dport"}}]}, "right": "@cc"}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "np", "chain": "input", "handle": 10, "expr": [{"vmap": {"key": {"payload": {"protocol": "ip", "field": "saddr"}}, "data": "@vmp"}}]}}, {"rule": {"family": "inet", "table": "np", "chain": "pod-x", "handle": 11, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"range": [80, 90]}}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": {"prefix": {"addr": "fd00::", "len": 64}}}}, {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "veth0"}}, {"counter": "k1"}, {"log": {"prefix": "np drop: "}}, {"drop": null}]}}]}',
);

function buildSample(t: Transaction): void {
  t.add({ kind: 'table' });
  t.add({ kind: 'chain', name: 'input', base: { type: 'filter', hook: 'input', priority: 0, policy: 'accept' } });
  t.add({ kind: 'chain', name: 'pod-x' });
  t.add({ kind: 'counter', name: 'k1' });
  t.add({ kind: 'set', name: 's4', type: ['ipv4_addr'], flags: ['interval'], counter: true, comment: 'c;1' });
  t.add({ kind: 'set', name: 'cc', type: ['ipv4_addr', 'inet_proto', 'inet_service'], flags: ['interval'] });
  t.add({ kind: 'map', name: 'vmp', type: ['ipv4_addr'], value: 'verdict' });
  t.add({ kind: 'element', set: 's4', key: ['10.0.0.0-10.0.0.255'], comment: 'x' });
  t.add({ kind: 'element', set: 'cc', key: ['10.0.0.0/24', 'tcp', '80-90'] });
  t.add({ kind: 'element', set: 'vmp', key: ['10.0.0.1'], value: { jump: 'pod-x' }, comment: 'e' });
  t.add({ kind: 'rule', chain: 'input', body: [ctState('related', 'established'), accept()] });
  t.add({ kind: 'rule', chain: 'input', body: [matchSet(['ip saddr'], 's4'), counter(), jump('pod-x')], comment: 'r1' });
  t.add({ kind: 'rule', chain: 'input', body: [matchSet(['ip saddr', 'meta l4proto', 'th dport'], 'cc'), drop()] });
  t.add({ kind: 'rule', chain: 'input', body: [vmap(['ip saddr'], 'vmp')] });
  t.add({
    kind: 'rule',
    chain: 'pod-x',
    body: [port('tcp', 'dport', 80, 90), matchAddress('ip6 saddr', 'fd00::/64', { negate: true }), iifname('veth0'), namedCounter('k1'), log('np drop: '), drop()],
  });
}

/** An NftError as nftables-napi throws it. */
function nftError(nftMessage: string, command: string, errno?: number): Error {
  const e = new Error(`nft: ${nftMessage.split('\n')[0] ?? ''}`);
  Object.assign(e, { name: 'NftError', code: 'NFT_COMMAND_FAILED', nftMessage, command, ...(errno === undefined ? {} : { errno }) });
  return e;
}

class StubContext implements NftContextLike {
  readonly sent: string[] = [];
  closed = false;
  failWith: Error | null = null;
  listing: unknown = LISTING;
  async run(batch: string): Promise<void> {
    this.sent.push(batch);
    if (this.failWith !== null) throw this.failWith;
  }
  async check(batch: string): Promise<void> {
    this.sent.push(`check:${batch}`);
    if (this.failWith !== null) throw this.failWith;
  }
  async list(command: string): Promise<unknown> {
    this.sent.push(`list:${command}`);
    if (this.failWith !== null) throw this.failWith;
    return this.listing;
  }
  close(): void {
    this.closed = true;
  }
}

describe('parse-json', () => {
  it('reads a real nft 1.0.6 listing into the same snapshot the fake produces', async () => {
    const parsed = parseTableJson(LISTING, 'np');
    assert.ok(parsed !== null);
    assert.deepEqual(parsed.chains, [
      {
        name: 'input',
        base: { type: 'filter', hook: 'input', priority: 0, policy: 'accept' },
        rules: [
          { handle: 7, body: 'ct state established,related accept' },
          { handle: 8, body: 'ip saddr @s4 counter jump pod-x', comment: 'r1' },
          { handle: 9, body: 'ip saddr . meta l4proto . th dport @cc drop' },
          { handle: 10, body: 'ip saddr vmap @vmp' },
        ],
      },
      { name: 'pod-x', rules: [{ handle: 11, body: 'tcp dport 80-90 ip6 saddr != fd00::/64 iifname "veth0" counter name "k1" log prefix "np drop: " drop' }] },
    ]);
    assert.deepEqual(parsed.sets[0], {
      name: 's4',
      type: ['ipv4_addr'],
      flags: ['interval'],
      counter: true,
      comment: 'c;1',
      elements: [{ key: ['10.0.0.0/24'], comment: 'x', counter: { packets: 0, bytes: 0 } }],
    });
    assert.deepEqual(parsed.maps[0]?.elements, [{ key: ['10.0.0.1'], value: { jump: 'pod-x' }, comment: 'e' }]);
    assert.deepEqual(parsed.counters, [{ name: 'k1', packets: 5, bytes: 300 }]);
    assert.equal(findRuleByComment(parsed, 'input', 'r1')?.handle, 8);

    const fake = new FakeNft('np');
    const t = new Transaction('np');
    buildSample(t);
    await fake.run(t);
    assert.deepEqual(normalizeSnapshot(parsed), normalizeSnapshot(await fake.list()));
  });

  it('returns null for a document without the table, and ignores other tables', () => {
    const other = { nftables: [{ table: { family: 'inet', name: 'other', handle: 1 } }, { chain: { family: 'inet', table: 'other', name: 'c', handle: 1 } }] };
    assert.equal(parseTableJson(other, 'np'), null);
    assert.equal(parseTableJson({ nftables: [] }, 'np'), null);
    assert.throws(() => parseTableJson({}, 'np'), NftListError);
  });

  it('prints expressions without a helper as <unsupported ...>', () => {
    const doc = {
      nftables: [
        { table: { family: 'inet', name: 'np', handle: 1 } },
        { chain: { family: 'inet', table: 'np', name: 'c', handle: 1 } },
        { rule: { family: 'inet', table: 'np', chain: 'c', handle: 2, expr: [{ match: { op: '==', left: { meta: { key: 'l4proto' } }, right: { set: ['tcp', 'udp'] } } }, { reject: { type: 'icmpx', expr: 'port-unreachable' } }] } },
      ],
    };
    const body = parseTableJson(doc, 'np')?.chains[0]?.rules[0]?.body ?? '';
    assert.match(body, /^<unsupported \{"match":.*> <unsupported \{"reject":.*>$/);
  });
});

describe('normalizeSnapshot', () => {
  it('hides handles, counter values, order and non-canonical keys', () => {
    const a: TableSnapshot = {
      family: 'inet',
      name: 'np',
      chains: [
        { name: 'b', rules: [{ handle: 5, body: 'accept  ', comment: 'x' }] },
        { name: 'a', rules: [] },
      ],
      sets: [
        { name: 's', type: ['ipv4_addr'], flags: ['interval', 'constant'], counter: true, elements: [{ key: ['10.0.1.0-10.0.1.255'], counter: { packets: 9, bytes: 9 } }, { key: ['10.0.0.1/32'], counter: { packets: 1, bytes: 1 } }] },
      ],
      maps: [],
      counters: [{ name: 'z', packets: 3, bytes: 4 }, { name: 'k', packets: 1, bytes: 2 }],
    };
    assert.deepEqual(normalizeSnapshot(a), {
      family: 'inet',
      name: 'np',
      chains: [
        { name: 'a', rules: [] },
        { name: 'b', rules: [{ handle: 0, body: 'accept', comment: 'x' }] },
      ],
      sets: [
        { name: 's', type: ['ipv4_addr'], flags: ['constant', 'interval'], counter: true, elements: [{ key: ['10.0.0.1'], counter: { packets: 0, bytes: 0 } }, { key: ['10.0.1.0/24'], counter: { packets: 0, bytes: 0 } }] },
      ],
      maps: [],
      counters: [{ name: 'k', packets: 0, bytes: 0 }, { name: 'z', packets: 0, bytes: 0 }],
    });
    assert.equal(normalizeSnapshot(null), null);
  });
});

describe('KernelNftBackend (stub context)', () => {
  it('sends tx.toString() as one batch, and lists the table', async () => {
    const ctx = new StubContext();
    const k = new KernelNftBackend({ table: 'np', context: ctx });
    const t = k.newTransaction();
    buildSample(t);
    await k.run(t);
    await k.check(t);
    assert.deepEqual(ctx.sent, [t.toString(), `check:${t.toString()}`]);
    const snap = await k.list();
    assert.equal(ctx.sent[2], 'list:list table inet np');
    assert.equal(snap?.chains.length, 2);
    await k.run(new Transaction('np')); // empty: nothing sent
    assert.equal(ctx.sent.length, 3);
    k.close();
    k.close();
    assert.ok(ctx.closed);
    await assert.rejects(k.list(), NftClosedError);
    await assert.rejects(k.run(t), NftClosedError);
  });

  it('runs check() in a fresh context when it can open one, and closes it', async () => {
    const main = new StubContext();
    const opened: StubContext[] = [];
    const k = new KernelNftBackend({
      table: 'np',
      context: main,
      openCheckContext: () => {
        const c = new StubContext();
        opened.push(c);
        return c;
      },
    });
    const t = k.newTransaction();
    t.add({ kind: 'table' });
    await k.check(t);
    await k.run(t);
    assert.deepEqual(main.sent, ['add table inet np\n']);
    assert.equal(opened.length, 1);
    assert.deepEqual(opened[0]?.sent, ['check:add table inet np\n']);
    assert.ok(opened[0]?.closed);
  });

  it('throws validation errors without sending anything', async () => {
    const ctx = new StubContext();
    const k = new KernelNftBackend({ table: 'np', context: ctx });
    const t = new Transaction('np');
    t.add({ kind: 'chain', name: 'x y' });
    await assert.rejects(k.run(t), NftValidationError);
    await assert.rejects(k.run(new Transaction('other')), NftValidationError);
    assert.deepEqual(ctx.sent, []);
  });

  it('maps nft errors to codes and finds the failing operation', async () => {
    const ctx = new StubContext();
    const k = new KernelNftBackend({ table: 'np', context: ctx });
    const t = new Transaction('np');
    t.add({ kind: 'chain', name: 'a' });
    t.destroy({ kind: 'chain', name: 'b' }); // lines 2-3
    t.delete({ kind: 'chain', name: 'c' }); // line 4
    t.add({ kind: 'element', set: 's', key: ['10.0.0.1'] }); // line 5, columns 29-36
    t.add({ kind: 'element', set: 's', key: ['10.0.0.2'] }); // line 5, columns 39-46
    const cases: [Error, string, number | undefined][] = [
      [nftError('<batch>:4:20-20: Error: Could not process rule: No such file or directory\ndelete chain inet np c\n                   ^', 'delete chain inet np c', 2), 'ENOENT', 2],
      [nftError('<batch>:3:20-20: Error: Could not process rule: Device or resource busy\ndelete chain inet np b\n                   ^', 'delete chain inet np b', 16), 'EBUSY', 1],
      [nftError('Error: Could not process rule: File exists\ndelete chain inet np c\n', 'delete chain inet np c', 17), 'EEXIST', 2],
      [nftError('<batch>:1:1-5: Error: interval overlaps with an existing one\nadd chain inet np a\n', 'add chain inet np a'), 'EEXIST', 0],
      [nftError('<batch>:1:1-5: Error: Could not process rule: Operation not supported\nadd chain inet np a\n', 'add chain inet np a', 95), 'EINVAL', 0],
      [nftError('Error: something nobody matched', 'whatever'), 'EINVAL', undefined],
      [nftError('<batch>:5:39-46: Error: Could not process rule: File exists\nadd element inet np s { 10.0.0.1, 10.0.0.2 }\n', 'add element inet np s { 10.0.0.1, 10.0.0.2 }', 17), 'EEXIST', 4],
      [nftError('Error: interval overlaps with an existing one\nadd element inet np s { 10.0.0.1, 10.0.0.2 }\n                                      ^^^^^^^^', 'x'), 'EEXIST', 4],
    ];
    for (const [err, code, index] of cases) {
      ctx.failWith = err;
      const got = await k.run(t).then(
        () => assert.fail('no error'),
        (e: unknown) => e,
      );
      assert.ok(got instanceof NftApplyError, String(got));
      assert.equal(got.code, code, got.message);
      assert.equal(got.op?.index, index, got.message);
      assert.equal(got.cause, err);
      assert.ok(!got.nftMessage.includes('<batch>'), got.nftMessage);
    }
  });

  it('passes through errors that are not command failures', async () => {
    const ctx = new StubContext();
    const k = new KernelNftBackend({ table: 'np', context: ctx });
    const closed = Object.assign(new Error('closed'), { code: 'NFT_CONTEXT_CLOSED', nftMessage: '', command: '' });
    ctx.failWith = closed;
    const t = new Transaction('np');
    t.add({ kind: 'table' });
    await assert.rejects(k.run(t), (e: unknown) => e === closed);
  });

  it('lists a missing table as null', async () => {
    const ctx = new StubContext();
    const k = new KernelNftBackend({ table: 'np', context: ctx });
    ctx.failWith = nftError('Error: No such file or directory\nlist table inet np\n                 ^^', 'list table inet np', 2);
    assert.equal(await k.list(), null);
    ctx.failWith = null;
    ctx.listing = null;
    assert.equal(await k.list(), null);
  });

  it('classifies nft messages', () => {
    assert.equal(classifyNftMessage('Error: element does not exist'), 'ENOENT');
    assert.equal(classifyNftMessage('Error: No such file or directory; did you mean chain ‘c1’ in table inet ‘t’?'), 'ENOENT');
    assert.equal(classifyNftMessage('Error: conflicting intervals specified'), 'EEXIST');
    assert.equal(classifyNftMessage('Error: Could not process rule: Device or resource busy'), 'EBUSY');
    assert.equal(classifyNftMessage('Error: Could not process rule: Too many links'), 'EINVAL');
    assert.equal(classifyNftMessage('Error: weird', 17), 'EEXIST');
  });
});
