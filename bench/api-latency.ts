// Enforcement latency through the real API server: from an API write returning to the first probe (real
// packets between sandbox pods) that sees the new verdict, for five kinds of change, in a cluster of
// 1,000 pods and 200 policies from the synthetic generator (API objects bound to nodes nobody runs, their
// status patched as a kubelet would) plus the probed pods, which the sandbox kubelet runs on node-1
// (server, agent measured) and node-2 (client). Also the API-server cost of the measured agent, whose
// connection goes through a counting relay: the bytes of its initial list, and bytes per second received
// at this benchmark's churn. Needs root and the cluster binaries (test/e2e/cluster/build.sh).
//   npm run bench:api      (node build/bench/api-latency.js [changes per kind, default 200])
// Probe resolution: a probe (TCP connect, 300 ms timeout) is launched every PROBE_EVERY_MS from the
// write's return; the latency is the launch time of the first probe with the new verdict.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PodState, PolicyState } from '../src/api';
import { policyJson } from './manifests';
import { pathOf, type KubeObject } from '../test/support/api-tier/kube';
import { Tier } from '../test/support/api-tier/tier';
import { percentile, printTable } from './report';
import { SyntheticGenerator } from './synthetic-cluster';

const PROBE_EVERY_MS = 5;
const PROBE_TIMEOUT_MS = 300;
const GIVE_UP_MS = 10_000;
const COST_PORT = 16443;
const RELAY = join(__dirname, '../test/support/api-tier/relay.js');

export function policyObject(p: PolicyState): KubeObject {
  return policyJson(p) as KubeObject;
}
function podObject(p: PodState, node: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: p.name, namespace: p.namespace, labels: p.labels },
    spec: { nodeName: node, terminationGracePeriodSeconds: 0, containers: [{ name: 'main', image: 'busybox:e2e', ports: p.ports.map((x) => ({ ...(x.name !== undefined ? { name: x.name } : {}), containerPort: x.port, protocol: x.protocol })) }] },
  };
}

async function inBatches<T>(items: readonly T[], size: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

interface Relay {
  child: ChildProcess;
  bytes(): Promise<number>;
}

async function countingRelay(tier: Tier): Promise<Relay> {
  const child = spawn('ip', ['netns', 'exec', tier.sandbox.nodeNetnsName('node-1'), process.execPath, RELAY, `127.0.0.1:${COST_PORT}`, `${tier.cluster.nodeIp}:6443`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: ((line: string) => void)[] = [];
  let partial = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    const all = (partial + d).split('\n');
    partial = all.pop() ?? '';
    for (const l of all) lines.shift()?.(l);
  });
  await new Promise<void>((resolve) => lines.push(() => resolve()));
  return {
    child,
    bytes: () => new Promise((resolve) => {
      lines.push((l) => resolve(Number(l.split(' ')[2])));
      child.kill('SIGUSR2');
    }),
  };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root: network namespaces and nftables');
  const perKind = Number(process.argv[2] ?? 200);
  const t0 = Date.now();
  const tier = await Tier.start({ nodes: ['node-1', 'node-2'], resyncPeriod: '5m', onLog: (l) => console.log(`# ${l}`) });
  let relay: Relay | null = null;
  try {
    const kube = tier.kube;
    // The synthetic cluster: 1,000 pods on ten nodes nobody runs, 200 policies.
    const gen = new SyntheticGenerator({ seed: 11, namespaces: 20, nodes: 10, pods: 1000, policies: 200 });
    const synthetic = gen.cluster();
    for (const ns of synthetic.namespaces) await kube.create(pathOf('Namespace'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns.name, labels: ns.labels } });
    await inBatches(synthetic.pods, 20, async (p) => {
      await kube.create(pathOf('Pod', p.namespace), podObject(p, `virtual-${p.nodeName}`));
      await kube.patch(`${pathOf('Pod', p.namespace, p.name)}/status`, { status: { phase: 'Running', podIP: p.ips[0], podIPs: p.ips.map((ip) => ({ ip })) } });
    });
    await inBatches(synthetic.policies, 20, (p) => kube.create(pathOf('NetworkPolicy', p.namespace), policyObject(p)));
    console.log(`# cluster filled: ${synthetic.pods.length} pods, ${synthetic.policies.length} policies, ${synthetic.namespaces.length} namespaces in ${((Date.now() - t0) / 1000).toFixed(0)} s`);

    // The probed pods: a server on node-1 (isolated by a deny-all policy) and a client on node-2.
    await kube.create(pathOf('Namespace'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'lat' } });
    await kube.create(pathOf('Namespace'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'latc', labels: { zone: 'a' } } });
    const server = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'server', namespace: 'lat', labels: { app: 'server' } }, spec: { nodeName: 'node-1', terminationGracePeriodSeconds: 0, containers: [{ name: 'main', image: 'busybox:e2e', ports: [{ name: 'http', containerPort: 80 }] }] } };
    await kube.create(pathOf('Pod', 'lat'), server);
    await kube.create(pathOf('Pod', 'latc'), { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'client', namespace: 'latc', labels: { role: 'client' } }, spec: { nodeName: 'node-2', terminationGracePeriodSeconds: 0, containers: [{ name: 'main', image: 'busybox:e2e' }] } });
    await tier.kubelet.whenRunning('lat/server');
    await tier.kubelet.whenRunning('latc/client');
    const serverIp = tier.kubelet.ipsOf('lat/server')[0] as string;
    const policies = pathOf('NetworkPolicy', 'lat');
    await kube.create(policies, { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'deny', namespace: 'lat' }, spec: { podSelector: { matchLabels: { app: 'server' } }, policyTypes: ['Ingress'] } });

    // The measured agent (node-1) reconnects through the counting relay: its initial list is counted.
    relay = await countingRelay(tier);
    const kubeconfig = join(tier.dir, 'cost.kubeconfig');
    writeFileSync(kubeconfig, readFileSync(tier.saKubeconfig, 'utf8').replace(/server: .*/, `server: https://127.0.0.1:${COST_PORT}`));
    await tier.stopAgent('node-1');
    tier.startAgent('node-1', kubeconfig);
    await tier.waitAgentReady('node-1', 120_000);
    const initialBytes = await relay.bytes();
    const listJson = (await Promise.all(['/api/v1/pods', '/api/v1/namespaces', '/apis/networking.k8s.io/v1/networkpolicies'].map(async (p) => JSON.stringify(await kube.get(p)).length))).reduce((a, b) => a + b, 0);

    const probe = async (toIp: string): Promise<boolean> => {
      const [r] = await tier.sandbox.probe([{ from: 'latc/client', toIp, port: 80, protocol: 'TCP', timeoutMs: PROBE_TIMEOUT_MS }]);
      return r?.outcome === 'connected' || r?.outcome === 'refused';
    };
    /** From `since` (a write's return), launches probes until one sees `allowed`; its launch time - since. */
    const latency = async (since: number, allowed: boolean, toIp = serverIp): Promise<number> => {
      let found: number | null = null;
      const inflight: Promise<void>[] = [];
      while (found === null) {
        const launched = performance.now();
        if (launched - since > GIVE_UP_MS) throw new Error(`no ${allowed ? 'allowed' : 'denied'} verdict within ${GIVE_UP_MS} ms`);
        inflight.push(probe(toIp).then((got) => { if (got === allowed && (found === null || launched < found)) found = launched; }));
        await new Promise((r) => setTimeout(r, PROBE_EVERY_MS));
      }
      await Promise.all(inflight);
      return Math.max(0, (found as number) - since);
    };
    const settle = async (allowed: boolean, toIp = serverIp): Promise<void> => {
      for (let i = 0; i < 3; i++) if ((await probe(toIp)) !== allowed) i = -1;
    };
    const samples = new Map<string, number[]>();
    const record = (kind: string, ms: number): void => {
      const list = samples.get(kind) ?? [];
      list.push(ms);
      samples.set(kind, list);
    };
    const bytesBeforeChurn = await relay.bytes();
    const churnStart = performance.now();
    let writes = 0;

    await settle(false);
    const allowClient = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'allow-client', namespace: 'lat' }, spec: { podSelector: { matchLabels: { app: 'server' } }, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { role: 'client' } } }] }] } };
    for (let i = 0; i < perKind; i++) {
      await kube.create(policies, allowClient);
      writes++;
      record('policy create', await latency(performance.now(), true));
      await kube.delete(`${policies}/allow-client`);
      writes++;
      record('policy delete', await latency(performance.now(), false));
    }

    await kube.create(policies, { ...allowClient, metadata: { name: 'allow-access', namespace: 'lat' }, spec: { podSelector: { matchLabels: { app: 'server' } }, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { access: 'true' } } }] }] } });
    for (let i = 0; i < perKind; i++) {
      const on = i % 2 === 0;
      await kube.patch(pathOf('Pod', 'latc', 'client'), { metadata: { labels: { access: on ? 'true' : null } } });
      writes++;
      record('pod relabel', await latency(performance.now(), on));
    }
    await kube.delete(`${policies}/allow-access`);
    await settle(false);

    await kube.create(policies, { ...allowClient, metadata: { name: 'allow-zone', namespace: 'lat' }, spec: { podSelector: { matchLabels: { app: 'server' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { zone: 'b' } } }] }] } });
    for (let i = 0; i < perKind; i++) {
      const on = i % 2 === 0;
      await kube.patch(pathOf('Namespace', undefined, 'latc'), { metadata: { labels: { zone: on ? 'b' : 'a' } } });
      writes++;
      record('namespace relabel', await latency(performance.now(), on));
    }
    await kube.delete(`${policies}/allow-zone`);
    await settle(false);

    // A new pod on node-1 selected by the deny policy: reachable until the agent isolates it.
    for (let i = 0; i < perKind; i++) {
      const key = `lat/new-${i}`;
      const reported = new Promise<{ ip: string; at: number }>((resolve) => {
        let ip = '';
        tier.kubelet.onWired = (k, ips) => { if (k === key) ip = ips[0] as string; };
        tier.kubelet.onReported = (k, at) => { if (k === key) resolve({ ip, at }); };
      });
      await kube.create(pathOf('Pod', 'lat'), { ...server, metadata: { name: `new-${i}`, namespace: 'lat', labels: { app: 'server' } } });
      writes++;
      const { ip, at } = await reported;
      record('new pod on the node', await latency(at, false, ip));
      await kube.delete(pathOf('Pod', 'lat', `new-${i}`), 0);
    }
    tier.kubelet.onWired = null;
    tier.kubelet.onReported = null;
    const churnSeconds = (performance.now() - churnStart) / 1000;
    const churnBytes = (await relay.bytes()) - bytesBeforeChurn;

    console.log(`\nenforcement latency through the real API server (write returned -> first probe with the new verdict; probes every ${PROBE_EVERY_MS} ms), ${synthetic.pods.length + 2} pods, ${synthetic.policies.length + 1} policies:`);
    printTable(['change', 'n', 'median ms', 'p90 ms', 'p99 ms', 'max ms', 'p99 < 100 ms'], [...samples.entries()].map(([kind, s]) => [kind, String(s.length), percentile(s, 0.5).toFixed(1), percentile(s, 0.9).toFixed(1), percentile(s, 0.99).toFixed(1), Math.max(...s).toFixed(1), percentile(s, 0.99) < 100 ? 'yes' : 'NO']));
    console.log('API-server cost of one agent (bytes it received through the relay, TLS included):');
    printTable(['figure', 'value'], [
      ['initial list + watch start (wire)', `${(initialBytes / 1024).toFixed(0)} KiB`],
      ['the three lists as JSON (admin GET)', `${(listJson / 1024).toFixed(0)} KiB`],
      ['churn: writes', `${writes} in ${churnSeconds.toFixed(0)} s (${(writes / churnSeconds).toFixed(1)}/s, plus the status patches of new pods)`],
      ['churn: bytes received', `${(churnBytes / 1024).toFixed(0)} KiB, ${(churnBytes / churnSeconds / 1024).toFixed(1)} KiB/s, ${(churnBytes / writes).toFixed(0)} B per write`],
      ['agent RSS (node-1)', `${(tier.agentRss('node-1') / 2 ** 20).toFixed(0)} MiB`],
    ]);
  } finally {
    relay?.child.kill('SIGTERM');
    await tier.stop();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
