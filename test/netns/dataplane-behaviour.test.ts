// What the dataplane does beyond the upstream suite, with real packets: traffic from the node to its
// pods (kubelet probes) always passes; traffic from an egress-isolated pod to its own node is judged
// by its egress rules; and a restarted dataplane re-syncing over its own table never gives a wrong
// verdict while packets flow.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { NodeCompiler } from '../../src/compiler';
import { execFileSync } from 'node:child_process';
import { DEFAULT_TABLE, Dataplane, checkCniShape, netnsHostFiles } from '../../src/dataplane';
import { KernelNftBackend } from '../../src/dataplane/nft';
import { FakeNft } from '../support/fake-nft';
import { viewFromSnapshot } from '../../src/dataplane/diff';
import { DataplaneLab } from '../../src/probe';
import { GATEWAY_V4 } from '../../src/sandbox';
import { decodeObjects, eventsBetween } from '../../src/source';

const pod = (name: string, node: string, ip: string, labels: Record<string, string>) => ({
  apiVersion: 'v1', kind: 'Pod',
  metadata: { namespace: 'shop', name, labels },
  spec: { nodeName: node, containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 80 }] }] },
  status: { phase: 'Running', podIPs: [{ ip }] },
});
const policy = (name: string, spec: object) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: 'shop', name }, spec });

const base = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
  pod('server', 'node-1', '10.50.1.10', { app: 'server' }),
  pod('client-ok', 'node-1', '10.50.1.11', { access: 'true' }),
  pod('client-no', 'node-2', '10.50.2.12', {}),
  pod('worker', 'node-1', '10.50.1.13', { role: 'worker', access: 'true' }),
  policy('server-ingress', { podSelector: { matchLabels: { app: 'server' } }, ingress: [{ from: [{ podSelector: { matchLabels: { access: 'true' } } }], ports: [{ port: 'http' }] }] }),
  policy('worker-egress', { podSelector: { matchLabels: { role: 'worker' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { app: 'server' } } }], ports: [{ port: 80 }] }] }),
];

let lab: DataplaneLab;
const objects = decodeObjects(base, 'behaviour test');

before(async () => {
  lab = await DataplaneLab.create(objects, 'routed', 'behave');
  await lab.program(eventsBetween(null, objects));
});
after(async () => { await lab?.destroy(); });

const probe = async (from: string, toIp: string, port = 80, timeoutMs = 1000) =>
  (await lab.sandbox.probe([{ from, toIp, port, protocol: 'TCP', timeoutMs }]))[0]?.outcome;

test('the node reaches its isolated pods (kubelet probes); other pods only as policy allows', async () => {
  assert.equal(await probe('node:node-1', '10.50.1.10'), 'connected');
  assert.equal(await probe('shop/client-ok', '10.50.1.10'), 'connected');
  assert.equal(await probe('shop/client-no', '10.50.1.10'), 'timeout');
});

test('an egress-isolated pod reaches its own node only where an egress rule allows the node address', async () => {
  // Nothing listens on the node's port 10250 here: a refusal means the packet got through.
  assert.equal(await probe('shop/client-ok', GATEWAY_V4, 10250), 'refused', 'a pod that is not egress-isolated reaches its node');
  assert.equal(await probe('shop/worker', GATEWAY_V4, 10250), 'timeout', 'egress isolation applies to the node too');
  assert.equal(await probe('shop/worker', '10.50.1.10'), 'connected');
  const allowNode = decodeObjects([...base, policy('worker-to-node', {
    podSelector: { matchLabels: { role: 'worker' } }, policyTypes: ['Egress'],
    egress: [{ to: [{ ipBlock: { cidr: `${GATEWAY_V4}/32` } }], ports: [{ port: 10250 }] }],
  })], 'behaviour test');
  await lab.update(eventsBetween(objects, allowNode));
  assert.equal(await probe('shop/worker', GATEWAY_V4, 10250), 'refused');
  await lab.update(eventsBetween(allowNode, objects));
  assert.equal(await probe('shop/worker', GATEWAY_V4, 10250), 'timeout');
});

test('restarting the dataplane over its own table never gives a wrong verdict while a probe loop runs', async () => {
  const compiler = new NodeCompiler('node-1');
  for (const e of eventsBetween(null, objects)) compiler.apply(e);
  const wrong: string[] = [];
  let rounds = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const results = await lab.sandbox.probe([
        { from: 'shop/client-ok', toIp: '10.50.1.10', port: 80, protocol: 'TCP', timeoutMs: 400 },
        { from: 'shop/client-no', toIp: '10.50.1.10', port: 80, protocol: 'TCP', timeoutMs: 400 },
        { from: 'shop/worker', toIp: '10.50.2.12', port: 80, protocol: 'TCP', timeoutMs: 400 },
      ]);
      const [ok, denied, egressDenied] = results.map((r) => r.outcome);
      if (ok !== 'connected') wrong.push(`round ${rounds}: allowed client got ${ok}`);
      if (denied !== 'timeout') wrong.push(`round ${rounds}: denied client got ${denied}`);
      if (egressDenied !== 'timeout') wrong.push(`round ${rounds}: egress-denied worker got ${egressDenied}`);
      rounds++;
    }
  })();
  try {
    for (let restart = 0; restart < 12; restart++) {
      // A new process would open a new context and start from nothing but the kernel's own table.
      const backend = new KernelNftBackend({ table: DEFAULT_TABLE, netns: lab.sandbox.nodeNetnsPath('node-1') });
      try {
        const report = await new Dataplane(backend).sync(compiler.elements());
        assert.equal(report.operations, 0, 'a restart over an up-to-date table writes nothing');
      } finally {
        backend.close();
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    running = false;
    await loop;
  }
  assert.ok(rounds >= 5, `the probe loop ran (${rounds} rounds)`);
  assert.deepEqual(wrong, []);
});

test('the start-up check sees the real bridged sandbox node as bridged and ready', async () => {
  const bridged = await DataplaneLab.create(objects, 'bridged', 'brcheck');
  try {
    const shape = checkCniShape(netnsHostFiles(bridged.sandbox.nodeNetnsName('node-1')));
    assert.equal(shape.shape, 'bridged');
    assert.equal(shape.problem, null);
    execFileSync('ip', ['netns', 'exec', bridged.sandbox.nodeNetnsName('node-1'), 'sysctl', '-qw', 'net.bridge.bridge-nf-call-iptables=0']);
    assert.match(checkCniShape(netnsHostFiles(bridged.sandbox.nodeNetnsName('node-1'))).problem ?? '', /bridge-nf-call-iptables is 0/);
    assert.equal(checkCniShape(netnsHostFiles(lab.sandbox.nodeNetnsName('node-1'))).shape, 'routed');
  } finally {
    await bridged.destroy();
  }
});

test('someone editing or deleting our table is detected by a reconcile and repaired in the kernel', async () => {
  const netns = lab.sandbox.nodeNetnsName('node-1');
  const nft = (...args: string[]) => execFileSync('ip', ['netns', 'exec', netns, 'nft', ...args], { encoding: 'utf8' });
  const backend = new KernelNftBackend({ table: DEFAULT_TABLE, netns: lab.sandbox.nodeNetnsPath('node-1') });
  const compiler = new NodeCompiler('node-1');
  for (const e of eventsBetween(null, objects)) compiler.apply(e);
  const dataplane = new Dataplane(backend);
  try {
    await dataplane.sync(compiler.elements());
    const tampers: [string, () => void][] = [
      ['an accept rule inserted at the top of forward', () => nft('insert', 'rule', 'inet', DEFAULT_TABLE, 'forward', 'accept')],
      ['the table deleted', () => nft('delete', 'table', 'inet', DEFAULT_TABLE)],
    ];
    for (const [what, tamper] of tampers) {
      tamper();
      assert.equal(await probe('shop/client-no', '10.50.1.10', 80, 500), 'connected', `${what}: the tampering opened traffic`);
      const report = await dataplane.reconcile();
      assert.ok(report.operations > 0, `${what}: detected`);
      assert.equal(await probe('shop/client-no', '10.50.1.10', 80, 500), 'timeout', `${what}: repaired`);
      assert.equal(await probe('shop/client-ok', '10.50.1.10'), 'connected');
      assert.equal((await dataplane.reconcile()).operations, 0);
    }
  } finally {
    backend.close();
  }
});

test('restarting over a stale table (the cluster changed while the agent was down) under a probe loop: no wrong verdict, new verdicts after one sync', async () => {
  const changed = decodeObjects([...base, policy('allow-all-to-server', {
    podSelector: { matchLabels: { app: 'server' } }, ingress: [{ ports: [{ port: 80 }] }],
  })], 'behaviour test');
  const compilerFor = (objs: typeof objects) => {
    const compiler = new NodeCompiler('node-1');
    for (const e of eventsBetween(null, objs)) compiler.apply(e);
    return compiler;
  };
  const states = [{ objs: changed, clientNo: 'connected' }, { objs: objects, clientNo: 'timeout' }];
  const wrong: string[] = [];
  let rounds = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const results = await lab.sandbox.probe([
        { from: 'shop/client-ok', toIp: '10.50.1.10', port: 80, protocol: 'TCP', timeoutMs: 400 },
        { from: 'shop/worker', toIp: '10.50.2.12', port: 80, protocol: 'TCP', timeoutMs: 400 },
        { from: 'shop/worker', toIp: '10.50.1.10', port: 80, protocol: 'TCP', timeoutMs: 400 },
      ]);
      const [ok, egressDenied, workerToServer] = results.map((r) => r.outcome);
      if (ok !== 'connected') wrong.push(`round ${rounds}: allowed client got ${ok}`);
      if (egressDenied !== 'timeout') wrong.push(`round ${rounds}: egress-denied worker got ${egressDenied}`);
      if (workerToServer !== 'connected') wrong.push(`round ${rounds}: worker to server got ${workerToServer}`);
      rounds++;
    }
  })();
  try {
    for (let restart = 0; restart < 6; restart++) {
      const want = states[restart % 2]!;
      const backend = new KernelNftBackend({ table: DEFAULT_TABLE, netns: lab.sandbox.nodeNetnsPath('node-1') });
      try {
        const report = await new Dataplane(backend).sync(compilerFor(want.objs).elements());
        assert.ok(report.operations > 0, 'the table was stale');
      } finally {
        backend.close();
      }
      assert.equal(await probe('shop/client-no', '10.50.1.10', 80, 500), want.clientNo, `restart ${restart}: the new verdict right after the sync`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    running = false;
    await loop;
  }
  assert.ok(rounds >= 5, `the probe loop ran (${rounds} rounds)`);
  assert.deepEqual(wrong, []);
});

test('objects someone else left in our table (another hook, set flags, map types, statements, named objects) are replaced by one reconcile', async () => {
  const netns = lab.sandbox.nodeNetnsName('node-1');
  const nftBatch = (batch: string) => execFileSync('ip', ['netns', 'exec', netns, 'nft', '-f', '-'], { input: batch, encoding: 'utf8' });
  const backend = new KernelNftBackend({ table: DEFAULT_TABLE, netns: lab.sandbox.nodeNetnsPath('node-1') });
  const compiler = new NodeCompiler('node-1');
  for (const e of eventsBetween(null, objects)) compiler.apply(e);
  const dataplane = new Dataplane(backend);
  try {
    await dataplane.sync(compiler.elements());
    const fresh = new FakeNft(DEFAULT_TABLE);
    await new Dataplane(fresh).sync(compiler.elements());
    const want = viewFromSnapshot((await fresh.list())!);
    const t = `inet ${DEFAULT_TABLE}`;
    const tampers: [string, string][] = [
      ['a set with a timeout, a constant set, a data map, a counter and a quota', [
        `add set ${t} weird { type ipv4_addr; flags timeout; timeout 1h; }`,
        `add set ${t} konst { type ipv4_addr; flags constant; elements = { 10.0.0.1 } }`,
        `add map ${t} datamap { type ipv4_addr : ipv4_addr; elements = { 10.0.0.1 : 10.0.0.2 } }`,
        `add counter ${t} cnt`,
        `add quota ${t} q { 100 mbytes }`,
        `add chain ${t} other { type filter hook prerouting priority -5; policy accept; }`,
        `add rule ${t} other ip saddr 1.2.3.4 meta mark set 3 counter name "cnt" accept`,
      ].join('\n')],
      ['our forward chain on another hook', `delete chain ${t} forward\nadd chain ${t} forward { type filter hook input priority 10; policy accept; }`],
      ['one of our maps with another key type', `flush chain ${t} forward\ndelete map ${t} ingress_v4\nadd map ${t} ingress_v4 { type ipv4_addr . inet_service : verdict; }`],
      // Longer than any name we write: only replacing the whole table (in the same transaction) removes it.
      ['a counter whose name we would never write', `add counter ${t} ${'x'.repeat(200)}`],
    ];
    for (const [what, batch] of tampers) {
      nftBatch(batch);
      const report = await dataplane.reconcile();
      assert.ok(report.operations > 0, `${what}: detected`);
      const listed = await backend.list();
      assert.ok(listed !== null);
      assert.deepEqual(viewFromSnapshot(listed), want, `${what}: the kernel differs from a fresh sync`);
      assert.equal(await probe('shop/client-no', '10.50.1.10', 80, 500), 'timeout', `${what}: repaired`);
      assert.equal(await probe('shop/client-ok', '10.50.1.10'), 'connected');
    }
  } finally {
    backend.close();
  }
});
