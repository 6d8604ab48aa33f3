// Tests of the nftables-napi addon against the real kernel, each in throwaway
// network namespaces (`ip netns add napi-<pid>-<n>`) that are deleted in
// finally blocks and again in after(). Kernel state is read back with the nft
// command line (`ip netns exec NAME nft -j ...`), not with the addon under
// test. Nothing outside the namespaces made here is changed.
//
// Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for setns); skipped otherwise.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { NftContext, NftError, injectFailures, liveContexts } from 'nftables-napi';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const skip = isRoot ? false : 'needs root (ip netns, setns)';

// ---------------------------------------------------------------------------
// Throwaway network namespaces
// ---------------------------------------------------------------------------

let netnsCounter = 0;
const created = new Set<string>();

function addNetns(): string {
  const name = `napi-${process.pid}-${++netnsCounter}`;
  execFileSync('ip', ['netns', 'add', name]);
  created.add(name);
  return name;
}

function deleteNetns(name: string): void {
  if (!created.has(name)) return;
  const r = spawnSync('ip', ['netns', 'delete', name], { encoding: 'utf8' });
  if (r.status !== 0 && existsSync(`/run/netns/${name}`)) {
    throw new Error(`ip netns delete ${name} failed: ${r.stderr}`);
  }
  created.delete(name);
}

/** Runs fn with `count` fresh network namespaces; deletes them whatever happens. */
async function withNetns<T>(count: number, fn: (...names: string[]) => Promise<T> | T): Promise<T> {
  const names: string[] = [];
  try {
    for (let i = 0; i < count; i++) names.push(addNetns());
    return await fn(...names);
  } finally {
    for (const n of names) deleteNetns(n);
  }
}

after(() => {
  for (const n of [...created]) deleteNetns(n);
});

const nsPath = (name: string): string => `/run/netns/${name}`;

/** The nft command line inside a namespace: the independent view of the kernel. */
function nftCli(name: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', name, 'nft', ...args], { encoding: 'utf8', maxBuffer: 256 << 20 });
}

function cliRuleset(name: string): string {
  return nftCli(name, 'list', 'ruleset');
}

/** Whether `nft list table inet NAME` succeeds (stderr suppressed). */
function cliHasTable(netns: string | null, table: string): boolean {
  const argv = netns === null ? ['list', 'table', 'inet', table] : ['netns', 'exec', netns, 'nft', 'list', 'table', 'inet', table];
  const r = spawnSync(netns === null ? 'nft' : 'ip', argv, { encoding: 'utf8' });
  return r.status === 0;
}

// ---------------------------------------------------------------------------
// Reading nft's JSON without `any`
// ---------------------------------------------------------------------------

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The objects of a `{ nftables: [...] }` document. */
function nftObjects(doc: unknown): Record<string, unknown>[] {
  assert.ok(isRecord(doc), 'nft JSON output is an object');
  const list = doc['nftables'];
  assert.ok(Array.isArray(list), 'nft JSON output has an nftables array');
  return list.filter(isRecord);
}

/** The elements of the named set in a JSON listing (empty when it has none). */
function setElements(doc: unknown, set: string): unknown[] {
  for (const o of nftObjects(doc)) {
    const s = o['set'];
    if (isRecord(s) && s['name'] === set) {
      const elem = s['elem'];
      return Array.isArray(elem) ? elem : [];
    }
  }
  assert.fail(`set ${set} not in the listing`);
}

function tableNames(doc: unknown): string[] {
  const names: string[] = [];
  for (const o of nftObjects(doc)) {
    const t = o['table'];
    if (isRecord(t) && typeof t['name'] === 'string') names.push(t['name']);
  }
  return names;
}

function cliSetElements(name: string, table: string, set: string): unknown[] {
  return setElements(JSON.parse(nftCli(name, '-j', 'list', 'set', 'inet', table, set)), set);
}

/** `10.a.b.c` for 0 <= i < 2^24. */
function addr(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

const SETUP = 'add table inet t\nadd set inet t s { type ipv4_addr; }\n';

/** Asserts that fn throws or rejects with an NftError and returns it. */
async function nftErrorOf(fn: () => unknown): Promise<NftError> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof NftError, `expected an NftError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected an NftError, nothing was thrown');
}

// ---------------------------------------------------------------------------

describe('nftables-napi', { skip }, () => {
  test('constructor: netns property, bad paths give NFT_NETNS with the path', async () => {
    const own = new NftContext();
    assert.equal(own.netns, null);
    own.close();

    await withNetns(1, (a) => {
      const ctx = new NftContext({ netns: nsPath(a) });
      try {
        assert.equal(ctx.netns, nsPath(a));
      } finally {
        ctx.close();
      }
    });

    const missing = `/run/netns/napi-${process.pid}-does-not-exist`;
    const e1 = await nftErrorOf(() => new NftContext({ netns: missing }));
    assert.equal(e1.code, 'NFT_NETNS');
    assert.ok(e1.message.includes(missing), e1.message);
    assert.equal(e1.errno, 2);

    // A file that is not a network namespace: setns fails with EINVAL.
    const e2 = await nftErrorOf(() => new NftContext({ netns: '/etc/hostname' }));
    assert.equal(e2.code, 'NFT_NETNS');
    assert.ok(e2.message.includes('/etc/hostname'), e2.message);
    assert.equal(e2.errno, 22);

    const e3 = await nftErrorOf(() => new NftContext({ netns: '' }));
    assert.equal(e3.code, 'NFT_NETNS');
  });

  test('runSync and listSync program the namespace and read it back', () =>
    withNetns(1, (a) => {
      const ctx = new NftContext({ netns: nsPath(a) });
      try {
        ctx.runSync(`${SETUP}add element inet t s { 192.0.2.1, 192.0.2.2 }\n`);
        assert.deepEqual(cliSetElements(a, 't', 's').sort(), ['192.0.2.1', '192.0.2.2']);
        assert.deepEqual(setElements(ctx.listSync('list set inet t s'), 's').sort(), ['192.0.2.1', '192.0.2.2']);
        // A command that prints nothing lists as null.
        assert.equal(ctx.listSync('add element inet t s { 192.0.2.3 }'), null);
        assert.equal(setElements(ctx.listSync('list set inet t s'), 's').length, 3);
      } finally {
        ctx.close();
      }
    }));

  test('atomicity: a batch with one bad command leaves the kernel unchanged', () =>
    withNetns(1, async (a) => {
      const ctx = new NftContext({ netns: nsPath(a) });
      try {
        ctx.runSync(`${SETUP}add element inet t s { 192.0.2.1 }\n`);
        const before = cliRuleset(a);
        const good = 'add element inet t s { 192.0.2.10 }\nadd table inet other\nadd chain inet t c\n';
        const bad = [
          // rejected by the kernel (the element does not exist)
          `${good}delete element inet t s { 198.51.100.1 }\nadd element inet t s { 192.0.2.11 }\n`,
          // rejected at evaluation (no such set)
          `${good}add element inet t nosuch { 192.0.2.12 }\n`,
          // rejected by the parser
          `${good}add element inet t s { 192.0.2.13 \n`,
          // a kernel error in the last command of a large batch
          `${good}add element inet t s { ${Array.from({ length: 5000 }, (_, i) => addr(i)).join(', ')} }\ncreate table inet t\n`,
        ];
        for (const batch of bad) {
          const err = await nftErrorOf(() => ctx.runSync(batch));
          assert.equal(err.code, 'NFT_COMMAND_FAILED');
          assert.equal(cliRuleset(a), before, `kernel changed by failed batch: ${err.message}`);
          const err2 = await nftErrorOf(() => ctx.run(batch));
          assert.equal(err2.code, 'NFT_COMMAND_FAILED');
          assert.equal(cliRuleset(a), before);
        }
        // The context still works after failures.
        await ctx.run(good);
        assert.notEqual(cliRuleset(a), before);
        assert.ok(cliHasTable(a, 'other'));
      } finally {
        ctx.close();
      }
    }));

  test('namespace isolation: a context for A never sees or changes B or the caller', () =>
    withNetns(2, async (a, b) => {
      const table = `napi_${process.pid}`;
      nftCli(b, 'add', 'table', 'inet', 'only_in_b');
      const ctxA = new NftContext({ netns: nsPath(a) });
      const ctxB = new NftContext({ netns: nsPath(b) });
      try {
        await ctxA.run(`add table inet ${table}\nadd set inet ${table} s { type ipv4_addr; }\n`);
        assert.ok(cliHasTable(a, table));
        assert.ok(!cliHasTable(b, table), 'table leaked into B');
        assert.ok(!cliHasTable(null, table), "table leaked into the caller's netns");

        assert.deepEqual(tableNames(await ctxA.list('list tables')), [table]);
        assert.deepEqual(tableNames(await ctxB.list('list tables')), ['only_in_b']);
        const err = await nftErrorOf(() => ctxB.list(`list table inet ${table}`));
        assert.equal(err.errno, 2);

        // Both contexts busy at once: each job lands in its own namespace.
        await ctxB.run('add table inet busy\nadd set inet busy s { type ipv4_addr; }\n');
        await ctxA.run('add table inet busy\nadd set inet busy s { type ipv4_addr; }\n');
        const jobs: Promise<void>[] = [];
        for (let i = 0; i < 40; i++) {
          jobs.push(ctxA.run(`add element inet busy s { ${addr(i)} }`));
          jobs.push(ctxB.run(`add element inet busy s { ${addr(1000 + i)} }`));
        }
        await Promise.all(jobs);
        const inA = cliSetElements(a, 'busy', 's');
        const inB = cliSetElements(b, 'busy', 's');
        assert.equal(inA.length, 40);
        assert.equal(inB.length, 40);
        assert.ok(inA.includes(addr(0)) && !inA.includes(addr(1000)));
        assert.ok(inB.includes(addr(1000)) && !inB.includes(addr(0)));

        // flush ruleset through A empties A only.
        ctxA.runSync('flush ruleset');
        assert.ok(!cliHasTable(a, table));
        assert.ok(cliHasTable(b, 'only_in_b'));
        assert.ok(cliHasTable(b, 'busy'));

        // The calling thread came back to its own netns: nft run here sees the host's, not A's.
        const self = execFileSync('readlink', ['/proc/thread-self/ns/net'], { encoding: 'utf8' });
        const init = execFileSync('readlink', [`/proc/${process.pid}/ns/net`], { encoding: 'utf8' });
        assert.equal(self, init);
      } finally {
        ctxA.close();
        ctxB.close();
      }
    }));

  test('100,000-element batch: add, list, delete', () =>
    withNetns(1, async (a) => {
      const N = 100_000;
      const ctx = new NftContext({ netns: nsPath(a) });
      try {
        ctx.runSync(SETUP);
        const lines: string[] = [];
        for (let i = 0; i < N; i += 1000) {
          const chunk: string[] = [];
          for (let j = i; j < i + 1000; j++) chunk.push(addr(j));
          lines.push(`add element inet t s { ${chunk.join(', ')} }`);
        }
        const batch = `${lines.join('\n')}\n`;

        // The event loop keeps running while the batch is applied.
        let ticks = 0;
        const timer = setInterval(() => ticks++, 5);
        try {
          await ctx.check(batch);
          assert.equal(cliSetElements(a, 't', 's').length, 0, 'check() changed the set');
          await ctx.run(batch);
        } finally {
          clearInterval(timer);
        }
        assert.ok(ticks > 0, 'the event loop was blocked during run()');

        assert.equal(cliSetElements(a, 't', 's').length, N);
        const listed = setElements(await ctx.list('list set inet t s'), 's');
        assert.equal(listed.length, N);
        assert.ok(listed.includes(addr(N - 1)));
        assert.equal(setElements(ctx.listSync('list set inet t s'), 's').length, N);

        // `add` of elements that exist is a no-op; a failing last line still undoes the whole batch.
        ctx.runSync(batch);
        const err = await nftErrorOf(() => ctx.run(`${batch}delete element inet t s { 198.51.100.1 }\n`));
        assert.equal(err.command, 'delete element inet t s { 198.51.100.1 }');

        await ctx.run(batch.replaceAll('add element', 'delete element'));
        assert.equal(cliSetElements(a, 't', 's').length, 0);
      } finally {
        ctx.close();
      }
    }));

  test('concurrent calls on one context run one at a time, in call order', () =>
    withNetns(1, async (a) => {
      const ctx = new NftContext({ netns: nsPath(a) });
      try {
        ctx.runSync(SETUP);
        // add/delete of the same element alternate: any reordering makes a delete fail.
        const jobs: Promise<void>[] = [];
        for (let i = 0; i < 50; i++) {
          jobs.push(ctx.run(`${i % 2 === 0 ? 'add' : 'delete'} element inet t s { 192.0.2.1 }`));
          jobs.push(ctx.run(`add element inet t s { ${addr(i)} }`));
          if (i % 10 === 0) ctx.runSync(`add element inet t s { 198.51.100.${i} }`);
        }
        const listing = ctx.list('list set inet t s');
        const checks = [ctx.check('add element inet t s { 203.0.113.1 }'), ctx.check('add element inet t s { 203.0.113.2 }')];
        const results = await Promise.allSettled([...jobs, listing, ...checks]);
        const failed = results.filter((r) => r.status === 'rejected');
        assert.deepEqual(failed, []);

        const elems = cliSetElements(a, 't', 's');
        assert.equal(elems.length, 50 + 5, `elements: ${elems.length}`);
        assert.ok(!elems.includes('192.0.2.1'));
        assert.ok(!elems.includes('203.0.113.1'));
        // The list ran after every run() queued before it.
        assert.equal(setElements(await listing, 's').length, 55);
      } finally {
        ctx.close();
      }
    }));

  test('errors: nft message, failing command lines, errno, caller stack', () =>
    withNetns(1, async (a) => {
      const ctx = new NftContext({ netns: nsPath(a) });
      try {
        ctx.runSync(SETUP);

        // One-line batch, kernel error.
        const e1 = await nftErrorOf(() => ctx.runSync('create table inet t'));
        assert.equal(e1.code, 'NFT_COMMAND_FAILED');
        assert.equal(e1.name, 'NftError');
        assert.equal(e1.command, 'create table inet t');
        assert.equal(e1.errno, 17);
        assert.match(e1.nftMessage, /Error: Could not process rule: File exists/);
        assert.match(e1.message, /File exists.*create table inet t/);

        // Several lines: the command is the line nft pointed at, not the first.
        const batch = [
          'add element inet t s { 192.0.2.1 }',
          'add chain inet t c',
          'add element inet t nosuch { 192.0.2.2 }',
          'add element inet t s { 192.0.2.3 }',
        ].join('\n');
        const e2 = await nftErrorOf(() => ctx.run(batch));
        assert.equal(e2.command, 'add element inet t nosuch { 192.0.2.2 }');
        assert.equal(e2.errno, 2);
        assert.match(e2.nftMessage, /^<batch>:3:\d+-\d+: Error: /);
        // The stack points at this file, not at the addon.
        assert.ok(e2.stack?.includes('addon.test'), e2.stack);
        assert.ok(!e2.stack?.includes('nftables-napi/index.js') && !e2.stack?.includes('native/index.js'), e2.stack);

        // Two kernel errors: both lines, in batch order.
        const e3 = await nftErrorOf(() =>
          ctx.run('add element inet t s { 192.0.2.1 }\ndelete element inet t s { 198.51.100.7 }\nadd chain inet t c\ndelete element inet t s { 198.51.100.8 }\n'),
        );
        assert.equal(e3.command, 'delete element inet t s { 198.51.100.7 }\ndelete element inet t s { 198.51.100.8 }');

        // A syntax error names the line and carries no errno.
        const e4 = await nftErrorOf(() => ctx.check('add chain inet t c\nthis is not nft\n'));
        assert.equal(e4.command, 'this is not nft');
        assert.equal(e4.errno, undefined);
        assert.match(e4.nftMessage, /syntax error/);

        // list of something missing.
        const e5 = await nftErrorOf(() => ctx.listSync('list table inet nope'));
        assert.equal(e5.command, 'list table inet nope');
        assert.equal(e5.errno, 2);

        // Input that is not a string, or has a NUL, is a TypeError before anything runs.
        const notString: unknown = 42;
        assert.throws(() => ctx.runSync(notString as string), TypeError);
        await assert.rejects(ctx.run(notString as string), TypeError);
        await assert.rejects(ctx.run('add table inet x\0; flush ruleset'), TypeError);
        assert.ok(!cliHasTable(a, 'x'));
      } finally {
        ctx.close();
      }
    }));

  test('nothing is printed to stdout or stderr', () =>
    withNetns(1, (a) => {
      const script = `
        const { NftContext } = require(${JSON.stringify(require.resolve('nftables-napi'))});
        const ctx = new NftContext({ netns: ${JSON.stringify(nsPath(a))} });
        ctx.runSync('add table inet t\\nadd set inet t s { type ipv4_addr; }');
        ctx.listSync('list ruleset');
        try { ctx.runSync('add element inet t nosuch { 1.2.3.4 }'); } catch {}
        try { ctx.runSync('garbage'); } catch {}
        ctx.run('create table inet t').catch(() => ctx.list('list ruleset')).then(() => ctx.close());
      `;
      const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, '');
    }));

  test('close(): idempotent, later calls fail with NFT_CONTEXT_CLOSED, queued jobs finish first', () =>
    withNetns(1, async (a) => {
      const live = liveContexts();
      const ctx = new NftContext({ netns: nsPath(a) });
      assert.equal(liveContexts(), live + 1);
      ctx.runSync(SETUP);

      const queued: Promise<void>[] = [];
      for (let i = 0; i < 20; i++) queued.push(ctx.run(`add element inet t s { ${addr(i)} }`));
      ctx.close();
      ctx.close();
      // Freeing waits for the queued jobs.
      assert.equal(liveContexts(), live + 1);

      const e1 = await nftErrorOf(() => ctx.runSync('add table inet x'));
      assert.equal(e1.code, 'NFT_CONTEXT_CLOSED');
      const e2 = await nftErrorOf(() => ctx.run('add table inet x'));
      assert.equal(e2.code, 'NFT_CONTEXT_CLOSED');
      await assert.rejects(ctx.check('add table inet x'), (e: unknown) => e instanceof NftError && e.code === 'NFT_CONTEXT_CLOSED');
      await assert.rejects(ctx.list('list ruleset'), (e: unknown) => e instanceof NftError && e.code === 'NFT_CONTEXT_CLOSED');
      assert.throws(() => ctx.listSync('list ruleset'), (e: unknown) => e instanceof NftError && e.code === 'NFT_CONTEXT_CLOSED');

      await Promise.all(queued);
      assert.equal(cliSetElements(a, 't', 's').length, 20);
      assert.equal(liveContexts(), live);
      ctx.close();
      assert.ok(!cliHasTable(a, 'x'));
    }));

  // libnftables exits the process (exit code 3, "Unable to initialize Netlink socket") when
  // nft_ctx_new cannot open its netlink socket; the addon must refuse with an error first.
  test('no netlink socket (descriptors exhausted): the constructor throws NFT_NETLINK with EMFILE, the process lives on', () =>
    withNetns(1, (a) => {
      const script = `
        const fs = require('node:fs');
        const { NftContext } = require(${JSON.stringify(require.resolve('nftables-napi'))});
        const held = [];
        try { for (;;) held.push(fs.openSync('/dev/null', 'r')); } catch {}
        const failure = (make) => { try { make().close(); return null; } catch (e) { return { code: e.code, errno: e.errno, message: e.message }; } };
        // No descriptor left: the context in the process's own namespace.
        const own = failure(() => new NftContext());
        // Two left: enough to enter the netns (its two files), none for the socket there.
        fs.closeSync(held.pop()); fs.closeSync(held.pop());
        const inNetns = failure(() => new NftContext({ netns: ${JSON.stringify(nsPath(a))} }));
        for (const fd of held.splice(0)) fs.closeSync(fd);
        const ctx = new NftContext({ netns: ${JSON.stringify(nsPath(a))} });
        ctx.runSync('add table inet after_emfile');
        ctx.close();
        console.log(JSON.stringify({ own, inNetns }));
      `;
      const r = spawnSync('ip', ['netns', 'exec', a, 'prlimit', '--nofile=64:64', process.execPath, '-e', script], { encoding: 'utf8' });
      assert.equal(r.status, 0, `the process exited ${String(r.status)}: ${r.stderr}`);
      const out: unknown = JSON.parse(r.stdout);
      assert.ok(isRecord(out));
      for (const [which, where] of [['own', "the process's network namespace"], ['inNetns', nsPath(a)]] as const) {
        const e: unknown = out[which];
        assert.ok(isRecord(e), `${which}: the constructor did not throw`);
        assert.equal(e['code'], 'NFT_NETLINK', which);
        assert.equal(e['errno'], 24, which);
        assert.match(String(e['message']), /netfilter netlink socket/);
        assert.ok(String(e['message']).includes(where), String(e['message']));
      }
      assert.match(nftCli(a, 'list', 'tables'), /table inet after_emfile/);
    }));

  test('without CAP_NET_ADMIN: commands fail with EPERM (errno 1), the process lives on', () =>
    withNetns(1, (a) => {
      const script = `
        const { NftContext } = require(${JSON.stringify(require.resolve('nftables-napi'))});
        const ctx = new NftContext();
        const out = {};
        try { ctx.runSync('add table inet denied'); } catch (e) { out.runSync = { code: e.code, errno: e.errno }; }
        Promise.allSettled([ctx.run('add table inet denied'), ctx.list('list tables')]).then((rs) => {
          out.async = rs.map((r) => r.status === 'rejected' ? { code: r.reason.code, errno: r.reason.errno } : 'fulfilled');
          ctx.close();
          console.log(JSON.stringify(out));
        });
      `;
      const r = spawnSync('ip', ['netns', 'exec', a, 'capsh', '--drop=cap_net_admin', '--', '-c', `exec "$0" -e "$1"`, process.execPath, script], { encoding: 'utf8' });
      assert.equal(r.status, 0, `the process exited ${String(r.status)}: ${r.stderr}`);
      const denied = { code: 'NFT_COMMAND_FAILED', errno: 1 };
      assert.deepEqual(JSON.parse(r.stdout), { runSync: denied, async: [denied, denied] });
      assert.doesNotMatch(nftCli(a, 'list', 'tables'), /denied/);
    }));

  test('Node-API refusing to create or queue the work: the promise rejects with NFT_INTERNAL, the queue moves on', () =>
    withNetns(1, async (a) => {
      const live = liveContexts();
      const ctx = new NftContext({ netns: nsPath(a) });
      const internal = (e: unknown): boolean => e instanceof NftError && e.code === 'NFT_INTERNAL' && /napi_(create|queue)_async_work failed/.test(e.message);
      try {
        // Creation refused.
        injectFailures(1, 0);
        await assert.rejects(ctx.run('add table inet create_refused'), internal);
        // The first job of an empty queue refused: later calls still run.
        injectFailures(0, 1);
        await assert.rejects(ctx.run('add table inet queue_refused'), internal);
        await ctx.run('add table inet after_refusals');

        // Re-queueing refused: j0 is on the pool, j1 is refused when j0 completes, j2 and j3 run.
        const order: string[] = [];
        const track = (name: string, p: Promise<void>): Promise<string> =>
          p.then(() => { order.push(name); return 'ok'; }, (e: unknown) => { order.push(name); return internal(e) ? 'internal' : String(e); });
        const jobs = [0, 1, 2, 3].map((i) => track(`j${i}`, ctx.run(`add table inet requeue_${i}`)));
        injectFailures(0, 1);
        assert.deepEqual(await Promise.all(jobs), ['ok', 'internal', 'ok', 'ok']);
        assert.deepEqual(order, ['j0', 'j1', 'j2', 'j3']);

        // Every waiting job refused: the queue drains, and the next call starts it again.
        const all = [0, 1, 2].map((i) => track(`k${i}`, ctx.run(`add table inet drained_${i}`)));
        injectFailures(0, 2);
        assert.deepEqual(await Promise.all(all), ['ok', 'internal', 'internal']);
        await ctx.run('add table inet after_drain');

        // close() with jobs waiting, the next one refused: the context is still freed.
        const closing = [track('c0', ctx.run('add table inet closing_0')), track('c1', ctx.run('add table inet closing_1'))];
        ctx.close();
        injectFailures(0, 1);
        assert.deepEqual(await Promise.all(closing), ['ok', 'internal']);
        assert.equal(liveContexts(), live);
      } finally {
        injectFailures(0, 0);
        ctx.close();
      }
      const tables = nftCli(a, 'list', 'tables');
      for (const t of ['after_refusals', 'requeue_0', 'requeue_2', 'requeue_3', 'drained_0', 'after_drain', 'closing_0']) assert.match(tables, new RegExp(`table inet ${t}\\b`));
      for (const t of ['create_refused', 'queue_refused', 'requeue_1', 'drained_1', 'drained_2', 'closing_1']) assert.doesNotMatch(tables, new RegExp(`table inet ${t}\\b`));
    }));

  test('a context that is garbage-collected is freed', () =>
    withNetns(1, (a) => {
      const script = `
        const { NftContext, liveContexts } = require(${JSON.stringify(require.resolve('nftables-napi'))});
        async function one(i) {
          const ctx = new NftContext({ netns: ${JSON.stringify(nsPath(a))} });
          if (i % 2 === 0) ctx.runSync('add table inet t' + i);
          else await ctx.run('add table inet t' + i);
        }
        (async () => {
          for (let i = 0; i < 200; i++) await one(i);
          const before = liveContexts();
          for (let i = 0; i < 20 && liveContexts() > 0; i++) {
            await new Promise((r) => setTimeout(r, 10));
            global.gc();
          }
          console.log(JSON.stringify({ before, after: liveContexts() }));
        })();
      `;
      const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const out: unknown = JSON.parse(r.stdout);
      assert.ok(isRecord(out));
      assert.ok(typeof out['before'] === 'number' && out['before'] > 0);
      assert.equal(out['after'], 0);
      assert.match(nftCli(a, 'list', 'tables'), /table inet t199/);
    }));

  test('check(): validates against the kernel and changes nothing', () =>
    withNetns(1, async (a) => {
      const ctx = new NftContext({ netns: nsPath(a) });
      try {
        ctx.runSync(`${SETUP}add element inet t s { 192.0.2.1 }\n`);
        const before = cliRuleset(a);
        await ctx.check('add table inet n\nadd chain inet t c\nadd element inet t s { 192.0.2.2 }\nflush set inet t s\n');
        assert.equal(cliRuleset(a), before);
        // Errors only the kernel can find are found.
        const e1 = await nftErrorOf(() => ctx.check('delete table inet nosuch'));
        assert.equal(e1.errno, 2);
        const e2 = await nftErrorOf(() => ctx.check('add chain inet t c\ncreate table inet t\n'));
        assert.equal(e2.errno, 17);
        assert.equal(e2.command, 'create table inet t');
        assert.equal(cliRuleset(a), before);
        // The context leaves dry-run mode afterwards.
        await ctx.run('add element inet t s { 192.0.2.2 }');
        assert.equal(cliSetElements(a, 't', 's').length, 2);
      } finally {
        ctx.close();
      }
    }));
});
