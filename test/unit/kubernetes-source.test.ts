// The Kubernetes source against a local server that speaks the list/watch protocol and fails on
// purpose. Each test asserts the exact calls the sink receives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import type { ClusterEvent, ObjectKind, ObjectRef, SourceSink } from '../../src/api';
import { errorMessage } from '../../src/errors';
import { parseNamespace, parseNetworkPolicy, parsePod } from '../../src/parse';
import { KubernetesSource } from '../../src/source/kubernetes';
import type { KubernetesSourceOptions, SourceLogger, SourceMetrics, WatchRestartReason } from '../../src/source/kubernetes';
import { Backoff } from '../../src/source/kubernetes/backoff';
import { makeNamespace, makePod, makePolicy } from '../support/builders';
import { FakeApiServer, forbiddenMessage } from '../support/fake-apiserver';

type Call =
  | { readonly type: 'events'; readonly batch: readonly ClusterEvent[] }
  | { readonly type: 'rejected'; readonly kind: ObjectKind; readonly ref: ObjectRef; readonly reason: string; readonly raw: unknown }
  | { readonly type: 'synced' }
  | { readonly type: 'problem'; readonly message: string };

class RecordingSink implements SourceSink {
  calls: Call[] = [];
  events(batch: readonly ClusterEvent[]): void { this.calls.push({ type: 'events', batch }); }
  rejected(kind: ObjectKind, ref: ObjectRef, reason: string, raw: unknown): void { this.calls.push({ type: 'rejected', kind, ref, reason, raw }); }
  synced(): void { this.calls.push({ type: 'synced' }); }
  problem(message: string): void { this.calls.push({ type: 'problem', message }); }
  /** Health levels are kept apart, so the call sequences the tests compare stay about the data. */
  readonly health_: { part: string; failure: string | null }[] = [];
  health(part: string, failure: string | null): void { this.health_.push({ part, failure }); }
  /** The levels one kind reported, in order: "failing" or "ok". */
  levels(kind: ObjectKind): string[] {
    return this.health_.filter((h) => h.part === kind).map((h) => (h.failure === null ? 'ok' : 'failing'));
  }
  /** The calls since the last take(). */
  take(): Call[] {
    const c = this.calls;
    this.calls = [];
    return c;
  }
}

class RecordingMetrics implements SourceMetrics {
  restarts: string[] = [];
  relists: ObjectKind[] = [];
  objectCounts: Partial<Record<ObjectKind, number>> = {};
  watchRestarted(kind: ObjectKind, reason: WatchRestartReason): void { this.restarts.push(`${kind}:${reason}`); }
  relisted(kind: ObjectKind): void { this.relists.push(kind); }
  objects(kind: ObjectKind, count: number): void { this.objectCounts[kind] = count; }
}

async function until(what: string, cond: () => boolean, timeoutMs = 5000, last: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} ${last()}`.trim());
    await new Promise((r) => setTimeout(r, 5));
  }
}

type Obj = Record<string, any>;

interface Ctx {
  server: FakeApiServer;
  sink: RecordingSink;
  metrics: RecordingMetrics;
  source: KubernetesSource;
  pods: Record<string, Obj>;
}

const upsertPod = (o: Obj): ClusterEvent => ({ type: 'upsert', kind: 'Pod', object: parsePod(o) });
const deletePod = (name: string): ClusterEvent => ({ type: 'delete', kind: 'Pod', ref: { namespace: 'default', name } });
const problems = (calls: readonly Call[]): string[] => calls.flatMap((c) => (c.type === 'problem' ? [c.message] : []));
const notProblems = (calls: readonly Call[]): Call[] => calls.filter((c) => c.type !== 'problem');
const eventCalls = (sink: RecordingSink): number => sink.calls.filter((c) => c.type === 'events').length;

/** Two namespaces, five pods a..e in default, one policy; the source started and synced; the calls up to synced dropped. */
async function withSyncedSource(options: Partial<KubernetesSourceOptions>, body: (ctx: Ctx) => Promise<void>, prepare?: (server: FakeApiServer) => void): Promise<void> {
  const server = new FakeApiServer();
  await server.start();
  const sink = new RecordingSink();
  const metrics = new RecordingMetrics();
  let source: KubernetesSource | null = null;
  try {
    server.put('namespaces', makeNamespace('default'));
    server.put('namespaces', makeNamespace('prod', { env: 'prod' }));
    const pods: Record<string, Obj> = {};
    for (const [i, name] of ['a', 'b', 'c', 'd', 'e'].entries()) {
      pods[name] = server.put('pods', makePod('default', name, { labels: { app: name }, ips: [`10.0.0.${i + 1}`] }));
    }
    server.put('networkpolicies', makePolicy('default', 'deny-all', { podSelector: {} }));
    prepare?.(server);
    source = new KubernetesSource({
      kubeconfigPath: server.kubeconfigPath, metrics, pageSize: 2, random: () => 0.5,
      backoff: { initialMs: 20, maxMs: 80 }, silenceTimeoutMs: 5000, ...options,
    });
    source.start(sink);
    await until('synced', () => sink.calls.some((c) => c.type === 'synced'));
    await until('three watches', () => server.openWatches('pods') + server.openWatches('namespaces') + server.openWatches('networkpolicies') === 3);
    sink.calls = sink.calls.slice(sink.calls.findIndex((c) => c.type === 'synced') + 1);
    await body({ server, sink, metrics, source, pods });
  } finally {
    await source?.stop();
    await server.close();
  }
}

test('lists every kind in pages (limit/continue), one batch per kind, then synced once; watches resume from the list resourceVersion with bookmarks', async () => {
  const server = new FakeApiServer();
  await server.start();
  const sink = new RecordingSink();
  const metrics = new RecordingMetrics();
  const logger: SourceLogger = pino({ level: 'silent' }); // a pino Logger is a SourceLogger
  const source = new KubernetesSource({ kubeconfigPath: server.kubeconfigPath, metrics, logger, pageSize: 2, random: () => 0.5 });
  try {
    const ns = [server.put('namespaces', makeNamespace('default')), server.put('namespaces', makeNamespace('prod', { env: 'prod' }))];
    const pods = ['a', 'b', 'c', 'd', 'e'].map((n, i) => server.put('pods', makePod('default', n, { ips: [`10.0.0.${i + 1}`] })));
    const policy = server.put('networkpolicies', makePolicy('default', 'deny-all', { podSelector: {} }));
    const listRv = server.resourceVersion;
    server.gzipAboveBytes = 0; // every list page gzipped, as kube-apiserver does above 128 KiB
    source.start(sink);
    await until('synced', () => sink.calls.some((c) => c.type === 'synced'));
    await until('three watches', () => server.requests.filter((r) => r.verb === 'watch').length === 3);

    const calls = sink.take();
    assert.deepEqual(calls[calls.length - 1], { type: 'synced' });
    const byKind = (kind: ObjectKind) => calls.filter((c) => c.type === 'events' && c.batch[0]?.kind === kind);
    assert.equal(calls.length, 4, 'three batches and synced');
    assert.deepEqual(byKind('Namespace'), [{ type: 'events', batch: ns.map((o) => ({ type: 'upsert', kind: 'Namespace', object: parseNamespace(o) })) }]);
    assert.deepEqual(byKind('Pod'), [{ type: 'events', batch: pods.map(upsertPod) }]);
    assert.deepEqual(byKind('NetworkPolicy'), [{ type: 'events', batch: [{ type: 'upsert', kind: 'NetworkPolicy', object: parseNetworkPolicy(policy) }] }]);

    const podLists = server.requests.filter((r) => r.resource === 'pods' && r.verb === 'list').map((r) => r.query);
    assert.deepEqual(podLists, [{ limit: '2' }, { limit: '2', continue: 's1:2' }, { limit: '2', continue: 's1:4' }]);
    const podWatch = server.requests.find((r) => r.resource === 'pods' && r.verb === 'watch');
    assert.deepEqual(podWatch?.query, { allowWatchBookmarks: 'true', timeoutSeconds: '450', resourceVersion: listRv, watch: 'true' });
    assert.equal(podWatch?.authorization, 'Bearer fake-token');
    assert.ok(server.bytes.list < server.bytes.listUncompressed, 'the pages went gzipped');
    assert.deepEqual(metrics.objectCounts, { Namespace: 2, Pod: 5, NetworkPolicy: 1 });
    assert.deepEqual(metrics.relists, []);
  } finally {
    await source.stop();
    await server.close();
  }
});

test('watch events become upserts and deletes; status churn that enforcement does not read emits nothing; bookmarks advance the resume point', async () => {
  await withSyncedSource({}, async ({ server, sink, pods }) => {
    const f = server.put('pods', makePod('default', 'f', { ips: ['10.0.0.6'] }));
    await until('f', () => eventCalls(sink) === 1);
    const a = pods['a']!;
    a.status.conditions = [{ type: 'Ready', status: 'True' }];
    server.put('pods', a); // only status.conditions changed: the reduced record is the same
    a.metadata.labels = { app: 'a', tier: 'web' };
    const relabelled = server.put('pods', a);
    await until('relabel', () => eventCalls(sink) === 2);
    server.remove('pods', 'default/b');
    await until('delete', () => eventCalls(sink) === 3);
    assert.deepEqual(sink.take(), [
      { type: 'events', batch: [upsertPod(f)] },
      { type: 'events', batch: [upsertPod(relabelled)] },
      { type: 'events', batch: [deletePod('b')] },
    ]);

    server.put('namespaces', makeNamespace('later')); // moves the resourceVersion past the last pod event
    await until('namespace', () => eventCalls(sink) === 1);
    sink.take();
    const bookmarkRv = server.resourceVersion;
    server.bookmark('pods');
    await new Promise((r) => setTimeout(r, 50));
    server.endWatches('pods'); // a clean end, as at timeoutSeconds: resumes at once from the bookmark
    await until('second pods watch', () => server.count('pods', 'watch') === 2);
    assert.equal(server.requests.filter((r) => r.resource === 'pods' && r.verb === 'watch')[1]?.query['resourceVersion'], bookmarkRv);
    assert.deepEqual(sink.take(), []);
  });
});

test('a connection reset mid-watch is reported, and the watch resumes from the last resourceVersion without a relist', async () => {
  await withSyncedSource({}, async ({ server, sink, metrics }) => {
    const firstWatchRv = server.requests.find((r) => r.resource === 'pods' && r.verb === 'watch')?.query['resourceVersion'];
    server.resetWatches('pods');
    const g = server.put('pods', makePod('default', 'g', { ips: ['10.0.0.7'] }));
    await until('g', () => eventCalls(sink) === 1);
    const calls = sink.take();
    assert.equal(calls.length, 2);
    assert.match(problems(calls)[0] ?? '', /^Kubernetes source: watch pods in all namespaces: .*; retrying in 0\.0 s, the last known state stays enforced$/);
    assert.deepEqual(notProblems(calls), [{ type: 'events', batch: [upsertPod(g)] }]);
    assert.equal(server.count('pods', 'list'), 3, 'the three pages of the first list only');
    assert.equal(server.requests.filter((r) => r.resource === 'pods' && r.verb === 'watch')[1]?.query['resourceVersion'], firstWatchRv);
    assert.deepEqual(metrics.restarts, ['Pod:error']);
  });
});

test('a 500 on list is reported and retried with backoff; synced waits for that kind', async () => {
  const server = new FakeApiServer();
  await server.start();
  const sink = new RecordingSink();
  const source = new KubernetesSource({ kubeconfigPath: server.kubeconfigPath, random: () => 0.5, backoff: { initialMs: 20, maxMs: 80 } });
  try {
    const pod = server.put('pods', makePod('default', 'a', { ips: ['10.0.0.1'] }));
    server.failNext('pods', 'list', { kind: 'status', code: 500, message: 'etcdserver: request timed out' }, 2);
    const started = Date.now();
    source.start(sink);
    await until('synced', () => sink.calls.some((c) => c.type === 'synced'));
    const calls = sink.take();
    assert.deepEqual(problems(calls), [
      'Kubernetes source: list pods in all namespaces: 500 Internal Server Error: etcdserver: request timed out; retrying in 0.0 s, the last known state stays enforced',
      'Kubernetes source: list pods in all namespaces: 500 Internal Server Error: etcdserver: request timed out; retrying in 0.0 s, the last known state stays enforced',
    ]);
    assert.deepEqual(notProblems(calls), [{ type: 'events', batch: [upsertPod(pod)] }, { type: 'synced' }]);
    assert.ok(Date.now() - started >= 20 + 40, 'waited 20 ms then 40 ms');
    assert.equal(server.count('pods', 'list'), 3);
    assert.deepEqual(sink.levels('Pod'), ['failing', 'failing', 'failing', 'ok'], 'not listed yet, the two 500s, then the list that succeeded');
    assert.deepEqual(sink.levels('Namespace'), ['failing', 'ok']);
  } finally {
    await source.stop();
    await server.close();
  }
});

test('429 Too Many Requests waits at least the Retry-After the server sent', async () => {
  const server = new FakeApiServer();
  await server.start();
  const sink = new RecordingSink();
  const source = new KubernetesSource({ kubeconfigPath: server.kubeconfigPath, random: () => 0.5, backoff: { initialMs: 20, maxMs: 80 } });
  try {
    server.failNext('namespaces', 'list', { kind: 'status', code: 429, message: 'too many requests, please try again later', retryAfter: 1 });
    const started = Date.now();
    source.start(sink);
    await until('synced', () => sink.calls.some((c) => c.type === 'synced'));
    assert.ok(Date.now() - started >= 1000, 'waited the second the server asked for');
    assert.deepEqual(sink.take(), [
      { type: 'problem', message: 'Kubernetes source: list namespaces: 429 Too Many Requests: too many requests, please try again later; retrying in 1.0 s, the last known state stays enforced' },
      { type: 'synced' },
    ]);
  } finally {
    await source.stop();
    await server.close();
  }
});

test('a list page that never completes times out, is reported and retried', async () => {
  const server = new FakeApiServer();
  await server.start();
  const sink = new RecordingSink();
  const source = new KubernetesSource({ kubeconfigPath: server.kubeconfigPath, requestTimeoutMs: 200, random: () => 0.5, backoff: { initialMs: 20, maxMs: 80 } });
  try {
    const pod = server.put('pods', makePod('default', 'a', { ips: ['10.0.0.1'] }));
    server.failNext('pods', 'list', { kind: 'silent' });
    source.start(sink);
    await until('synced', () => sink.calls.some((c) => c.type === 'synced'));
    assert.deepEqual(sink.take(), [
      { type: 'problem', message: 'Kubernetes source: list pods in all namespaces: the list of pods took longer than 0.2 s; retrying in 0.0 s, the last known state stays enforced' },
      { type: 'events', batch: [upsertPod(pod)] },
      { type: 'synced' },
    ]);
  } finally {
    await source.stop();
    await server.close();
  }
});

test('without --kubeconfig outside a pod, the source says what to pass instead', () => {
  const saved = process.env['KUBERNETES_SERVICE_HOST'];
  delete process.env['KUBERNETES_SERVICE_HOST'];
  try {
    assert.throws(() => new KubernetesSource(), /not running in a Kubernetes pod \(KUBERNETES_SERVICE_HOST is not set\): pass --kubeconfig/);
    assert.throws(() => new KubernetesSource({ kubeconfigPath: '/nonexistent/kubeconfig' }), /cannot load the kubeconfig \/nonexistent\/kubeconfig/);
  } finally {
    if (saved !== undefined) process.env['KUBERNETES_SERVICE_HOST'] = saved;
  }
});

test('410 Gone as the HTTP status of a watch relists and emits only what changed', async () => {
  await withSyncedSource({}, async ({ server, sink, metrics, pods }) => {
    server.failNext('pods', 'watch', { kind: 'status', code: 410, message: 'too old resource version: 1 (200)' });
    server.resetWatches('pods');
    const a = pods['a']!;
    a.metadata.labels = { app: 'a', changed: 'yes' };
    const changed = server.put('pods', a);
    await until('relist batch', () => eventCalls(sink) === 1);
    await until('watch after relist', () => server.openWatches('pods') === 1);
    const calls = sink.take();
    assert.equal(problems(calls).length, 1, 'the reset');
    assert.deepEqual(notProblems(calls), [{ type: 'events', batch: [upsertPod(changed)] }]);
    assert.equal(server.count('pods', 'list'), 6, 'a second full list of three pages');
    assert.deepEqual(metrics.relists, ['Pod']);
    assert.deepEqual(metrics.restarts, ['Pod:error', 'Pod:expired']);
  });
});

test('410 Gone as an ERROR event in the watch stream relists; a pod deleted meanwhile becomes a delete', async () => {
  await withSyncedSource({}, async ({ server, sink, metrics }) => {
    server.failNext('pods', 'watch', { kind: 'errorEvent', code: 410, message: 'too old resource version: 1 (200)' });
    server.resetWatches('pods');
    server.remove('pods', 'default/c');
    await until('relist batch', () => eventCalls(sink) === 1);
    const calls = sink.take();
    assert.deepEqual(notProblems(calls), [{ type: 'events', batch: [deletePod('c')] }]);
    assert.deepEqual(metrics.relists, ['Pod']);
    assert.deepEqual(metrics.restarts, ['Pod:error', 'Pod:expired']);
  });
});

test('a watch that goes silent is aborted by the watchdog and restarted', async () => {
  await withSyncedSource({ silenceTimeoutMs: 300 }, async ({ server, sink, metrics }) => {
    await until('silent watch restarted', () => server.count('pods', 'watch') === 2, 3000);
    await until('watch open', () => server.openWatches('pods') === 1);
    const h = server.put('pods', makePod('default', 'h', { ips: ['10.0.0.8'] }));
    await until('h', () => eventCalls(sink) === 1);
    assert.deepEqual(sink.take(), [
      { type: 'problem', message: 'Kubernetes source: the watch of pods sent no event or bookmark for 0.3 s: restarting it; retrying in 0.0 s, the last known state stays enforced' },
      { type: 'events', batch: [upsertPod(h)] },
    ]);
    assert.deepEqual(metrics.restarts, ['Pod:silent']);
    assert.equal(server.count('pods', 'list'), 3, 'no relist');
  }, (server) => {
    server.sendBookmarksEvery(100); // keeps the healthy watches (namespaces, policies) talking
    server.failNext('pods', 'watch', { kind: 'silent' });
  });
});

test('after an outage, the relist shows what changed while disconnected: a missed deletion, a recreation with a new uid, a relabel; nothing else', async () => {
  await withSyncedSource({}, async ({ server, sink, metrics, pods }) => {
    server.down = true;
    server.resetWatches();
    server.remove('pods', 'default/b');
    server.remove('pods', 'default/c');
    const { uid: _oldUid, resourceVersion: _oldRv, ...cMeta } = pods['c']!.metadata;
    const recreated = server.put('pods', { ...pods['c']!, metadata: cMeta });
    assert.notEqual(recreated.metadata.uid, pods['c']!.metadata.uid);
    const d = pods['d']!;
    d.metadata.labels = { app: 'd', moved: 'true' };
    const relabelled = server.put('pods', d);
    const e = pods['e']!;
    e.status.conditions = [{ type: 'Ready', status: 'False' }];
    server.put('pods', e); // a new resourceVersion, the same record
    server.compact();
    await until('reconnects failing', () => problems(sink.calls).length >= 6);
    assert.deepEqual(notProblems(sink.calls), [], 'nothing emitted while unreachable');
    server.down = false;
    await until('three relists', () => metrics.relists.length === 3);
    await until('three watches', () => server.openWatches('pods') + server.openWatches('namespaces') + server.openWatches('networkpolicies') === 3);
    const calls = sink.take();
    for (const p of problems(calls)) assert.match(p, /the last known state stays enforced$/);
    assert.deepEqual(notProblems(calls), [{ type: 'events', batch: [upsertPod(recreated), upsertPod(relabelled), deletePod('b')] }]);
    assert.deepEqual([...metrics.relists].sort(), ['Namespace', 'NetworkPolicy', 'Pod']);
  });
});

test('403 Forbidden names the resource and the verbs to grant; that kind emits nothing and synced waits for it', async () => {
  const server = new FakeApiServer();
  await server.start();
  const sink = new RecordingSink();
  const source = new KubernetesSource({ kubeconfigPath: server.kubeconfigPath, random: () => 0.5, backoff: { initialMs: 20, maxMs: 80 } });
  try {
    const policy = server.put('networkpolicies', makePolicy('default', 'deny-all', { podSelector: {} }));
    server.failNext('networkpolicies', 'list', { kind: 'status', code: 403, message: forbiddenMessage('list', 'networkpolicies', 'networking.k8s.io') });
    source.start(sink);
    await until('synced', () => sink.calls.some((c) => c.type === 'synced'));
    assert.deepEqual(sink.take(), [
      {
        type: 'problem',
        message: 'Kubernetes source: cannot list networkpolicies in all namespaces: 403 Forbidden (networkpolicies.networking.k8s.io is forbidden: ' +
          'User "system:serviceaccount:kube-system:netpol-agent" cannot list resource "networkpolicies" in API group "networking.k8s.io" at the cluster scope). ' +
          'Grant the agent\'s ServiceAccount the verbs "list" and "watch" on "networkpolicies" in API group "networking.k8s.io" with a ClusterRole and ClusterRoleBinding; ' +
          'retrying in 0.0 s, the last known state stays enforced',
      },
      { type: 'events', batch: [{ type: 'upsert', kind: 'NetworkPolicy', object: parseNetworkPolicy(policy) }] },
      { type: 'synced' },
    ]);
    assert.deepEqual(sink.levels('NetworkPolicy'), ['failing', 'failing', 'ok'], 'not listed yet, the 403, the list after it');

    await until('pods watch', () => server.openWatches('pods') === 1);
    server.failNext('pods', 'watch', { kind: 'status', code: 403, message: forbiddenMessage('watch', 'pods') });
    server.resetWatches('pods');
    await until('watch refused', () => problems(sink.calls).length === 2);
    assert.match(problems(sink.calls)[1] ?? '', /^Kubernetes source: cannot watch pods in all namespaces: 403 Forbidden \(pods is forbidden: .* cannot watch resource "pods" in API group "" at the cluster scope\)\. Grant the agent's ServiceAccount the verbs "list" and "watch" on "pods" in the core API group ""/);
    assert.deepEqual(notProblems(sink.take()), []);
    // The reset and the 403 are failures of the watch; the watch accepted again ends them.
    await until('the pods watch accepted again', () => /^failing,ok,(failing,)+ok$/.test(sink.levels('Pod').join()), 5000, () => sink.levels('Pod').join());
    assert.deepEqual(sink.take(), [], 'a quiet watch that opens again is a recovery, with no event');
  } finally {
    await source.stop();
    await server.close();
  }
});

test('an invalid object is rejected with its reason and raw object, in a list and in a watch; a fix or a delete ends it', async () => {
  const badPod = makePod('default', 'bad', { labels: { '-bad-key': 'x' }, ips: ['10.0.0.9'] }) as Obj;
  const reasonOf = (parse: () => unknown): string => {
    try {
      parse();
    } catch (err) {
      return errorMessage(err);
    }
    throw new Error('expected a validation error');
  };
  let stored: Obj = {};
  await withSyncedSource({}, async ({ server, sink, pods }) => {
    const badPolicy = server.put('networkpolicies', makePolicy('default', 'bad-protocol', { podSelector: {}, ingress: [{ ports: [{ protocol: 'ICMP', port: 1 }] }] }));
    await until('policy rejected', () => sink.calls.length === 1);
    const fixedPod = server.put('pods', { ...stored, metadata: { ...stored.metadata, labels: { app: 'bad' } } });
    await until('pod fixed', () => sink.calls.length === 2);
    server.remove('networkpolicies', 'default/bad-protocol');
    await until('policy deleted', () => sink.calls.length === 3);
    assert.deepEqual(sink.take(), [
      { type: 'rejected', kind: 'NetworkPolicy', ref: { namespace: 'default', name: 'bad-protocol' }, reason: reasonOf(() => parseNetworkPolicy(badPolicy)), raw: badPolicy },
      { type: 'events', batch: [upsertPod(fixedPod)] },
      { type: 'events', batch: [{ type: 'delete', kind: 'NetworkPolicy', ref: { namespace: 'default', name: 'bad-protocol' } }] },
    ]);
    assert.ok(pods['a']);
  }, (server) => {
    stored = server.put('pods', badPod);
  });
  // The first list: the rejection came with the synced state (checked through a fresh source below).
  const server = new FakeApiServer();
  await server.start();
  const sink = new RecordingSink();
  const source = new KubernetesSource({ kubeconfigPath: server.kubeconfigPath });
  try {
    const bad = server.put('pods', badPod);
    const good = server.put('pods', makePod('default', 'good', { ips: ['10.0.0.10'] }));
    source.start(sink);
    await until('synced', () => sink.calls.some((c) => c.type === 'synced'));
    assert.deepEqual(sink.take(), [
      { type: 'events', batch: [upsertPod(good)] },
      { type: 'rejected', kind: 'Pod', ref: { namespace: 'default', name: 'bad' }, reason: reasonOf(() => parsePod(bad)), raw: bad },
      { type: 'synced' },
    ]);
  } finally {
    await source.stop();
    await server.close();
  }
});

test('stop() closes every watch and nothing is delivered afterwards', async () => {
  await withSyncedSource({}, async ({ server, sink, source }) => {
    await source.stop();
    await until('watches closed', () => server.openWatches('pods') + server.openWatches('namespaces') + server.openWatches('networkpolicies') === 0);
    server.put('pods', makePod('default', 'late', { ips: ['10.0.0.11'] }));
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(sink.take(), []);
  });
});

test('backoff doubles from the initial delay to the cap, each scaled by a jitter factor in [0.5, 1.5), and resets', () => {
  const factors = [0.5, 0, 0.999, 0.5, 0.5, 0.5, 0.5, 0.5];
  const b = new Backoff({ initialMs: 800, maxMs: 30_000 }, () => factors.shift() ?? 0.5);
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [800, 800, 4797, 6400, 12800, 25600, 30000, 30000]);
  b.reset();
  assert.equal(b.next(), 800);
});

test('backoff starts over after a stretch without failures, as client-go resets after two minutes', () => {
  let now = 0;
  const b = new Backoff({ initialMs: 800, maxMs: 30_000, resetAfterMs: 120_000 }, () => 0.5, () => now);
  assert.deepEqual([b.next(), b.next(), b.next()], [800, 1600, 3200]);
  now += 119_000;
  assert.equal(b.next(), 6400, 'failures less than two minutes apart keep doubling');
  now += 120_000;
  assert.equal(b.next(), 800, 'two minutes of health: from the initial delay again');
  assert.equal(b.next(), 1600);
});

test('a streaming list (sendInitialEvents) delivers the initial state as one batch per kind at its closing bookmark, then keeps watching on the same stream', async () => {
  const server = new FakeApiServer();
  await server.start();
  const sink = new RecordingSink();
  const source = new KubernetesSource({ kubeconfigPath: server.kubeconfigPath, streamingList: true, random: () => 0.5 });
  try {
    const ns = server.put('namespaces', makeNamespace('default'));
    const pods = ['a', 'b', 'c'].map((n, i) => server.put('pods', makePod('default', n, { ips: [`10.0.0.${i + 1}`] })));
    source.start(sink);
    await until('synced', () => sink.calls.some((c) => c.type === 'synced'));
    const calls = sink.take();
    assert.deepEqual(calls[calls.length - 1], { type: 'synced' });
    assert.equal(calls.length, 3, 'two batches (no policies) and synced');
    assert.deepEqual(calls.filter((c) => c.type === 'events' && c.batch[0]?.kind === 'Namespace'), [{ type: 'events', batch: [{ type: 'upsert', kind: 'Namespace', object: parseNamespace(ns) }] }]);
    assert.deepEqual(calls.filter((c) => c.type === 'events' && c.batch[0]?.kind === 'Pod'), [{ type: 'events', batch: pods.map(upsertPod) }]);
    assert.equal(server.requests.filter((r) => r.verb === 'list').length, 0, 'no list request');
    assert.deepEqual(server.requests.find((r) => r.resource === 'pods')?.query, {
      allowWatchBookmarks: 'true', timeoutSeconds: '450', sendInitialEvents: 'true', resourceVersionMatch: 'NotOlderThan', watch: 'true',
    });

    const d = server.put('pods', makePod('default', 'd', { ips: ['10.0.0.4'] }));
    await until('d', () => eventCalls(sink) === 1);
    assert.deepEqual(sink.take(), [{ type: 'events', batch: [upsertPod(d)] }]);
    assert.equal(server.count('pods', 'watch'), 1, 'the same stream');
  } finally {
    await source.stop();
    await server.close();
  }
});

test('a server that refuses streaming lists (422 Invalid) is read with paginated lists, and that is no problem', async () => {
  const server = new FakeApiServer();
  server.watchList = false;
  await server.start();
  const sink = new RecordingSink();
  const source = new KubernetesSource({ kubeconfigPath: server.kubeconfigPath, streamingList: true, random: () => 0.5 });
  try {
    const pod = server.put('pods', makePod('default', 'a', { ips: ['10.0.0.1'] }));
    source.start(sink);
    await until('synced', () => sink.calls.some((c) => c.type === 'synced'));
    assert.deepEqual(sink.take(), [{ type: 'events', batch: [upsertPod(pod)] }, { type: 'synced' }]);
    await until('the watch after the list', () => server.count('pods', 'watch') === 2);
    const podRequests = server.requests.filter((r) => r.resource === 'pods').map((r) => `${r.verb}${r.query['sendInitialEvents'] === 'true' ? ' streaming' : ''}`);
    assert.deepEqual(podRequests.slice(0, 3), ['watch streaming', 'list', 'watch']);
  } finally {
    await source.stop();
    await server.close();
  }
});

test('with streaming lists, the relist after an outage and 410 shows the deletion missed while disconnected', async () => {
  await withSyncedSource({ streamingList: true }, async ({ server, sink, metrics }) => {
    server.down = true;
    server.resetWatches();
    server.remove('pods', 'default/b');
    server.compact();
    await until('reconnects failing', () => problems(sink.calls).length >= 3);
    server.down = false;
    await until('three relists', () => metrics.relists.length === 3);
    assert.deepEqual(notProblems(sink.take()), [{ type: 'events', batch: [deletePod('b')] }]);
    assert.equal(server.requests.filter((r) => r.verb === 'list').length, 0, 'streamed, never listed');
  });
});
