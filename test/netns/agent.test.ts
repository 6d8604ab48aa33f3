// `netpol-agent run` for real: the agent process runs inside a sandbox node's network namespace with
// the file datastore and programs that node's nftables through the addon; verdicts come from real
// packets between pods that are network namespaces. Needs root.
//   node --test build/test/netns/agent.test.js
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { Sandbox } from '../../src/sandbox';
import type { ProbeOutcome } from '../../src/sandbox';
import { AGENT_MAIN, NodeAgent } from '../support/node-agent';
import { makeNamespace, makePod, makePolicy } from '../support/builders';

const SKIP = process.getuid?.() !== 0 ? 'needs root (network namespaces, nftables)' : false;
const TABLE = `agent_test_${process.pid}`;
const LISTEN = '127.0.0.1:9977';
const SERVER_IP = '10.61.1.10';
const PROBE_MS = 500;

const cluster = [
  makeNamespace('shop'),
  makePod('shop', 'server', { node: 'node-1', labels: { app: 'server' }, ips: [SERVER_IP], ports: [{ name: 'http', containerPort: 80 }] }),
  makePod('shop', 'client-ok', { node: 'node-2', labels: { access: 'true' }, ips: ['10.61.2.11'] }),
  makePod('shop', 'client-no', { node: 'node-2', labels: {}, ips: ['10.61.2.12'] }),
];
const allowAccess = makePolicy('shop', 'server-in', { podSelector: { matchLabels: { app: 'server' } }, ingress: [{ from: [{ podSelector: { matchLabels: { access: 'true' } } }], ports: [{ port: 'http' }] }] });
const allowAdminsOnly = makePolicy('shop', 'server-in', { podSelector: { matchLabels: { app: 'server' } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'admin' } } }], ports: [{ port: 'http' }] }] });

let sandbox: Sandbox;
let dir: string;
let agent: ChildProcess | null = null;
const nodeAgent = new NodeAgent(() => sandbox, () => dir, { node: 'node-1', listen: LISTEN, table: TABLE, extraArgs: ['--resync-period', '0'] });

const yamlOf = (...objects: object[]): string => objects.map((o) => stringify(o)).join('---\n');

function writePolicy(text: string): void {
  const file = join(dir, 'policy.yaml');
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}


async function waitReady(): Promise<void> {
  await nodeAgent.waitFor(() => '/readyz', async () => ((await nodeAgent.get('/readyz')).status === 200 ? true : null));
}

async function probe(from: string): Promise<ProbeOutcome> {
  const [r] = await sandbox.probe([{ from, toIp: SERVER_IP, port: 80, protocol: 'TCP', timeoutMs: PROBE_MS }]);
  return r?.outcome ?? 'error';
}

async function verdicts(): Promise<string> {
  return `client-ok ${await probe('shop/client-ok')}, client-no ${await probe('shop/client-no')}`;
}

async function waitVerdicts(expected: string): Promise<void> {
  let last = '';
  await nodeAgent.waitFor(() => `verdicts "${expected}" (last: ${last})`, async () => {
    last = await verdicts();
    return last === expected ? true : null;
  });
}

async function rulesJson(query = ''): Promise<{ sync: { generation: number; lastError: { message: string } | null; ready: boolean }; pods: { pod: string; ingress: { isolatedBy: string[]; nftables: { chain: string } | null; rules: { rule: string; peers: string[] }[] } }[]; notEnforceable: { policy: string; reason: string }[] }> {
  return JSON.parse((await nodeAgent.get(`/rules${query}`)).body);
}

before(async () => {
  if (SKIP) return;
  dir = mkdtempSync(join(tmpdir(), 'agent-netns-'));
  writeFileSync(join(dir, 'cluster.yaml'), yamlOf(...cluster));
  writePolicy(yamlOf(allowAccess));
  sandbox = await Sandbox.create({
    prefix: 'agenttest',
    topology: 'routed',
    nodes: ['node-1', 'node-2'],
    pods: [
      { key: 'shop/server', node: 'node-1', ips: [SERVER_IP], ports: [{ port: 80, protocol: 'TCP' }] },
      { key: 'shop/client-ok', node: 'node-2', ips: ['10.61.2.11'], ports: [] },
      { key: 'shop/client-no', node: 'node-2', ips: ['10.61.2.12'], ports: [] },
    ],
  });
  agent = nodeAgent.start();
  await waitReady();
});

after(async () => {
  if (agent !== null) await nodeAgent.stop(agent);
  await sandbox?.destroy();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

test('the policy in the datastore is enforced, and an edit of its file is enforced with real packets', { skip: SKIP }, async () => {
  await waitVerdicts('client-ok connected, client-no timeout');
  writePolicy(yamlOf(allowAdminsOnly));
  await waitVerdicts('client-ok timeout, client-no timeout');
  writePolicy(yamlOf(allowAccess));
  await waitVerdicts('client-ok connected, client-no timeout');
});

test('a broken edit is reported and the last good state stays enforced; an invalid policy is enforced fail-closed', { skip: SKIP }, async () => {
  writePolicy('kind: NetworkPolicy\nspec: [\n');
  await nodeAgent.waitFor(() => 'the parse error in /rules', async () => {
    const r = await rulesJson();
    return /policy\.yaml: document 1 is not valid YAML/.test(r.sync.lastError?.message ?? '') ? r : null;
  });
  assert.match((await nodeAgent.get('/readyz')).body, /^source\/file failing since \S+( \(within the 10 s grace period\))?: .*policy\.yaml: document 1 is not valid YAML/m, '/readyz names the file');
  assert.equal(await verdicts(), 'client-ok connected, client-no timeout');

  writePolicy(yamlOf(makePolicy('shop', 'server-in', { podSelector: { matchLabels: { app: 'server' } }, ingress: [{ from: [{ ipBlock: { cidr: '10.61.0.0/33' } }] }] })));
  await waitVerdicts('client-ok timeout, client-no timeout');
  const failClosed = await rulesJson('?policy=shop/server-in');
  assert.match(failClosed.notEnforceable[0]?.reason ?? '', /NetworkPolicy shop\/server-in: spec\.ingress\[0\]\.from\[0\]\.ipBlock\.cidr/);
  assert.deepEqual(failClosed.pods.map((p) => p.pod), ['shop/server']);
  assert.deepEqual(failClosed.pods[0]?.ingress.rules, [], 'isolated with no allow rule');

  writePolicy(yamlOf(allowAccess));
  await waitVerdicts('client-ok connected, client-no timeout');
  assert.deepEqual((await rulesJson()).notEnforceable, []);
});

test('/rules (JSON and text, through `netpol-agent rules`), /readyz and /metrics answer', { skip: SKIP }, async () => {
  const rules = await rulesJson('?pod=shop/server&verbose=1');
  const server = rules.pods[0];
  assert.equal(server?.pod, 'shop/server');
  assert.deepEqual(server?.ingress.isolatedBy, ['shop/server-in']);
  assert.match(server?.ingress.nftables?.chain ?? '', /^in_[0-9a-f]{16}$/);
  // The chain /rules names is the one the kernel holds.
  const kernel = execFileSync('ip', ['netns', 'exec', nodeAgent.netns(), 'nft', 'list', 'chain', 'inet', TABLE, server?.ingress.nftables?.chain ?? ''], { encoding: 'utf8' });
  assert.match(kernel, /counter packets \d+ bytes \d+ drop/);
  const text = await sandbox.exec('node:node-1', [process.execPath, AGENT_MAIN, 'rules', '--socket', nodeAgent.debugSocket, '--pod', 'shop/server', '--verbose'], 10_000);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^node node-1 {2}table inet agent_test_\d+\nsync: ready/);
  assert.match(text.stdout, /rule shop\/server-in\/ingress\/0\n {8}peers: podSelector access=true\n {8}ports: TCP\/http {2}\(resolved: TCP\/80\)\n {8}1 resolved address\(es\) on those ports: 10\.61\.2\.11/);
  const metrics = (await nodeAgent.get('/metrics')).body;
  assert.match(metrics, /netpol_agent_programming_latency_seconds_count\{kind="NetworkPolicy"\} [1-9]/);
  assert.match(metrics, /netpol_agent_transactions_total\{type="full",result="ok"\} 1/);
  assert.match(metrics, /netpol_agent_errors_total\{stage="source"\} [1-9]/);
  assert.match(metrics, /netpol_agent_objects\{kind="Pod"\} 3/);
});

test('a restart (SIGTERM, start again) keeps enforcing throughout, then the table is removed by cleanup', { skip: SKIP }, async () => {
  const wrong: string[] = [];
  let rounds = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const v = await verdicts();
      if (v !== 'client-ok connected, client-no timeout') wrong.push(`round ${rounds}: ${v}`);
      rounds++;
    }
  })();
  try {
    for (let restart = 0; restart < 2; restart++) {
      assert.ok(agent !== null);
      assert.equal(await nodeAgent.stop(agent), 0, 'a clean exit on SIGTERM');
      agent = null;
      await new Promise((r) => setTimeout(r, 1500)); // no agent at all for a while: the kernel keeps enforcing
      agent = nodeAgent.start();
      await waitReady();
    }
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    running = false;
    await loop;
  }
  assert.ok(rounds >= 4, `the probe loop ran (${rounds} rounds)`);
  assert.deepEqual(wrong, []);
  assert.match(nodeAgent.log, /"type":"full","events":5,"elements":\d+,"operations":0,/, 'the restarted agent adopted the table as it was: nothing to write');

  assert.ok(agent !== null);
  await nodeAgent.stop(agent);
  agent = null;
  const cleanup = await sandbox.exec('node:node-1', [process.execPath, AGENT_MAIN, 'cleanup', '--table', TABLE], 10_000);
  assert.equal(cleanup.stdout, `deleted table inet ${TABLE}\n`, cleanup.stderr);
  assert.equal(await probe('shop/client-no'), 'connected', 'no table, no policy');
});
