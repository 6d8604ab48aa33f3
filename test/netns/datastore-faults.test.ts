// The file datastore never fails open, with real packets: `netpol-agent run` on a one-file datastore
// reached through a symbolic link (as a ConfigMap volume is), inside a sandbox node's network namespace.
// The file is deleted, its link swapped to a missing target, overwritten with garbage, a one-line
// scalar, nothing, and a cut copy of itself: after each, nginx still admits only access="true" pods, and
// /readyz names the problem; fixed, /readyz is ready again. Needs root.
//   node --test build/test/netns/datastore-faults.test.js
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { Sandbox } from '../../src/sandbox';
import type { ProbeOutcome } from '../../src/sandbox';
import { NodeAgent } from '../support/node-agent';
import { makeNamespace, makePod, makePolicy } from '../support/builders';

const SKIP = process.getuid?.() !== 0 ? 'needs root (network namespaces, nftables)' : false;
const TABLE = `store_faults_${process.pid}`;
const LISTEN = '127.0.0.1:9977';
const NGINX_IP = '10.63.1.10';
const PROBE_MS = 500;
const ISOLATED = 'client-access connected, client-other timeout';

const objects = [
  makeNamespace('default'),
  makePod('default', 'nginx', { node: 'node-1', labels: { app: 'nginx' }, ips: [NGINX_IP], ports: [{ containerPort: 80 }] }),
  makePod('default', 'client-access', { node: 'node-2', labels: { access: 'true' }, ips: ['10.63.2.11'] }),
  makePod('default', 'client-other', { node: 'node-2', labels: {}, ips: ['10.63.2.12'] }),
  makePolicy('default', 'access-nginx', { podSelector: { matchLabels: { app: 'nginx' } }, ingress: [{ from: [{ podSelector: { matchLabels: { access: 'true' } } }] }] }),
];
const good = objects.map((o) => stringify(o)).join('---\n');

let sandbox: Sandbox;
let dir: string;
let agent: ChildProcess | null = null;
const store = (): string => join(dir, 'store.yaml');
const target = (): string => join(dir, 'data', 'cluster.yaml');
const nodeAgent = new NodeAgent(() => sandbox, store, { node: 'node-1', listen: LISTEN, table: TABLE, extraArgs: ['--resync-period', '0'] });

function writeTarget(text: string): void {
  writeFileSync(`${target()}.tmp`, text);
  renameSync(`${target()}.tmp`, target());
}

function relink(to: string): void {
  symlinkSync(to, `${store()}.tmp`);
  renameSync(`${store()}.tmp`, store());
}

async function probe(from: string): Promise<ProbeOutcome> {
  const [r] = await sandbox.probe([{ from, toIp: NGINX_IP, port: 80, protocol: 'TCP', timeoutMs: PROBE_MS }]);
  return r?.outcome ?? 'error';
}

async function verdicts(): Promise<string> {
  return `client-access ${await probe('default/client-access')}, client-other ${await probe('default/client-other')}`;
}

async function readyz(): Promise<{ status: number; body: string }> {
  return nodeAgent.get('/readyz');
}

before(async () => {
  if (SKIP) return;
  dir = mkdtempSync(join(tmpdir(), 'store-faults-'));
  mkdirSync(join(dir, 'data'));
  writeTarget(good);
  symlinkSync(target(), store());
  sandbox = await Sandbox.create({
    prefix: 'storefault',
    topology: 'routed',
    nodes: ['node-1', 'node-2'],
    pods: [
      { key: 'default/nginx', node: 'node-1', ips: [NGINX_IP], ports: [{ port: 80, protocol: 'TCP' }] },
      { key: 'default/client-access', node: 'node-2', ips: ['10.63.2.11'], ports: [] },
      { key: 'default/client-other', node: 'node-2', ips: ['10.63.2.12'], ports: [] },
    ],
  });
  agent = nodeAgent.start();
  await nodeAgent.waitFor(() => '/readyz 200', async () => ((await readyz()).status === 200 ? true : null));
  await nodeAgent.waitFor(() => 'nginx isolated', async () => ((await verdicts()) === ISOLATED ? true : null));
});

after(async () => {
  if (agent !== null) await nodeAgent.stop(agent);
  await sandbox?.destroy();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

const faults: { readonly name: string; readonly breakIt: () => void; readonly reason: RegExp }[] = [
  { name: 'the file deleted', breakIt: () => unlinkSync(store()), reason: /store\.yaml: cannot read the datastore \(ENOENT\); the last good state stays enforced/ },
  { name: 'its link swapped to a missing target', breakIt: () => relink(join(dir, 'data', 'gone.yaml')), reason: /store\.yaml: cannot read the datastore \(a symbolic link to a missing target, ENOENT\)/ },
  { name: 'garbage', breakIt: () => writeTarget('\u0000\u0001}}} {{{ ::: garbage\n'), reason: /store\.yaml: document 1 is not a Kubernetes object \(a mapping without a kind\)/ },
  { name: 'a one-line scalar', breakIt: () => writeTarget('nginx is fine\n'), reason: /store\.yaml: document 1 is not a Kubernetes object \("nginx is fine"\)/ },
  { name: 'an empty file', breakIt: () => writeTarget(''), reason: /store\.yaml: is empty but held 5 object\(s\)/ },
  // Cut inside the policy's kind, as a reader between a truncate and the rest of a write would see it.
  { name: 'a truncated file', breakIt: () => writeTarget(good.slice(0, good.lastIndexOf('kind: NetworkPolicy') + 'kind: Netw'.length)), reason: /store\.yaml: document 5 is not a Kubernetes object \(kind "Netw", the beginning of NetworkPolicy\)/ },
];

for (const fault of faults) {
  test(`${fault.name}: nginx stays isolated with real packets, /readyz names the problem; fixed, ready again`, { skip: SKIP }, async () => {
    fault.breakIt();
    const notReady = await nodeAgent.waitFor(() => `/readyz naming ${fault.reason}`, async () => {
      const r = await readyz();
      return r.status === 503 && fault.reason.test(r.body) ? r : null;
    });
    assert.match(notReady.body, /^not ready: source\/file: /);
    assert.equal(await verdicts(), ISOLATED, 'the last good state stays enforced');
    if (!existsSync(store()) || readlinkSync(store()) !== target()) relink(target());
    writeTarget(good);
    await nodeAgent.waitFor(() => '/readyz 200 once fixed', async () => ((await readyz()).status === 200 ? true : null));
    assert.equal(await verdicts(), ISOLATED);
  });
}
