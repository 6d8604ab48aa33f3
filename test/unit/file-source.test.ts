// The file datastore: a change becomes the events between the two loads, a file that does not parse
// keeps its last good contents, invalid objects are reported as rejected and end when fixed or removed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { ClusterEvent, ObjectKind, SourceSink } from '../../src/api';
import { FileSource } from '../../src/source';
import { makeNamespace, makePod, makePolicy } from '../support/builders';

type Record_ =
  | { call: 'events'; events: readonly ClusterEvent[] }
  | { call: 'rejected'; kind: ObjectKind; object: string; reason: string }
  | { call: 'synced' }
  | { call: 'problem'; message: string };

class RecordingSink implements SourceSink {
  readonly calls: Record_[] = [];
  private waiters: (() => void)[] = [];
  events(events: readonly ClusterEvent[]): void {
    this.push({ call: 'events', events });
  }
  rejected(kind: ObjectKind, ref: { namespace: string; name: string }, reason: string): void {
    this.push({ call: 'rejected', kind, object: `${ref.namespace}/${ref.name}`, reason });
  }
  synced(): void {
    this.push({ call: 'synced' });
  }
  problem(message: string): void {
    this.push({ call: 'problem', message });
  }
  /** The datastore's last level, kept apart from the calls the tests compare (it is reported after every load). */
  level: string | null | undefined = undefined;
  health(_part: string, failure: string | null): void {
    this.level = failure;
  }
  /** The calls made from now until the next one arrives (and a little after, for the rest of its turn). */
  async next(): Promise<Record_[]> {
    const from = this.calls.length;
    await new Promise<void>((r) => this.waiters.push(r));
    await new Promise((r) => setTimeout(r, 20));
    return this.calls.slice(from);
  }
  private push(c: Record_): void {
    this.calls.push(c);
    for (const w of this.waiters.splice(0)) w();
  }
}

const describe = (events: readonly ClusterEvent[]): string[] =>
  events.map((e) => `${e.type} ${e.kind} ${e.kind === 'Namespace' ? (e.type === 'upsert' ? e.object.name : e.name) : e.type === 'upsert' ? `${e.object.namespace}/${e.object.name}` : `${e.ref.namespace}/${e.ref.name}`}`);

const yamlOf = (...objects: object[]): string => objects.map((o) => stringify(o)).join('---\n');

/** Writes as editors and kubectl-like tools do: a temporary file renamed over the old one. */
function writeAtomically(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

test('the file datastore: edits become events, a broken file keeps its last good contents, invalid objects are rejected until fixed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'file-source-'));
  const source = new FileSource({ path: dir, debounceMs: 5, pollMs: 60_000 });
  const sink = new RecordingSink();
  try {
    writeFileSync(join(dir, 'cluster.yaml'), yamlOf(makeNamespace('shop'), makePod('shop', 'web', { labels: { app: 'web' }, ips: ['10.0.0.1'] })));
    writeFileSync(join(dir, 'policy.yaml'), yamlOf(makePolicy('shop', 'web-in', { podSelector: { matchLabels: { app: 'web' } } })));
    writeFileSync(join(dir, 'notes.txt'), 'not a manifest');
    const loaded = sink.next();
    source.start(sink);
    await loaded;
    assert.deepEqual(sink.calls.map((c) => c.call), ['events', 'synced']);
    const first = sink.calls[0];
    assert.ok(first?.call === 'events');
    assert.deepEqual(describe(first.events), ['upsert Namespace shop', 'upsert Pod shop/web', 'upsert NetworkPolicy shop/web-in']);

    // An edit of one file: only what changed.
    let next = sink.next();
    writeAtomically(join(dir, 'cluster.yaml'), yamlOf(makeNamespace('shop'), makePod('shop', 'web', { labels: { app: 'web', v: '2' }, ips: ['10.0.0.1'] })));
    let calls = await next;
    assert.deepEqual(calls.flatMap((c) => (c.call === 'events' ? describe(c.events) : [c.call])), ['upsert Pod shop/web']);

    // A file that does not parse: reported with its name; nothing it defined is deleted.
    next = sink.next();
    writeAtomically(join(dir, 'policy.yaml'), 'kind: NetworkPolicy\nspec: [\n');
    calls = await next;
    assert.equal(calls.length, 1);
    assert.ok(calls[0]?.call === 'problem');
    assert.match(calls[0].message, /policy\.yaml: document 1 is not valid YAML.*last good contents stay enforced/);

    // An invalid policy: deleted from the state, then reported rejected with file, object and field.
    next = sink.next();
    writeAtomically(join(dir, 'policy.yaml'), yamlOf(makePolicy('shop', 'web-in', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ ports: [{ port: 0 }] }] })));
    calls = await next;
    assert.deepEqual(calls.map((c) => (c.call === 'events' ? describe(c.events).join() : c.call)), ['delete NetworkPolicy shop/web-in', 'rejected']);
    const rejected = calls[1];
    assert.ok(rejected?.call === 'rejected');
    assert.equal(rejected.object, 'shop/web-in');
    assert.match(rejected.reason, /policy\.yaml document 1: NetworkPolicy shop\/web-in: spec\.ingress\[0\]\.ports\[0\]\.port/);

    // An invalid Pod update keeps its last good version: no event, only the rejection.
    next = sink.next();
    writeAtomically(join(dir, 'cluster.yaml'), yamlOf(makeNamespace('shop'), makePod('shop', 'web', { labels: { app: 'bad value!' }, ips: ['10.0.0.1'] })));
    calls = await next;
    assert.deepEqual(calls.map((c) => c.call), ['rejected']);

    // Fixed back to exactly its last good version: an upsert ends the rejection anyway.
    next = sink.next();
    writeAtomically(join(dir, 'cluster.yaml'), yamlOf(makeNamespace('shop'), makePod('shop', 'web', { labels: { app: 'web', v: '2' }, ips: ['10.0.0.1'] })));
    calls = await next;
    assert.deepEqual(calls.flatMap((c) => (c.call === 'events' ? describe(c.events) : [c.call])), ['upsert Pod shop/web']);

    // The rejected policy's file removed: a delete ends its fail-closed enforcement.
    next = sink.next();
    unlinkSync(join(dir, 'policy.yaml'));
    calls = await next;
    assert.deepEqual(calls.flatMap((c) => (c.call === 'events' ? describe(c.events) : [c.call])), ['delete NetworkPolicy shop/web-in']);
  } finally {
    await source.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a datastore that cannot be read at start is never synced as empty; it syncs once it appears', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'file-source-'));
  const file = join(dir, 'later.yaml');
  const source = new FileSource({ path: file, debounceMs: 5, pollMs: 50 });
  const sink = new RecordingSink();
  try {
    const first = sink.next();
    source.start(sink);
    const calls = await first;
    assert.ok(calls[0]?.call === 'problem');
    assert.match(calls[0].message, /later\.yaml: cannot read the datastore \(ENOENT\); the last good state stays enforced/);
    assert.ok(!sink.calls.some((c) => c.call === 'synced' || c.call === 'events'), 'nothing delivered, not synced');
    writeFileSync(file, yamlOf(makeNamespace('a')));
    await waitUntil(() => sink.calls.some((c) => c.call === 'synced'));
    const events = sink.calls.find((c) => c.call === 'events');
    assert.ok(events?.call === 'events');
    assert.deepEqual(describe(events.events), ['upsert Namespace a']);
  } finally {
    await source.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

async function waitUntil(cond: () => boolean, ms = 5_000, state: () => string = () => ''): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out ${state()}`.trim());
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a single-file datastore replaced by rename (as editors save) is still watched', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'file-source-'));
  const file = join(dir, 'all.yaml');
  const source = new FileSource({ path: file, debounceMs: 5, pollMs: 60_000 });
  const sink = new RecordingSink();
  try {
    writeFileSync(file, yamlOf(makeNamespace('a')));
    const loaded = sink.next();
    source.start(sink);
    await loaded;
    for (const name of ['b', 'c']) {
      const next = sink.next();
      writeAtomically(file, yamlOf(makeNamespace(name)));
      const calls = await next;
      assert.deepEqual(calls.flatMap((c) => (c.call === 'events' ? describe(c.events) : [c.call])), [`upsert Namespace ${name}`, `delete Namespace ${name === 'b' ? 'a' : 'b'}`]);
    }
  } finally {
    await source.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('JSON under a YAML name (the JSON.parse path) and YAML flow style that looks like JSON (the fallback to YAML) are both read', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'file-source-json-'));
  const source = new FileSource({ path: dir, pollMs: 60_000 });
  const sink = new RecordingSink();
  try {
    writeFileSync(join(dir, 'generated.yaml'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [makeNamespace('json-ns'), makePod('json-ns', 'p', { ips: ['10.9.0.1'] })] }));
    writeFileSync(join(dir, 'flow.yaml'), '{kind: Namespace, apiVersion: v1, metadata: {name: flow-ns}}\n');
    const first = sink.next();
    source.start(sink);
    const calls = await first;
    assert.deepEqual(calls.map((c) => c.call), ['events', 'synced']);
    const events = calls[0]?.call === 'events' ? calls[0].events : [];
    assert.deepEqual(describe(events).sort(), ['upsert Namespace flow-ns', 'upsert Namespace json-ns', 'upsert Pod json-ns/p']);
  } finally {
    await source.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the datastore never fails open: deleted, a link to a missing target, garbage, a scalar, empty, cut: the last good state stays and the level names the problem until it is fixed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'file-source-broken-'));
  mkdirSync(join(dir, 'data'));
  const target = join(dir, 'data', 'cluster.yaml');
  const store = join(dir, 'store.yaml');
  const good = yamlOf(makeNamespace('shop'), makePod('shop', 'web', { labels: { app: 'web' }, ips: ['10.0.0.1'] }), makePolicy('shop', 'web-in', { podSelector: { matchLabels: { app: 'web' } } }));
  writeFileSync(target, good);
  symlinkSync(target, store);
  // Changes behind the link are seen by the poll (the watch is on the link's directory).
  const source = new FileSource({ path: store, debounceMs: 5, pollMs: 30 });
  const sink = new RecordingSink();
  const relink = (to: string): void => {
    symlinkSync(to, `${store}.tmp`);
    renameSync(`${store}.tmp`, store);
  };
  try {
    source.start(sink);
    await waitUntil(() => sink.calls.some((c) => c.call === 'synced') && sink.level === null);
    const steps: { readonly name: string; readonly breakIt: () => void; readonly level: RegExp }[] = [
      { name: 'deleted', breakIt: () => unlinkSync(store), level: /store\.yaml: cannot read the datastore \(ENOENT\); the last good state stays enforced/ },
      { name: 'link to a missing target', breakIt: () => relink(join(dir, 'data', 'gone.yaml')), level: /store\.yaml: cannot read the datastore \(a symbolic link to a missing target, ENOENT\)/ },
      { name: 'garbage', breakIt: () => writeAtomically(target, '}}} {{{ :::\n'), level: /store\.yaml: document 1 is not valid YAML.*; its last good contents stay enforced/ },
      { name: 'one-line scalar', breakIt: () => writeAtomically(target, 'hello world\n'), level: /store\.yaml: document 1 is not a Kubernetes object \("hello world"\)/ },
      { name: 'empty', breakIt: () => writeAtomically(target, ''), level: /store\.yaml: is empty but held 3 object\(s\)/ },
      { name: 'cut while written', breakIt: () => writeAtomically(target, good.slice(0, 6)), level: /store\.yaml: document 1 is not a Kubernetes object \("apiVer"\)/ },
    ];
    for (const step of steps) {
      const from = sink.calls.length;
      step.breakIt();
      await waitUntil(() => step.level.test(sink.level ?? ''), 5_000, () => `${step.name}: level ${String(sink.level)}`);
      assert.deepEqual(sink.calls.slice(from).filter((c) => c.call !== 'problem'), [], `${step.name}: nothing delivered, nothing deleted`);
      assert.equal(sink.calls.slice(from).filter((c) => c.call === 'problem').length, 1, `${step.name}: logged once`);
      // Fixed: the same contents as before, so nothing to deliver, and the level is ok again.
      if (!existsSync(store) || readlinkSync(store) !== target) relink(target);
      writeAtomically(target, good);
      await waitUntil(() => sink.level === null, 5_000, () => `${step.name} fixed: level ${String(sink.level)}`);
      assert.deepEqual(sink.calls.slice(from).filter((c) => c.call === 'events'), [], `${step.name}: fixed with the same contents, no event`);
    }
    const from = sink.calls.length;
    writeAtomically(target, yamlOf(makeNamespace('shop'), makePod('shop', 'web', { labels: { app: 'web' }, ips: ['10.0.0.1'] })));
    await waitUntil(() => sink.calls.slice(from).some((c) => c.call === 'events'));
    assert.deepEqual(sink.calls.slice(from).flatMap((c) => (c.call === 'events' ? describe(c.events) : [])), ['delete NetworkPolicy shop/web-in'], 'a good edit is followed as ever');
  } finally {
    await source.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
