// The agent loop against the nftables fake and a source played by the test: nothing is programmed
// before synced, bursts are coalesced, an invalid policy is enforced fail-closed, a failed transaction
// is followed by a full reconcile, and the HTTP endpoint reports all of it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { ClusterEvent, RuleTableElement } from '../../src/api';
import { AgentLoop, AgentMetrics, AgentServer, HealthRegistry, getOverSocket } from '../../src/agent';
import type { CommitInfo } from '../../src/agent';
import { NodeCompiler } from '../../src/compiler';
import { Dataplane } from '../../src/dataplane';
import { Transaction, accept } from '../../src/dataplane/nft';
import { FakeNft } from '../support/fake-nft';
import type { NftBackend, TableSnapshot } from '../../src/dataplane/nft';
import { decodeObjects, eventsBetween } from '../../src/source';
import { makeNamespace, makePod, makePolicy } from '../support/builders';

const TABLE = 'netpol_loop_test';
const NODE = 'node-1';

/** FakeNft that can be slowed down and made to fail, and counts what it runs. */
class ScriptedBackend implements NftBackend {
  readonly fake = new FakeNft(TABLE);
  readonly table = TABLE;
  delayMs = 0;
  failures = 0;
  runs = 0;

  async run(tx: Transaction): Promise<void> {
    this.runs++;
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.failures > 0) {
      this.failures--;
      throw new Error('injected failure');
    }
    await this.fake.run(tx);
  }

  check(tx: Transaction): Promise<void> {
    return this.fake.check(tx);
  }

  list(): Promise<TableSnapshot | null> {
    return this.fake.list();
  }

  listCounters(): Promise<TableSnapshot | null> {
    return this.fake.listCounters();
  }

  close(): void {
    this.fake.close();
  }
}

const objects = [
  makeNamespace('shop', { team: 'a' }),
  makePod('shop', 'web', { labels: { app: 'web' }, ips: ['10.0.1.10'], ports: [{ name: 'http', containerPort: 80 }] }),
  makePod('shop', 'db', { labels: { app: 'db' }, ips: ['10.0.1.11'] }),
  makePod('shop', 'client', { labels: { access: 'true' }, node: 'node-2', ips: ['10.0.2.10'] }),
  makePolicy('shop', 'web-in', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { access: 'true' } } }], ports: [{ port: 'http' }] }] }),
];
const initialEvents = (): ClusterEvent[] => eventsBetween(null, decodeObjects(objects, 'test'));

function client(n: number): ClusterEvent {
  const state = decodeObjects([makePod('shop', `client-${n}`, { labels: { access: 'true' }, node: 'node-2', ips: [`10.0.3.${n}`] })], 'test').pods[0];
  assert.ok(state !== undefined);
  return { type: 'upsert', kind: 'Pod', object: state };
}

function setup(options: { retryMs?: number; chunkSize?: number; maxBatchMs?: number; resyncPeriodMs?: number; sourceFailureGraceMs?: number } = {}) {
  const backend = new ScriptedBackend();
  const compiler = new NodeCompiler(NODE);
  const commits: CommitInfo[] = [];
  const metrics = new AgentMetrics({ processMetrics: false });
  const health = new HealthRegistry(metrics.registry);
  const loop = new AgentLoop({
    health,
    compiler,
    dataplane: new Dataplane(backend),
    metrics,
    logger: pino({ level: 'silent' }),
    retryMs: options.retryMs ?? 10,
    ...(options.chunkSize !== undefined ? { chunkSize: options.chunkSize } : {}),
    ...(options.maxBatchMs !== undefined ? { maxBatchMs: options.maxBatchMs } : {}),
    ...(options.resyncPeriodMs !== undefined ? { resyncPeriodMs: options.resyncPeriodMs } : {}),
    ...(options.sourceFailureGraceMs !== undefined ? { sourceFailureGraceMs: options.sourceFailureGraceMs } : {}),
    onCommitted: (c) => commits.push(c),
  });
  return { backend, compiler, loop, commits, metrics, health };
}

/** What a fresh agent would program for the compiler's current table. */
async function freshDump(elements: Iterable<RuleTableElement>): Promise<string> {
  const fake = new FakeNft(TABLE);
  await new Dataplane(fake).sync(elements);
  return fake.dump();
}

test('nothing is programmed before synced: the table found at start stays as it is, then is reconciled', async () => {
  const { backend, compiler, loop, commits } = setup();
  // A table left by the previous agent process (here: one extra accept rule is its drift).
  const previous = new Transaction(TABLE);
  previous.add({ kind: 'table' });
  previous.add({ kind: 'chain', name: 'leftover' });
  previous.add({ kind: 'rule', chain: 'leftover', body: [accept()] });
  await backend.fake.run(previous);
  const before = backend.fake.dump();
  loop.events(initialEvents());
  await loop.idle();
  assert.equal(backend.runs, 0, 'no transaction before synced');
  assert.equal(backend.fake.dump(), before);
  assert.equal(loop.ready(), false);
  loop.synced();
  await loop.idle();
  assert.equal(commits.length, 1);
  assert.equal(commits[0]?.report.kind, 'full');
  assert.equal(backend.fake.dump(), await freshDump(compiler.elements()));
  assert.equal(loop.ready(), true);
  await loop.stop();
});

test('the first full sync waits until the whole listing is compiled, however many chunks it takes', async () => {
  const { backend, compiler, loop, commits } = setup({ chunkSize: 2, maxBatchMs: 0 });
  const listing = [...initialEvents(), ...Array.from({ length: 40 }, (_, n) => client(n + 1))];
  loop.events(listing);
  loop.synced();
  await loop.idle();
  assert.equal(commits[0]?.report.kind, 'full');
  assert.equal(commits[0]?.events.length, listing.length, 'the first transaction carries the complete listing');
  assert.equal(backend.fake.dump(), await freshDump(compiler.elements()));
  await loop.stop();
});

test('a lone change is one incremental transaction; a burst while one is in flight is folded into few', async () => {
  const { backend, compiler, loop, commits } = setup();
  loop.events(initialEvents());
  loop.synced();
  await loop.idle();
  commits.length = 0;

  loop.events([client(1)]);
  await loop.idle();
  assert.equal(commits.length, 1);
  assert.equal(commits[0]?.report.kind, 'incremental');
  assert.equal(commits[0]?.events.length, 1);

  commits.length = 0;
  backend.delayMs = 30;
  for (let n = 2; n < 102; n++) {
    loop.events([client(n)]);
    await new Promise((r) => setImmediate(r)); // each event in a turn of its own, as watches deliver them
  }
  await loop.idle();
  const carried = commits.reduce((sum, c) => sum + c.events.length, 0);
  assert.equal(carried, 100, 'every event was committed');
  assert.ok(commits.length <= 5, `100 events in ${commits.length} transactions`);
  assert.ok(commits.every((c) => c.report.kind === 'incremental'));
  assert.equal(backend.fake.dump(), await freshDump(compiler.elements()));
  await loop.stop();
});

test('a NetworkPolicy that fails validation isolates what it selects with no allow rule, until a valid version replaces it', async () => {
  const { backend, compiler, loop } = setup();
  loop.events(initialEvents());
  loop.synced();
  await loop.idle();
  const raw = makePolicy('shop', 'db-in', { podSelector: { matchLabels: { app: 'db' } }, policyTypes: ['Ingress', 'Egress'], ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] });
  loop.rejected('NetworkPolicy', { namespace: 'shop', name: 'db-in' }, 'spec.ingress[0].from[0].ipBlock.cidr: not a valid CIDR', raw);
  await loop.idle();
  const isolation = [...compiler.elements()].filter((e) => e.kind === 'isolation' && e.policy === 'shop/db-in');
  assert.deepEqual(isolation.map((e) => (e.kind === 'isolation' ? `${e.pod} ${e.direction}` : '')).sort(), ['shop/db egress', 'shop/db ingress']);
  assert.ok(![...compiler.elements()].some((e) => (e.kind === 'bind' || e.kind === 'peer') && e.rule.startsWith('shop/db-in/')), 'no allow rule');
  assert.equal(loop.notEnforceableList()[0]?.policy, 'shop/db-in');
  assert.equal(backend.fake.dump(), await freshDump(compiler.elements()));

  // A valid version ends the fail-closed stand-in.
  const valid = decodeObjects([makePolicy('shop', 'db-in', { podSelector: { matchLabels: { app: 'db' } }, ingress: [{}] })], 'test').policies[0];
  assert.ok(valid !== undefined);
  loop.events([{ type: 'upsert', kind: 'NetworkPolicy', object: valid }]);
  await loop.idle();
  assert.deepEqual(loop.notEnforceableList(), []);
  assert.ok([...compiler.elements()].some((e) => e.kind === 'bind' && e.rule === 'shop/db-in/ingress/0'));
  await loop.stop();
});

test('a NetworkPolicy whose podSelector is unusable isolates every pod of its namespace', async () => {
  const { compiler, loop } = setup();
  loop.events(initialEvents());
  loop.synced();
  await loop.idle();
  loop.rejected('NetworkPolicy', { namespace: 'shop', name: 'typo' }, 'spec.podSelector.matchLabels: must be an object', makePolicy('shop', 'typo', { podSelector: { matchLabels: 'app=web' } }));
  await loop.idle();
  const isolated = [...compiler.elements()].filter((e) => e.kind === 'isolation' && e.policy === 'shop/typo').map((e) => (e.kind === 'isolation' ? `${e.pod} ${e.direction}` : ''));
  assert.deepEqual(isolated.sort(), ['shop/db ingress', 'shop/web ingress']);
  assert.equal(loop.notEnforceableList()[0]?.selectorUsable, false);
  await loop.stop();
});

test('an invalid Pod update keeps the last good version and is listed', async () => {
  const { compiler, loop } = setup();
  loop.events(initialEvents());
  loop.synced();
  await loop.idle();
  const before = [...compiler.elements()].length;
  loop.rejected('Pod', { namespace: 'shop', name: 'web' }, 'status.podIPs[0]: not an IP', {});
  await loop.idle();
  assert.equal([...compiler.elements()].length, before);
  assert.deepEqual(loop.rejectedList().map((r) => r.object), ['shop/web']);
  await loop.stop();
});

test('after a failed transaction the next one is a full reconcile, and readiness follows', { timeout: 120_000 }, async () => {
  const { backend, compiler, loop, commits } = setup({ retryMs: 20 });
  loop.events(initialEvents());
  loop.synced();
  await loop.idle();
  commits.length = 0;
  backend.failures = 1;
  loop.events([client(1)]);
  await loop.idle();
  assert.equal(loop.ready(), false, 'not ready while the kernel lags behind');
  assert.match(loop.status().lastError?.message ?? '', /incremental transaction failed: .*injected failure/);
  assert.equal(loop.status().pendingEvents, 1, 'the event waits for the reconcile');
  // The kernel keeps its previous state: the new client is not there.
  assert.doesNotMatch(backend.fake.dump(), /10\.0\.3\.1 /);
  // The retry comes after retryMs, or later on a loaded machine: wait for it (the test's timeout bounds it).
  while (commits.length === 0) await new Promise((r) => setTimeout(r, 10));
  await loop.idle();
  assert.deepEqual(commits.map((c) => c.report.kind), ['full']);
  assert.equal(commits[0]?.events.length, 1);
  assert.equal(loop.ready(), true);
  assert.equal(backend.fake.dump(), await freshDump(compiler.elements()));
  await loop.stop();
});

/** The health and metrics surface, and the debug surface, of one loop on loopback and a socket. */
async function surfaces(loop: AgentLoop, metrics: AgentMetrics, health: HealthRegistry) {
  const logger = pino({ level: 'silent' });
  const metricsServer = new AgentServer({ surface: 'metrics', health, metrics, errors: metrics, logger });
  const debugServer = new AgentServer({ surface: 'debug', rules: loop, errors: metrics, logger });
  const { port } = await metricsServer.listen('127.0.0.1', 0);
  const dir = mkdtempSync(join(tmpdir(), 'loop-debug-'));
  const socketPath = join(dir, 'debug.sock');
  await debugServer.listenSocket(socketPath);
  const getMetrics = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: res.status, body: await res.text(), type: res.headers.get('content-type') ?? '' };
  };
  const getDebug = (path: string, accept?: string) => getOverSocket(socketPath, path, 5_000, accept);
  return {
    socketPath,
    getMetrics,
    getDebug,
    async close(): Promise<void> {
      await metricsServer.close();
      await debugServer.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('a source part failing longer than the grace period makes the agent not ready, the table untouched, until it reads again', async () => {
  const { backend, loop, metrics, health } = setup({ sourceFailureGraceMs: 30 });
  loop.events(initialEvents());
  loop.synced();
  await loop.idle();
  const programmed = backend.fake.dump();
  const forbidden = 'Kubernetes source: list pods in all namespaces: 403 Forbidden; retrying in 0.8 s, the last known state stays enforced';
  loop.health('Pod', forbidden);
  assert.equal(loop.ready(), true, 'within the grace period a failure does not change readiness');
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(loop.ready(), false, 'past the grace period the level says not ready, with no further report');
  assert.equal(loop.canProgram(), true, 'a new pod can still be programmed');
  assert.equal(loop.status().sourceProblem?.message, `source/Pod: ${forbidden}`);
  const s = await surfaces(loop, metrics, health);
  try {
    const res = await s.getMetrics('/readyz');
    assert.equal(res.status, 503);
    assert.match(res.body, /^not ready: source\/Pod: Kubernetes source: list pods in all namespaces: 403 Forbidden.*\ndataplane ok since \S+: .*\nsource\/Pod failing since \S+: Kubernetes source: list pods/);
    assert.match((await s.getMetrics('/metrics')).body, /netpol_agent_component_ready\{component="source\/Pod"\} 0\n/);
    loop.health('Pod', null);
    assert.equal(loop.ready(), true);
    assert.equal(loop.status().sourceProblem, null);
    const again = await s.getMetrics('/readyz');
    assert.equal(again.status, 200);
    assert.match(again.body, /^ready\n.*\nsource\/Pod ok since \S+: reads\n$/s);
    assert.match((await s.getMetrics('/metrics')).body, /netpol_agent_component_ready\{component="source\/Pod"\} 1\n/);
  } finally {
    await s.close();
  }
  assert.equal(backend.fake.dump(), programmed, 'the last state stays enforced');
  await loop.stop();
});

test('/readyz and /metrics on TCP, /rules (JSON, text, filtered) on the debug socket of mode 0600, each surface only its own', async () => {
  const { loop, metrics, health } = setup();
  const s = await surfaces(loop, metrics, health);
  const get = s.getDebug;
  try {
    assert.equal(statSync(s.socketPath).mode & 0o777, 0o600);
    loop.events(initialEvents());
    await loop.idle();
    const waiting = await s.getMetrics('/readyz');
    assert.equal(waiting.status, 503);
    assert.match(waiting.body, /^not ready: dataplane: waiting for the first complete listing of the cluster\n/);
    assert.equal((await s.getMetrics('/healthz')).status, 200);
    loop.synced();
    await loop.idle();
    assert.equal((await s.getMetrics('/readyz')).status, 200);
    assert.equal((await s.getMetrics('/rules')).status, 404, 'no debug endpoint on the metrics address');
    assert.equal((await get('/metrics')).status, 404, 'no metrics on the debug socket');
    const rules = JSON.parse((await get('/rules?verbose=1')).body);
    assert.equal(rules.node, NODE);
    assert.equal(rules.sync.generation, 1);
    const web = rules.pods.find((p: { pod: string }) => p.pod === 'shop/web');
    assert.deepEqual(web.ips, ['10.0.1.10']);
    assert.equal(web.ingress.isolated, true);
    assert.match(web.ingress.nftables.chain, /^in_[0-9a-f]{16}$/);
    assert.deepEqual(web.ingress.rules[0].peers, ['podSelector access=true']);
    assert.deepEqual(web.ingress.rules[0].ports, ['TCP/http']);
    assert.deepEqual(web.ingress.rules[0].resolvedPorts, ['TCP/80']);
    assert.deepEqual(web.ingress.rules[0].resolved[0], { port: null, resolvedAddresses: 1, addresses: ['10.0.2.10'] });
    assert.equal(web.egress.isolated, false);
    const onlyDb = JSON.parse((await get('/rules?pod=shop/db')).body);
    assert.deepEqual(onlyDb.pods.map((p: { pod: string }) => p.pod), ['shop/db']);
    const byPolicy = JSON.parse((await get('/rules?policy=shop/web-in')).body);
    assert.deepEqual(byPolicy.pods.map((p: { pod: string }) => p.pod), ['shop/web']);
    loop.rejected('NetworkPolicy', { namespace: 'shop', name: 'bad' }, 'spec.ingress[0].ports[0].port: 70000 is out of range', makePolicy('shop', 'bad', { podSelector: {}, ingress: [{ ports: [{ port: 70000 }] }] }));
    await loop.idle();
    const text = await get('/rules', 'text/plain');
    assert.doesNotMatch(text.body, /^\{/, 'text, not JSON');
    assert.match(text.body, /NOT ENFORCEABLE AS WRITTEN/);
    assert.match(text.body, /shop\/bad: spec\.ingress\[0\]\.ports\[0\]\.port: 70000 is out of range/);
    assert.match(text.body, /shop\/web {2}10\.0\.1\.10\n {4}ingress: isolated by shop\/bad, shop\/web-in; chain in_/);
    const m = (await s.getMetrics('/metrics')).body;
    for (const name of ['netpol_agent_programming_latency_seconds_bucket', 'netpol_agent_sync_duration_seconds', 'netpol_agent_transactions_total', 'netpol_agent_nft_operations_total', 'netpol_agent_watch_restarts_total', 'netpol_agent_relists_total', 'netpol_agent_objects', 'netpol_agent_policies_not_enforceable', 'netpol_agent_errors_total']) {
      assert.ok(m.includes(name), `/metrics has ${name}`);
    }
    assert.match(m, /netpol_agent_transactions_total\{type="full",result="ok"\} 1\n/);
    assert.match(m, /netpol_agent_policies_not_enforceable 1\n/);
    assert.match(m, /netpol_agent_objects\{kind="Pod"\} 3\n/);
    assert.match(m, /netpol_agent_programming_latency_seconds_count\{kind="LocalPod"\} 2\n/);
    assert.match(m, /netpol_agent_component_ready\{component="dataplane"\} 1\n/);
  } finally {
    await s.close();
    await loop.stop();
  }
});

// No deadline of its own on the resync's arrival (a loaded machine may delay a 50 ms timer by seconds): the
// test's timeout ends it if the resync never comes.
test('the periodic resync (--resync-period) is a full reconcile that repairs drift made behind the agent\'s back', { timeout: 120_000 }, async () => {
  const { backend, compiler, loop, commits } = setup({ resyncPeriodMs: 50 });
  loop.events(initialEvents());
  loop.synced();
  await loop.idle();
  const programmed = backend.fake.dump();
  // Drift: someone flushes the rules of a group chain the agent owns.
  const chain = /add chain inet \S+ (in_[0-9a-f]{16})/.exec(programmed)?.[1];
  assert.ok(chain !== undefined, programmed);
  const drift = new Transaction(TABLE);
  drift.flush({ kind: 'chain', name: chain });
  await backend.fake.run(drift);
  assert.notEqual(backend.fake.dump(), programmed);
  while (commits.length < 2) await new Promise((r) => setTimeout(r, 10));
  await loop.idle();
  assert.equal(commits[1]?.report.kind, 'full', 'the resync is a full reconcile');
  assert.equal(backend.fake.dump(), await freshDump(compiler.elements()));
  await loop.stop();
});
