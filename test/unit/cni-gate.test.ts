// The agent's side of netpol-agent-cni, against the nftables fake: a pod is programmed with the
// plugin's addresses before the API knows them, the answer waits for the commit (and only for pods a
// policy selects), DEL releases the addresses, and the real plugin binary talks to the real socket.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import type { ClusterEvent, PodState } from '../../src/api';
import { AgentLoop, AgentMetrics, CniPodGate, CniServer, CommitTracker } from '../../src/agent';
import type { CniAnswer } from '../../src/agent';
import { NodeCompiler } from '../../src/compiler';
import { Dataplane } from '../../src/dataplane';
import { FakeNft, Transaction } from '../../src/dataplane/nft';
import type { NftBackend, TableSnapshot } from '../../src/dataplane/nft';
import { decodeObjects, eventsBetween } from '../../src/source';
import { makeNamespace, makePolicy } from '../support/builders';

const TABLE = 'netpol_cni_gate_test';
const NODE = 'node-1';
const CNI_DIR = resolve(__dirname, '../../../native/cni');
let dir = '';

before(() => {
  execFileSync('make', ['-s', '-C', CNI_DIR], { stdio: 'inherit' });
  dir = mkdtempSync(join(tmpdir(), 'netpol-cni-gate-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** The fake, slowed down on demand; records when each transaction was committed. */
class SlowBackend implements NftBackend {
  readonly fake = new FakeNft(TABLE);
  readonly table = TABLE;
  delayMs = 0;
  readonly committedAt: number[] = [];
  async run(tx: Transaction): Promise<void> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    await this.fake.run(tx);
    this.committedAt.push(performance.now());
  }
  check(tx: Transaction): Promise<void> { return this.fake.check(tx); }
  list(): Promise<TableSnapshot | null> { return this.fake.list(); }
  close(): void { this.fake.close(); }
}

function pod(name: string, o: { labels?: Record<string, string>; ips?: string[]; uid?: string; node?: string } = {}): PodState {
  return { namespace: 'shop', name, uid: o.uid ?? `uid-${name}`, labels: o.labels ?? {}, nodeName: o.node ?? NODE, hostNetwork: false, phase: 'Pending', ips: o.ips ?? [], ports: [{ port: 80, protocol: 'TCP' }] };
}
const upsert = (p: PodState): ClusterEvent => ({ type: 'upsert', kind: 'Pod', object: p });

// A default-deny egress policy for app=locked, in place before any pod.
const baseEvents = (): ClusterEvent[] => eventsBetween(null, decodeObjects([
  makeNamespace('shop'),
  makePolicy('shop', 'deny-egress', { podSelector: { matchLabels: { app: 'locked' } }, policyTypes: ['Egress'] }),
], 'test'));

function setup() {
  const backend = new SlowBackend();
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => { logs.push(JSON.parse(line) as Record<string, unknown>); } });
  const committed = new CommitTracker(new Dataplane(backend));
  const loop = new AgentLoop({ compiler: new NodeCompiler(NODE), dataplane: committed, metrics: new AgentMetrics({ processMetrics: false }), logger, retryMs: 10 });
  const gate = new CniPodGate({ node: NODE, sink: loop, committed, logger });
  const kernelHas = (ip: string): boolean => backend.fake.dump().includes(ip);
  return { backend, logs, committed, loop, gate, kernelHas };
}

async function synced(s: ReturnType<typeof setup>, extra: ClusterEvent[] = []): Promise<void> {
  s.gate.events([...baseEvents(), ...extra]);
  s.gate.synced();
  await s.loop.idle();
}

const add = (name: string, ips: string[], o: { uid?: string; containerId?: string } = {}) =>
  ({ namespace: 'shop', name, uid: o.uid ?? `uid-${name}`, containerId: o.containerId ?? `ctr-${name}`, ips });

test('a selected pod the API knows without addresses is programmed with the plugin\'s, and the answer waits for the commit', async () => {
  const s = setup();
  await synced(s, [upsert(pod('locked-1', { labels: { app: 'locked' } }))]);
  assert.equal(s.kernelHas('10.244.0.5'), false);
  s.backend.delayMs = 150;
  const answer = await s.gate.add(add('locked-1', ['10.244.0.5/24']), 2000);
  const answeredAt = performance.now();
  assert.deepEqual(answer, { result: 'ok', detail: 'rules committed' });
  assert.ok(s.kernelHas('10.244.0.5'), 'the address is in the kernel when the answer comes');
  const commit = s.backend.committedAt.at(-1) ?? Infinity;
  assert.ok(commit <= answeredAt, 'answered after the transaction was committed');
  await s.loop.stop();
});

test('a pod selected by no policy is answered at once, before its transaction commits', async () => {
  const s = setup();
  await synced(s, [upsert(pod('free-1', { labels: { app: 'free' } }))]);
  s.backend.delayMs = 300;
  const started = performance.now();
  const answer = await s.gate.add(add('free-1', ['10.244.0.6']), 2000);
  assert.deepEqual(answer, { result: 'ok', detail: 'selected by no policy' });
  assert.equal(s.committed.holds('shop/free-1', ['10.244.0.6']), false, 'answered before the commit');
  assert.ok(performance.now() - started < 250);
  await s.loop.idle();
  assert.ok(s.committed.holds('shop/free-1', ['10.244.0.6']), 'committed all the same (it is a peer of other pods\' rules)');
  await s.loop.stop();
});

test('before the first sync even a pod no known policy selects waits (a policy of the listing may not be in yet)', async () => {
  const s = setup();
  s.gate.events([upsert(pod('free-2', { labels: { app: 'free' } }))]);
  let answered = false;
  const pending = s.gate.add(add('free-2', ['10.244.0.20']), 2000).then((a) => { answered = true; return a; });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(answered, false);
  s.gate.events(baseEvents());
  s.gate.synced();
  assert.deepEqual(await pending, { result: 'ok', detail: 'rules committed' });
  await s.loop.stop();
});

test('a pod not yet known from the API is waited for, then programmed; one that never comes is an error after the bound', async () => {
  const s = setup();
  await synced(s);
  const pending = s.gate.add(add('locked-2', ['10.244.0.7/24']), 2000);
  setTimeout(() => s.gate.events([upsert(pod('locked-2', { labels: { app: 'locked' } }))]), 50);
  assert.deepEqual(await pending, { result: 'ok', detail: 'rules committed' });
  assert.ok(s.kernelHas('10.244.0.7'));

  const started = performance.now();
  const never = await s.gate.add(add('ghost', ['10.244.0.8/24']), 100);
  assert.equal(never.result, 'error');
  assert.match((never as Extract<CniAnswer, { result: 'error' }>).message, /shop\/ghost .*not known on node node-1/);
  assert.ok(performance.now() - started >= 95);
  assert.equal(s.kernelHas('10.244.0.8'), false);
  await s.loop.stop();
});

test('a recreated pod of the same name (another uid) waits for its own object', async () => {
  const s = setup();
  await synced(s, [upsert(pod('locked-3', { labels: { app: 'locked' }, uid: 'old' }))]);
  const pending = s.gate.add(add('locked-3', ['10.244.0.9'], { uid: 'new' }), 2000);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(s.kernelHas('10.244.0.9'), false, 'not given to the old object');
  s.gate.events([upsert(pod('locked-3', { labels: { app: 'locked' }, uid: 'new' }))]);
  assert.equal((await pending).result, 'ok');
  assert.ok(s.kernelHas('10.244.0.9'));
  await s.loop.stop();
});

test('before the first sync the answer waits for the full reconcile', async () => {
  const s = setup();
  s.gate.events([...baseEvents(), upsert(pod('locked-4', { labels: { app: 'locked' } }))]);
  let answered = false;
  const pending = s.gate.add(add('locked-4', ['10.244.0.10']), 2000).then((a) => { answered = true; return a; });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(answered, false, 'no answer before the source is synced');
  s.gate.synced();
  assert.deepEqual(await pending, { result: 'ok', detail: 'rules committed' });
  assert.ok(s.kernelHas('10.244.0.10'));
  await s.loop.stop();
});

test('later API statuses: none keeps the plugin\'s addresses, an agreeing one is quiet, a disagreeing one is logged', async () => {
  const s = setup();
  await synced(s, [upsert(pod('locked-5', { labels: { app: 'locked' } }))]);
  await s.gate.add(add('locked-5', ['10.244.0.11/24']), 2000);
  s.gate.events([upsert(pod('locked-5', { labels: { app: 'locked', v: '2' } }))]);
  await s.loop.idle();
  assert.ok(s.kernelHas('10.244.0.11'), 'a status without addresses does not take them away');
  s.gate.events([upsert(pod('locked-5', { labels: { app: 'locked' }, ips: ['10.244.0.11'] }))]);
  await s.loop.idle();
  assert.equal(s.logs.filter((l) => l['level'] === 40).length, 0, 'an agreeing status logs no warning');
  s.gate.events([upsert(pod('locked-5', { labels: { app: 'locked' }, ips: ['10.244.0.99'] }))]);
  await s.loop.idle();
  const warning = s.logs.find((l) => l['level'] === 40);
  assert.match(String(warning?.['msg']), /shop\/locked-5: the API status reports 10\.244\.0\.99 but the CNI plugin gave 10\.244\.0\.11/);
  assert.ok(s.kernelHas('10.244.0.11'));
  assert.equal(s.kernelHas('10.244.0.99'), false);
  await s.loop.stop();
});

test('DEL releases the addresses, and a stale status still listing them does not give them back', async () => {
  const s = setup();
  await synced(s, [upsert(pod('locked-6', { labels: { app: 'locked' } }))]);
  await s.gate.add(add('locked-6', ['10.244.0.12/24']), 2000);
  s.gate.events([upsert(pod('locked-6', { labels: { app: 'locked' }, ips: ['10.244.0.12'] }))]);
  await s.loop.idle();
  const del = s.gate.del({ namespace: 'shop', name: 'locked-6', containerId: 'ctr-locked-6', ips: ['10.244.0.12/24'] });
  assert.equal(del.result, 'ok');
  await s.loop.idle();
  assert.equal(s.kernelHas('10.244.0.12'), false, 'released at DEL');
  s.gate.events([upsert(pod('locked-6', { labels: { app: 'locked', x: '1' }, ips: ['10.244.0.12'] }))]);
  await s.loop.idle();
  assert.equal(s.kernelHas('10.244.0.12'), false, 'a stale status does not bring it back');
  // A new sandbox of the same pod gets an address again.
  assert.equal((await s.gate.add(add('locked-6', ['10.244.0.13'], { containerId: 'ctr-2' }), 2000)).result, 'ok');
  assert.ok(s.kernelHas('10.244.0.13'));
  // DEL of the old sandbox, late, leaves the new sandbox's addresses.
  s.gate.del({ namespace: 'shop', name: 'locked-6', containerId: 'ctr-locked-6', ips: [] });
  await s.loop.idle();
  assert.ok(s.kernelHas('10.244.0.13'));
  await s.loop.stop();
});

test('a commit that does not come within the bound is an error naming the pod', async () => {
  const s = setup();
  await synced(s, [upsert(pod('locked-7', { labels: { app: 'locked' } }))]);
  s.backend.delayMs = 500;
  const answer = await s.gate.add(add('locked-7', ['10.244.0.14']), 100);
  assert.equal(answer.result, 'error');
  assert.match((answer as Extract<CniAnswer, { result: 'error' }>).message, /shop\/locked-7: its rules were not committed to the kernel within 100 ms/);
  await s.loop.idle();
  await s.loop.stop();
});

function plugin(command: string, stdin: string, name: string): Promise<{ code: number | null; stdout: string }> {
  return new Promise((done, failed) => {
    const child = spawn(join(CNI_DIR, 'build/netpol-agent-cni'), [], { env: { CNI_COMMAND: command, CNI_CONTAINERID: `ctr-${name}`, CNI_ARGS: `K8S_POD_NAMESPACE=shop;K8S_POD_NAME=${name};K8S_POD_UID=uid-${name}` } });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', failed);
    child.on('close', (code) => done({ code, stdout }));
    // The plugin may answer and exit before reading its configuration (a missing CNI_COMMAND, say): its exit
    // code is the result, and the EPIPE of the write that lost that race is not a failure.
    child.stdin.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') failed(err);
    });
    child.stdin.end(stdin);
  });
}

test('the plugin binary through the real socket: ADD returns prevResult once committed, STATUS, DEL, bad requests', async () => {
  const s = setup();
  const path = join(dir, 'cni.sock');
  const server = new CniServer({ path, gate: s.gate, ready: () => s.loop.ready(), logger: pino({ level: 'silent' }) });
  await server.listen();
  try {
    const status = (cfg: string) => plugin('STATUS', cfg, 'x');
    const conf = (extra = '') => `{"cniVersion":"1.1.0","name":"pods","type":"netpol-agent-cni","socketPath":"${path}","timeoutMs":3000${extra}}`;
    assert.equal((await status(conf())).code, 1, 'not ready before the first reconcile');
    await synced(s, [upsert(pod('locked-8', { labels: { app: 'locked' } }))]);
    assert.equal((await status(conf())).code, 0);
    s.backend.delayMs = 100;
    const prev = '{"cniVersion":"1.1.0","ips":[{"address":"10.244.0.15/24"}]}';
    const r = await plugin('ADD', conf(`,"prevResult":${prev}`), 'locked-8');
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.stdout, `${prev}\n`);
    assert.ok(s.kernelHas('10.244.0.15'));
    assert.equal((await plugin('DEL', conf(`,"prevResult":${prev}`), 'locked-8')).code, 0);
    await s.loop.idle();
    assert.equal(s.kernelHas('10.244.0.15'), false);
    const refused = await plugin('ADD', conf(',"prevResult":{"ips":[{"address":"not-an-ip"}]}'), 'locked-8');
    assert.equal(JSON.parse(refused.stdout).code, 100);
    assert.match(JSON.parse(refused.stdout).details, /not an IP address/);
  } finally {
    await server.close();
    await s.loop.stop();
  }
});
