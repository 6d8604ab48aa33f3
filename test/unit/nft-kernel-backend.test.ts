// The kernel backend's own logic, with a stand-in for nftables-napi's
// NftContext: JSON parsing, normalization, error mapping, what gets sent.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
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
  icmpv6NeighborDiscovery,
  jump,
  limit,
  log,
  matchSet,
  vmap,
  parseTableJson,
  type NftContextLike,
} from '../../src/dataplane/nft';
import { FakeNft } from '../support/fake-nft';
import { viewFromSnapshot } from '../../src/dataplane/diff';

/** `nft -j list table inet np` as nft 1.0.6 printed it for the table buildSample writes. */
const LISTING: unknown = JSON.parse(
  '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "np", "handle": 1}}, {"set": {"family": "inet", "name": "s4", "table": "np", "type": "ipv4_addr", "handle": 3, "flags": ["interval"], "elem": [{"prefix": {"addr": "10.0.0.0", "len": 24}}]}}, {"set": {"family": "inet", "name": "cc", "table": "np", "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 4, "flags": ["interval"], "elem": [{"concat": [{"prefix": {"addr": "10.0.0.0", "len": 24}}, "tcp", {"range": [80, 90]}]}]}}, {"map": {"family": "inet", "name": "vmp", "table": "np", "type": "ipv4_addr", "handle": 5, "map": "verdict", "elem": [["10.0.0.1", {"jump": {"target": "pod-x"}}]]}}, {"chain": {"family": "inet", "table": "np", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"chain": {"family": "inet", "table": "np", "name": "pod-x", "handle": 2}}, {"rule": {"family": "inet", "table": "np", "chain": "input", "handle": 6, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "np", "chain": "input", "handle": 8, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}}, "right": {"set": ["nd-router-solicit", "nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert"]}}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "np", "chain": "input", "handle": 9, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@s4"}}, {"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "pod-x"}}]}}, {"rule": {"family": "inet", "table": "np", "chain": "input", "handle": 10, "expr": [{"match": {"op": "==", "left": {"concat": [{"payload": {"protocol": "ip", "field": "saddr"}}, {"meta": {"key": "l4proto"}}, {"payload": {"protocol": "th", "field": "dport"}}]}, "right": "@cc"}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "np", "chain": "input", "handle": 11, "expr": [{"vmap": {"key": {"payload": {"protocol": "ip", "field": "saddr"}}, "data": "@vmp"}}]}}, {"rule": {"family": "inet", "table": "np", "chain": "pod-x", "handle": 12, "expr": [{"limit": {"rate": 10, "burst": 5, "per": "second"}}, {"log": {"prefix": "np drop: ", "group": 2}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}}]}',
);

/**
 * What someone else could leave in our table, as nft 1.0.6 listed it: a named counter and a quota, a
 * set with a timeout, a constant set, a data map, a map with another key, a base chain on another
 * hook, comments, per-element counters, statements no helper writes, a flowtable (this kernel has
 * none to list; its JSON is nft's documented shape).
 */
const FOREIGN_LISTING: unknown = {
  nftables: [
    { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
    { table: { family: 'inet', name: 'np', handle: 1 } },
    { counter: { family: 'inet', name: 'cnt', table: 'np', handle: 3, packets: 0, bytes: 0 } },
    { quota: { family: 'inet', name: 'q', table: 'np', handle: 4, bytes: 104857600, used: 0, inv: false } },
    { flowtable: { family: 'inet', name: 'ft', table: 'np', handle: 14, hook: 'ingress', prio: 0, dev: 'lo' } },
    { set: { family: 'inet', name: 'weird', table: 'np', type: 'ipv4_addr', handle: 5, flags: ['timeout'], timeout: 3600 } },
    { set: { family: 'inet', name: 'konst', table: 'np', type: 'ipv4_addr', handle: 6, flags: ['constant'], elem: ['10.0.0.1'] } },
    { set: { family: 'inet', name: 's4', table: 'np', type: 'ipv4_addr', handle: 15, comment: 'c;1', flags: ['interval'], elem: [{ elem: { val: { prefix: { addr: '10.0.0.0', len: 24 } }, comment: 'x', counter: { packets: 0, bytes: 0 } } }], stmt: [{ counter: null }] } },
    { map: { family: 'inet', name: 'datamap', table: 'np', type: 'ipv4_addr', handle: 7, map: 'ipv4_addr', elem: [['10.0.0.1', '10.0.0.2']] } },
    { map: { family: 'inet', name: 'ingress_v4', table: 'np', type: ['ipv4_addr', 'inet_service'], handle: 8, map: 'verdict' } },
    { chain: { family: 'inet', table: 'np', name: 'forward', handle: 1, type: 'filter', hook: 'input', prio: 10, policy: 'accept' } },
    { chain: { family: 'inet', table: 'np', name: 'other', handle: 2, type: 'filter', hook: 'prerouting', prio: -5, policy: 'drop' } },
    { rule: { family: 'inet', table: 'np', chain: 'other', handle: 9, expr: [{ match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '1.2.3.4' } }, { mangle: { key: { meta: { key: 'mark' } }, value: 3 } }, { accept: null }] } },
    { rule: { family: 'inet', table: 'np', chain: 'other', handle: 10, comment: 'r1', expr: [{ match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 22 } }, { log: { prefix: 'x', group: 3 } }, { counter: { packets: 0, bytes: 0 } }] } },
    { rule: { family: 'inet', table: 'np', chain: 'other', handle: 13, expr: [{ counter: 'cnt' }, { log: null }] } },
    { rule: { family: 'inet', table: 'np', chain: 'gone', handle: 16, expr: [{ accept: null }] } },
    { rule: { family: 'inet', table: 'np', chain: 'other', handle: 17 } },
  ],
};

function buildSample(t: Transaction): void {
  t.add({ kind: 'table' });
  t.add({ kind: 'chain', name: 'input', base: { type: 'filter', hook: 'input', priority: 0, policy: 'accept' } });
  t.add({ kind: 'chain', name: 'pod-x' });
  t.add({ kind: 'set', name: 's4', type: ['ipv4_addr'], flags: ['interval'] });
  t.add({ kind: 'set', name: 'cc', type: ['ipv4_addr', 'inet_proto', 'inet_service'], flags: ['interval'] });
  t.add({ kind: 'map', name: 'vmp', type: ['ipv4_addr'] });
  t.add({ kind: 'element', set: 's4', key: ['10.0.0.0-10.0.0.255'] });
  t.add({ kind: 'element', set: 'cc', key: ['10.0.0.0/24', 'tcp', '80-90'] });
  t.add({ kind: 'element', set: 'vmp', key: ['10.0.0.1'], value: { jump: 'pod-x' } });
  t.add({ kind: 'rule', chain: 'input', body: [ctState('related', 'established'), accept()] });
  t.add({ kind: 'rule', chain: 'input', body: [icmpv6NeighborDiscovery(), accept()] });
  t.add({ kind: 'rule', chain: 'input', body: [matchSet(['ip saddr'], 's4'), counter(), jump('pod-x')] });
  t.add({ kind: 'rule', chain: 'input', body: [matchSet(['ip saddr', 'meta l4proto', 'th dport'], 'cc'), drop()] });
  t.add({ kind: 'rule', chain: 'input', body: [vmap(['ip saddr'], 'vmp')] });
  t.add({ kind: 'rule', chain: 'pod-x', body: [limit(10, 'second'), log({ prefix: 'np drop: ', group: 2 }), counter(), drop()] });
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
          'ct state established,related accept',
          'icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept',
          'ip saddr @s4 counter jump pod-x',
          'ip saddr . meta l4proto . th dport @cc drop',
          'ip saddr vmap @vmp',
        ],
        counters: [null, null, { packets: 0, bytes: 0 }, null, null],
      },
      { name: 'pod-x', rules: ['limit rate 10/second burst 5 packets log prefix "np drop: " group 2 counter drop'], counters: [{ packets: 0, bytes: 0 }] },
    ]);
    assert.deepEqual(parsed.sets[0], { name: 's4', type: ['ipv4_addr'], flags: ['interval'], elements: [{ key: ['10.0.0.0/24'] }] });
    assert.deepEqual(parsed.maps[0]?.elements, [{ key: ['10.0.0.1'], value: { jump: 'pod-x' } }]);
    assert.deepEqual(parsed.foreign, []);

    const fake = new FakeNft('np');
    const t = new Transaction('np');
    buildSample(t);
    await fake.run(t);
    const listed = await fake.list();
    assert.ok(listed !== null);
    assert.deepEqual(viewFromSnapshot(parsed), viewFromSnapshot(listed));
  });

  it('reads whatever someone else left in the table without failing, marking what is not ours as foreign', () => {
    const parsed = parseTableJson(FOREIGN_LISTING, 'np');
    assert.ok(parsed !== null);
    assert.deepEqual(parsed.foreign, [
      { type: 'counter', name: 'cnt' },
      { type: 'quota', name: 'q' },
      { type: 'flowtable', name: 'ft' },
    ]);
    const set = (name: string) => [...parsed.sets, ...parsed.maps].find((x) => x.name === name);
    assert.deepEqual(set('weird'), { name: 'weird', type: ['ipv4_addr'], flags: ['timeout'], foreign: 'timeout 3600', elements: [] });
    assert.deepEqual(set('konst')?.flags, ['constant']);
    assert.match(set('s4')?.foreign ?? '', /comment "c;1", stmt .*counter.*1 elements of another shape/);
    assert.equal(parsed.maps.find((m) => m.name === 'datamap')?.value, 'ipv4_addr');
    assert.match(set('datamap')?.foreign ?? '', /1 elements of another shape/);
    assert.deepEqual(set('ingress_v4')?.type, ['ipv4_addr', 'inet_service']);
    assert.deepEqual(parsed.chains.find((c) => c.name === 'forward')?.base, { type: 'filter', hook: 'input', priority: 10, policy: 'accept' });
    const other = parsed.chains.find((c) => c.name === 'other');
    assert.deepEqual(other?.base, { type: 'filter', hook: 'prerouting', priority: -5, policy: 'drop' });
    assert.equal(other?.rules.length, 4);
    assert.match(other?.rules[0] ?? '', /^<foreign \{"match":.*> <foreign \{"mangle":.*> accept$/);
    assert.match(other?.rules[1] ?? '', /^<foreign .*> log prefix "x" group 3 counter$/);
    assert.match(other?.rules[2] ?? '', /^<foreign \{"counter":"cnt"\}> log$/);
    assert.match(other?.rules[3] ?? '', /^<foreign /);
    // Every foreign set, map and chain differs from any we would write.
    const view = viewFromSnapshot(parsed);
    assert.ok(view.sets.get('datamap')?.foreign !== undefined);
    assert.ok(view.sets.get('weird')?.foreign !== undefined);
  });

  it('returns null for a document without the table, and ignores other tables', () => {
    const other = { nftables: [{ table: { family: 'inet', name: 'other', handle: 1 } }, { chain: { family: 'inet', table: 'other', name: 'c', handle: 1 } }] };
    assert.equal(parseTableJson(other, 'np'), null);
    assert.equal(parseTableJson({ nftables: [] }, 'np'), null);
    assert.throws(() => parseTableJson({}, 'np'), NftListError);
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
    t.delete({ kind: 'chain', name: 'b' }); // line 2
    t.delete({ kind: 'chain', name: 'c' }); // line 3
    t.add({ kind: 'element', set: 's', key: ['10.0.0.1'] }); // line 4, columns 29-36
    t.add({ kind: 'element', set: 's', key: ['10.0.0.2'] }); // line 4, columns 39-46
    const cases: [Error, string, number | undefined][] = [
      [nftError('<batch>:3:20-20: Error: Could not process rule: No such file or directory\ndelete chain inet np c\n                   ^', 'delete chain inet np c', 2), 'ENOENT', 2],
      [nftError('<batch>:2:20-20: Error: Could not process rule: Device or resource busy\ndelete chain inet np b\n                   ^', 'delete chain inet np b', 16), 'EBUSY', 1],
      [nftError('Error: Could not process rule: File exists\ndelete chain inet np c\n', 'delete chain inet np c', 17), 'EEXIST', 2],
      [nftError('<batch>:1:1-5: Error: interval overlaps with an existing one\nadd chain inet np a\n', 'add chain inet np a'), 'EEXIST', 0],
      [nftError('<batch>:1:1-5: Error: Could not process rule: Operation not supported\nadd chain inet np a\n', 'add chain inet np a', 95), 'EINVAL', 0],
      [nftError('Error: something nobody matched', 'whatever'), 'EINVAL', undefined],
      [nftError('<batch>:4:39-46: Error: Could not process rule: File exists\nadd element inet np s { 10.0.0.1, 10.0.0.2 }\n', 'add element inet np s { 10.0.0.1, 10.0.0.2 }', 17), 'EEXIST', 4],
      [nftError('Error: interval overlaps with an existing one\nadd element inet np s { 10.0.0.1, 10.0.0.2 }\n                                      ^^^^^^^^', 'x'), 'EEXIST', 4],
    ];
    for (const [err, code, index] of cases) {
      ctx.failWith = err;
      const got = await k.run(t).then(
        () => assert.fail('no error'),
        (e: unknown) => e,
      );
      assert.ok(got instanceof NftApplyError, String(got));
      assert.equal(got.nftCode, code, got.message);
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

/** A context whose calls end when the test says so: each call is recorded, and waits for its release. */
class HeldContext implements NftContextLike {
  readonly calls: string[] = [];
  readonly #held: (() => void)[] = [];
  #hold(what: string): Promise<void> {
    this.calls.push(what);
    return new Promise((resolve) => this.#held.push(resolve));
  }
  async run(batch: string): Promise<void> {
    await this.#hold(`run ${batch.trim()}`);
  }
  async check(batch: string): Promise<void> {
    await this.#hold(`check ${batch.trim()}`);
  }
  async list(command: string, options?: { readonly terse?: boolean }): Promise<unknown> {
    await this.#hold(`list ${command}${options?.terse === true ? ' (terse)' : ''}`);
    return null;
  }
  close(): void {}
  /** Ends the oldest call still running. */
  release(): void {
    this.#held.shift()?.();
  }
}

/** Lets every promise callback already due run (no timer: nothing here depends on time). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('the context queue: commits before debug reads', () => {
  const commit = (chain: string): Transaction => {
    const t = new Transaction('np');
    t.add({ kind: 'chain', name: chain });
    return t;
  };

  it('a commit queued after a debug listing goes first, and the context holds one call at a time', async () => {
    const ctx = new HeldContext();
    const k = new KernelNftBackend({ table: 'np', context: ctx, openCheckContext: () => ctx });
    const first = k.run(commit('a'));
    await settle();
    const read = k.listCounters();
    const second = k.run(commit('b'));
    await settle();
    assert.deepEqual(ctx.calls, ['run add chain inet np a'], 'the listing and the second commit wait: one call on the context at a time');
    ctx.release();
    await first;
    await settle();
    assert.deepEqual(ctx.calls, ['run add chain inet np a', 'run add chain inet np b'], 'the commit overtook the listing queued before it');
    ctx.release();
    await second;
    await settle();
    assert.deepEqual(ctx.calls.at(-1), 'list list table inet np (terse)', 'a debug listing leaves set elements out');
    ctx.release();
    assert.equal(await read, null);
  });

  it("a reconcile's listing is a write: it goes before a debug listing queued earlier", async () => {
    const ctx = new HeldContext();
    const k = new KernelNftBackend({ table: 'np', context: ctx, openCheckContext: () => ctx });
    const running = k.run(commit('a'));
    await settle();
    const debug = k.listCounters();
    const reconcile = k.list();
    ctx.release();
    await running;
    await settle();
    ctx.release();
    await reconcile;
    await settle();
    ctx.release();
    await debug;
    assert.deepEqual(ctx.calls, ['run add chain inet np a', 'list list table inet np', 'list list table inet np (terse)']);
  });

  it('a failed call lets the next one start', async () => {
    const ctx = new StubContext();
    const k = new KernelNftBackend({ table: 'np', context: ctx });
    ctx.failWith = nftError('Error: Could not process rule: Invalid argument\nadd chain inet np a', 'add chain inet np a', 22);
    await assert.rejects(k.run(commit('a')), NftApplyError);
    ctx.failWith = null;
    await k.run(commit('b'));
    assert.deepEqual(ctx.sent.map((b) => b.trim()), ['add chain inet np a', 'add chain inet np b']);
  });
});
