// Denied-traffic logs and counters of `netpol-agent run` with real packets: the agent runs in a sandbox
// node's namespace, reads its nflog group through the addon, and a denied connection attempt (SYN and
// its retransmission) becomes exactly one aggregated log line naming the pods, the port and the
// policy; /drops, the counters in /rules and /metrics move. Needs root.
//   node --test build/test/netns/drops.test.js
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { Sandbox } from '../../src/sandbox';
import { NodeAgent } from '../support/node-agent';
import { makeNamespace, makePod, makePolicy } from '../support/builders';

const SKIP = process.getuid?.() !== 0 ? 'needs root (network namespaces, nftables)' : false;
const TABLE = `drops_test_${process.pid}`;
const LISTEN = '127.0.0.1:9977';
const SERVER_IP = '10.62.1.10';
const WEB_IP = '10.62.1.11';
const PROBE_MS = 500;

const cluster = [
  makeNamespace('shop'),
  makePod('shop', 'server', { node: 'node-1', labels: { app: 'server' }, ips: [SERVER_IP], ports: [{ name: 'http', containerPort: 80 }] }),
  makePod('shop', 'client-ok', { node: 'node-2', labels: { access: 'true' }, ips: ['10.62.2.11'] }),
  makePod('shop', 'client-no', { node: 'node-2', labels: {}, ips: ['10.62.2.12'] }),
  makePod('shop', 'web', { node: 'node-1', labels: { app: 'web' }, ips: [WEB_IP], ports: [{ containerPort: 80 }] }),
];
/** In audit: evaluated and logged, not enforced. */
const auditWeb = {
  ...(makePolicy('shop', 'web-in', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { access: 'true' } } }] }] }) as { metadata: object }),
};
(auditWeb.metadata as { annotations?: Record<string, string> }).annotations = { 'netpol-agent.io/enforcement': 'audit' };
const allowAccess = makePolicy('shop', 'server-in', { podSelector: { matchLabels: { app: 'server' } }, ingress: [{ from: [{ podSelector: { matchLabels: { access: 'true' } } }], ports: [{ port: 'http' }] }] });

let sandbox: Sandbox;
let dir: string;
let agent: ChildProcess | null = null;
const nodeAgent = new NodeAgent(() => sandbox, () => dir, { node: 'node-1', listen: LISTEN, table: TABLE, extraArgs: ['--resync-period', '0', '--drop-log-window', '3s'] });

const yamlOf = (...objects: object[]): string => objects.map((o) => stringify(o)).join('---\n');

function writePolicy(text: string): void {
  const file = join(dir, 'policy.yaml');
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}


interface LoggedDrop {
  drop: { verdict: string; direction: string; src: { ip: string; pod?: string }; dst: { ip: string; pod?: string }; protocol: string; port: number; count: number; isolatedBy: string[]; rules: string[]; reason: string; firstSeen: string; lastSeen: string };
  msg: string;
}

function loggedDrops(): LoggedDrop[] {
  return nodeAgent.log
    .split('\n')
    .filter((l) => l.includes('"drop":'))
    .map((l) => JSON.parse(l) as LoggedDrop);
}

interface Counters {
  chain: string;
  sharedBy: number;
  allowed: { rule: string; packets: number; bytes: number }[];
  allowedTotal: { packets: number; bytes: number };
  dropped: { packets: number; bytes: number };
}

async function serverCounters(): Promise<Counters> {
  const r = JSON.parse((await nodeAgent.get('/rules?pod=shop/server')).body) as { pods: { ingress: { counters?: Counters } }[] };
  const c = r.pods[0]?.ingress.counters;
  assert.ok(c, 'the server is isolated for ingress and its counters are shown');
  return c;
}

/**
 * The server's counters once `moved` holds of them: /rules serves a listing of the counters for up to
 * a second after it ended (Observability), so a packet shows in the next listing, not at once.
 */
function serverCountersWhen(what: string, moved: (c: Counters) => boolean): Promise<Counters> {
  return nodeAgent.waitFor(() => what, async () => {
    const c = await serverCounters();
    return moved(c) ? c : null;
  });
}

before(async () => {
  if (SKIP) return;
  dir = mkdtempSync(join(tmpdir(), 'drops-netns-'));
  writeFileSync(join(dir, 'cluster.yaml'), yamlOf(...cluster));
  writePolicy(yamlOf(allowAccess, auditWeb));
  sandbox = await Sandbox.create({
    prefix: 'droptest',
    topology: 'routed',
    nodes: ['node-1', 'node-2'],
    pods: [
      { key: 'shop/server', node: 'node-1', ips: [SERVER_IP], ports: [{ port: 80, protocol: 'TCP' }] },
      { key: 'shop/client-ok', node: 'node-2', ips: ['10.62.2.11'], ports: [] },
      { key: 'shop/client-no', node: 'node-2', ips: ['10.62.2.12'], ports: [] },
      { key: 'shop/web', node: 'node-1', ips: [WEB_IP], ports: [{ port: 80, protocol: 'TCP' }] },
    ],
  });
  agent = nodeAgent.start();
  await nodeAgent.waitFor(() => '/readyz', async () => ((await nodeAgent.get('/readyz')).status === 200 ? true : null));
});

after(async () => {
  if (agent !== null) await nodeAgent.stop(agent);
  await sandbox?.destroy();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

test('a denied connection attempt is one aggregated log line with the pods, the port and the policy; /drops and the counters show it', { skip: SKIP }, async () => {
  const before = await serverCounters();
  const [ok] = await sandbox.probe([{ from: 'shop/client-ok', toIp: SERVER_IP, port: 80, protocol: 'TCP', timeoutMs: PROBE_MS }]);
  assert.equal(ok?.outcome, 'connected');
  const afterAllowed = await serverCountersWhen('the allowed SYN in the counters', (c) => c.allowedTotal.packets !== before.allowedTotal.packets);
  assert.equal(afterAllowed.allowedTotal.packets, before.allowedTotal.packets + 1, 'the allowing lookup counted the SYN (later packets are established)');
  assert.equal(afterAllowed.dropped.packets, before.dropped.packets);
  assert.deepEqual(loggedDrops(), [], 'an allowed connection is not logged');

  // 1.5 s: the SYN and its retransmission after 1 s, both dropped.
  const [denied] = await sandbox.probe([{ from: 'shop/client-no', toIp: SERVER_IP, port: 80, protocol: 'TCP', timeoutMs: 1_500 }]);
  assert.equal(denied?.outcome, 'timeout');
  const lines = await nodeAgent.waitFor(() => 'the aggregated drop line', async () => (loggedDrops().length > 0 ? loggedDrops() : null), 10_000);
  await new Promise((r) => setTimeout(r, 3_500)); // another window: nothing else may come
  assert.equal(loggedDrops().length, 1, `exactly one line:\n${loggedDrops().map((l) => l.msg).join('\n')}`);
  const d = lines[0]?.drop;
  assert.ok(d);
  assert.equal(d.verdict, 'drop');
  assert.equal(d.direction, 'ingress');
  assert.deepEqual(d.src, { ip: '10.62.2.12', pod: 'shop/client-no' });
  assert.deepEqual(d.dst, { ip: SERVER_IP, pod: 'shop/server' });
  assert.equal(d.protocol, 'TCP');
  assert.equal(d.port, 80);
  assert.equal(d.count, 2, 'the SYN and its retransmission, aggregated');
  assert.deepEqual(d.isolatedBy, ['shop/server-in']);
  assert.equal(d.reason, 'ingress of shop/server is isolated by shop/server-in and none of their rules (shop/server-in/ingress/0) allows shop/client-no (10.62.2.12) on TCP/80');

  const afterDenied = await serverCountersWhen('the dropped SYNs in the counters', (c) => c.dropped.packets !== afterAllowed.dropped.packets);
  assert.equal(afterDenied.dropped.packets, afterAllowed.dropped.packets + 2, 'the drop counter counted both SYNs');
  assert.equal(afterDenied.allowedTotal.packets, afterAllowed.allowedTotal.packets);

  const drops = JSON.parse((await nodeAgent.get('/drops?pod=shop/server')).body) as { drops: { src: { pod?: string }; count: number }[] };
  assert.deepEqual(drops.drops.map((x) => [x.src.pod, x.count]), [['shop/client-no', 2]]);
  assert.deepEqual((JSON.parse((await nodeAgent.get('/drops?pod=shop/nobody')).body) as { drops: unknown[] }).drops, []);

  const metrics = (await nodeAgent.get('/metrics')).body;
  assert.match(metrics, /netpol_agent_denied_connections_total\{namespace="shop",direction="ingress",verdict="drop"\} 2/);
  assert.match(metrics, /netpol_agent_policy_packets_total\{namespace="shop",direction="ingress",verdict="dropped"\} [1-9]/);
  assert.doesNotMatch(metrics, /client-no|10\.62\./, 'no pod or address in metric labels');
});

test('GET /explain answers on the cluster the agent heard, as probe --explain does offline', { skip: SKIP }, async () => {
  const res = await nodeAgent.get('/explain?from=shop/client-no&to=shop/server&port=80&protocol=TCP');
  assert.equal(res.status, 200, res.body);
  const e = JSON.parse(res.body) as { allowed: boolean; ingress: { isolatedBy: string[]; closest: { rule: string; needs: string[] }[] } };
  assert.equal(e.allowed, false);
  assert.deepEqual(e.ingress.closest[0], { rule: 'shop/server-in/ingress/0', needs: ['label access=true on pod shop/client-no'] });
  const ok = JSON.parse((await nodeAgent.get('/explain?from=shop/client-ok&to=10.62.1.10&port=80')).body) as { allowed: boolean; ingress: { rule: string } };
  assert.equal(ok.allowed, true);
  assert.equal(ok.ingress.rule, 'shop/server-in/ingress/0');
  assert.equal((await nodeAgent.get('/explain?from=shop/nobody&to=shop/server&port=80')).status, 400);
});

test('a policy in audit lets traffic through and logs it as "would drop"; /rules lists it', { skip: SKIP }, async () => {
  const wouldDrop = (): LoggedDrop[] => loggedDrops().filter((l) => l.drop.verdict === 'would drop');
  const [no] = await sandbox.probe([{ from: 'shop/client-no', toIp: WEB_IP, port: 80, protocol: 'TCP', timeoutMs: PROBE_MS }]);
  assert.equal(no?.outcome, 'connected', 'the audited policy does not drop');
  const [ok] = await sandbox.probe([{ from: 'shop/client-ok', toIp: WEB_IP, port: 80, protocol: 'TCP', timeoutMs: PROBE_MS }]);
  assert.equal(ok?.outcome, 'connected');
  const lines = await nodeAgent.waitFor(() => 'the "would drop" line', async () => (wouldDrop().length > 0 ? wouldDrop() : null), 10_000);
  await new Promise((r) => setTimeout(r, 3_500));
  assert.equal(wouldDrop().length, 1, `one line, for client-no only:\n${wouldDrop().map((l) => l.msg).join('\n')}`);
  const d = lines[0]?.drop;
  assert.ok(d);
  assert.deepEqual([d.src.pod, d.dst.pod, d.port, d.direction], ['shop/client-no', 'shop/web', 80, 'ingress']);
  assert.deepEqual(d.isolatedBy, ['shop/web-in']);
  assert.match(d.reason, /ingress of shop\/web is isolated by shop\/web-in \(in audit: not enforced, the connection went through\) and none of their rules \(shop\/web-in\/ingress\/0\) allows shop\/client-no/);
  const rules = JSON.parse((await nodeAgent.get('/rules')).body) as { audit?: string[]; pods: { pod: string; ingress: { isolated: boolean } }[] };
  assert.deepEqual(rules.audit, ['shop/web-in']);
  assert.equal(rules.pods.find((p) => p.pod === 'shop/web')?.ingress.isolated, false, 'not isolated by what is enforced');
});

test('a restart over moved counters writes nothing to either table, and the counters survive it', { skip: SKIP }, async () => {
  const before = await serverCounters();
  assert.ok(before.dropped.packets >= 2, 'counters moved in the tests above');
  if (agent !== null) assert.equal(await nodeAgent.stop(agent), 0);
  nodeAgent.log = '';
  agent = nodeAgent.start();
  await nodeAgent.waitFor(() => '/readyz', async () => ((await nodeAgent.get('/readyz')).status === 200 ? true : null));
  const syncs = await nodeAgent.waitFor(() => 'two full syncs (enforcing and audit tables)', async () => {
    const lines = nodeAgent.log.split('\n').filter((l) => l.includes('full sync committed')).map((l) => JSON.parse(l) as { operations: number; table?: string });
    return lines.length >= 2 ? lines : null;
  });
  assert.deepEqual(syncs.map((l) => l.operations), [0, 0], `nothing rewritten:\n${nodeAgent.log}`);
  const after = await serverCounters();
  assert.deepEqual(after.dropped, before.dropped);
  assert.deepEqual(after.allowedTotal, before.allowedTotal);
});
