// netpol-agent-cni in the real cluster (test/e2e/cluster: kubelet, containerd, the bridge CNI): with the
// plugin chained after bridge, a new pod is isolated from its first instruction; without it, the
// start-up window is open, and this test measures how often and how long. Also the pod start latency the
// plugin adds (p50/p99), and pod start with the agent stopped under each failure policy.
//
// The agent runs as `netpol-agent run --cni-socket` from this checkout, in the node's network namespace
// (where the DaemonSet's hostNetwork pod would run it), with the admin kubeconfig. The plugin is copied
// into containerd's bin_dir (/usr/lib/cni) under a name unique to the run and removed afterwards; the
// conflist of the cluster's own conf_dir is edited by the test (containerd reloads it).
//   E2E_CLUSTER=1 node --test build/test/e2e/cni.test.js     (root; figures on stdout)
// E2E_CNI_TRIALS (default 10) start-up window trials per variant, E2E_CNI_PODS (default 50) pods per
// latency series.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { buildCniPlugin } from '../support/cni-plugin';
import { Cluster, REPO_ROOT } from './cluster';

const ENABLED = process.env.E2E_CLUSTER === '1';
const SKIP = process.getuid?.() !== 0 ? 'needs root (network namespaces, containerd, kubelet)' : !ENABLED ? 'real-cluster tier: run it with E2E_CLUSTER=1' : false;
const TRIALS = Number(process.env.E2E_CNI_TRIALS ?? 10);
const PODS = Number(process.env.E2E_CNI_PODS ?? 50);
const CNI_BIN_DIR = '/usr/lib/cni';

const log = (line: string): void => {
  process.stdout.write(`# ${line}\n`);
};

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

describe('netpol-agent-cni in a real cluster', { skip: SKIP }, () => {
  let cluster: Cluster;
  let agent: ChildProcess | null = null;
  let pluginType = '';
  let conflist = '';
  let originalConflist = '';
  let socketPath = '';
  let agentLog = '';
  let serverIp = '';
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

  async function kubectlApply(yaml: string): Promise<void> {
    await cluster.kubectlOk(['apply', '-f', '-'], { input: yaml });
  }

  /** The conflist as up.sh wrote it, or with our plugin chained last (written whole, then renamed). */
  function chainPlugin(on: boolean, failurePolicy: 'fail-closed' | 'fail-open' = 'fail-closed'): void {
    const conf = JSON.parse(originalConflist) as { plugins: unknown[] };
    if (on) conf.plugins.push({ type: pluginType, socketPath, timeoutMs: 10_000, failurePolicy });
    writeFileSync(`${conflist}.tmp`, JSON.stringify(conf, null, 2));
    renameSync(`${conflist}.tmp`, conflist);
  }

  function askAgent(line: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = createConnection(socketPath);
      let data = '';
      s.on('connect', () => s.write(`${line}\n`));
      s.on('data', (d) => (data += d.toString()));
      s.on('end', () => resolve(data));
      s.on('error', reject);
    });
  }

  async function startAgent(): Promise<void> {
    const out = openSync(agentLog, 'a');
    agent = spawn('nsenter', [`--net=${cluster.netnsPath}`, process.execPath, join(REPO_ROOT, 'bin/netpol-agent'), 'run',
      '--node-name', cluster.nodeName, '--kubeconfig', cluster.kubeconfig, '--metrics-listen', '127.0.0.1:0', '--debug-socket', join(cluster.state, 'agent-debug', 'debug.sock'),
      '--table', `netpol_cni_${cluster.state.slice(-6).replace(/[^a-z0-9]/g, '')}`, '--cni-socket', socketPath, '--log-level', 'info'], { stdio: ['ignore', out, out] });
    for (let i = 0; i < 300; i++) {
      try {
        if ((await askAgent('{"op":"status"}')).includes('"ok"')) return;
      } catch {
        // not listening yet
      }
      await pause(100);
    }
    throw new Error(`the agent did not become ready; its log:\n${readFileSync(agentLog, 'utf8').slice(-3000)}`);
  }

  async function stopAgent(): Promise<void> {
    const child = agent;
    agent = null;
    if (child === null || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }

  /** Creates the pod and resolves with ms until the API reports it Running (a watch, started before). */
  async function timeToRunning(namespace: string, yaml: string, name: string, timeoutMs = 60_000): Promise<number | null> {
    // A list+watch by field selector: it sees the pod whether it is created before or after the watch starts.
    const watch = spawn(join(cluster.state, 'kubectl'), ['get', 'pods', '-n', namespace, '--field-selector', `metadata.name=${name}`, '--watch', '-o', 'jsonpath={.status.phase}{"\\n"}'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const running = new Promise<number | null>((resolve) => {
        let buf = '';
        const timer = setTimeout(() => resolve(null), timeoutMs);
        watch.stdout.setEncoding('utf8').on('data', (d: string) => {
          buf += d;
          if (buf.split('\n').some((l) => l === 'Running' || l === 'Succeeded' || l === 'Failed')) {
            clearTimeout(timer);
            resolve(performance.now());
          }
        });
      });
      const created = performance.now();
      await kubectlApply(yaml);
      const at = await running;
      return at === null ? null : at - created;
    } finally {
      watch.kill();
    }
  }

  before(async () => {
    const pluginBuild = buildCniPlugin();
    cluster = await Cluster.start({ onLog: (l) => log(l) });
    const id = cluster.state.split('-').pop() ?? 'x';
    pluginType = `netpol-agent-cni-e2e-${id}`;
    // A Ctrl-C ends the process through the cluster module's handler (which removes the cluster): the
    // agent and the plugin binary go with it.
    process.once('exit', () => {
      agent?.kill('SIGKILL');
      rmSync(join(CNI_BIN_DIR, pluginType), { force: true });
    });
    copyFileSync(pluginBuild, join(CNI_BIN_DIR, pluginType));
    execFileSync('chmod', ['0755', join(CNI_BIN_DIR, pluginType)]);
    conflist = join(cluster.state, 'cni/net.d/10-bridge.conflist');
    originalConflist = readFileSync(conflist, 'utf8');
    socketPath = join(cluster.state, 'netpol-agent-cni.sock');
    agentLog = join(cluster.state, 'logs/netpol-agent.log');
    await startAgent();
    await kubectlApply(`apiVersion: v1
kind: Namespace
metadata: {name: srv}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: srv}
spec:
  containers: [{name: nginx, image: nginx:e2e, ports: [{containerPort: 80}]}]
`);
    await cluster.kubectlOk(['wait', '-n', 'srv', '--for=condition=Ready', 'pod/server', '--timeout=120s'], { timeoutMs: 130_000 });
    serverIp = (await cluster.kubectlOk(['get', 'pod', '-n', 'srv', 'server', '-o', 'jsonpath={.status.podIP}'])).trim();
    log(`cluster ${cluster.state}, agent with --cni-socket ${socketPath}, server ${serverIp}`);
  });

  after(async () => {
    await stopAgent();
    if (conflist !== '' && originalConflist !== '' && existsSync(conflist)) chainPlugin(false);
    if (pluginType !== '') rmSync(join(CNI_BIN_DIR, pluginType), { force: true });
    if (cluster !== undefined) await cluster.stop();
  });

  /** A namespace whose policy (created before any pod, then given 2 s to reach the agent) denies `type`. */
  async function deniedNamespace(name: string, type: 'Egress' | 'Ingress'): Promise<void> {
    await kubectlApply(`apiVersion: v1
kind: Namespace
metadata: {name: ${name}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: ${name}}
spec: {podSelector: {}, policyTypes: [${type}]}
`);
    await pause(2000);
  }

  // The container's first instruction: every 10 ms for 2 s, a connection attempt in the background
  // (a dropped one waits its full second), each printing the uptime at which it started if it got through.
  const HAMMER = (ip: string) => `S=$(cut -d' ' -f1 /proc/uptime); i=0; while [ $i -lt 200 ]; do (t=$(cut -d' ' -f1 /proc/uptime); timeout 1 wget -q -O /dev/null http://${ip}/ 2>/dev/null && echo "hit $t") & i=$((i+1)); usleep 10000; done; wait; echo "start $S end $(cut -d' ' -f1 /proc/uptime)"`;

  interface Trial { hits: number; openMs: number }

  async function egressTrial(namespace: string, n: number): Promise<Trial> {
    const name = `hammer-${n}`;
    await kubectlApply(`apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: busybox:e2e, command: ["sh", "-c", ${JSON.stringify(HAMMER(serverIp))}]}]
`);
    await cluster.kubectlOk(['wait', '-n', namespace, '--for=jsonpath={.status.phase}=Succeeded', `pod/${name}`, '--timeout=90s'], { timeoutMs: 100_000 });
    const out = await cluster.kubectlOk(['logs', '-n', namespace, name]);
    const hits = [...out.matchAll(/^hit ([\d.]+)$/gm)].map((m) => Number(m[1]));
    const start = Number(/^start ([\d.]+)/m.exec(out)?.[1]);
    assert.ok(Number.isFinite(start), `the hammer printed its start: ${out}`);
    await cluster.kubectl(['delete', 'pod', '-n', namespace, name, '--wait=false']);
    return { hits: hits.length, openMs: hits.length === 0 ? 0 : Math.round((Math.max(...hits) - start) * 1000) };
  }

  function summary(label: string, trials: readonly Trial[], openFor = 'last successful attempt after the first instruction'): string {
    const open = trials.filter((t) => t.hits > 0);
    const ms = open.map((t) => t.openMs).sort((a, b) => a - b);
    return `${label}: window open in ${open.length}/${trials.length} trials; connections through per trial ${trials.map((t) => t.hits).join(',')}; open for (${openFor}) ${ms.length === 0 ? '-' : `min ${ms[0]} / median ${percentile(ms, 50)} / max ${ms[ms.length - 1]} ms`}`;
  }

  test('egress: a default-deny pod never connects out with the plugin; without it, the window is measured', { timeout: 30 * 60_000 }, async () => {
    await deniedNamespace('egress-plugin', 'Egress');
    await deniedNamespace('egress-bare', 'Egress');
    const without: Trial[] = [];
    const withPlugin: Trial[] = [];
    for (let n = 0; n < TRIALS; n++) {
      chainPlugin(false);
      await pause(500);
      without.push(await egressTrial('egress-bare', n));
      chainPlugin(true);
      await pause(500);
      withPlugin.push(await egressTrial('egress-plugin', n));
    }
    chainPlugin(false);
    log(summary('egress without the plugin', without));
    log(summary('egress with the plugin', withPlugin));
    const adds = (readFileSync(agentLog, 'utf8').match(/CNI ADD of pod egress-plugin\//g) ?? []).length;
    assert.ok(adds >= TRIALS, `the runtime ran the plugin for each pod (${adds} ADDs logged)`);
    assert.deepEqual(withPlugin.map((t) => t.hits), withPlugin.map(() => 0), 'no connection got through with the plugin');
  });

  /** The IP host-local gives next: the one after its last reservation. */
  function nextIp(): string {
    const last = readFileSync(join(cluster.state, 'cni/ipam', `npe2e-${cluster.state.split('-').pop() ?? ''}`, 'last_reserved_ip.0'), 'utf8').trim();
    const parts = last.split('.').map(Number);
    return `${parts[0]}.${parts[1]}.${parts[2]}.${(parts[3] ?? 0) + 1}`;
  }

  test('ingress: a default-deny pod is never reached with the plugin; without it, the window is measured', { timeout: 30 * 60_000 }, async () => {
    await deniedNamespace('ingress-plugin', 'Ingress');
    await deniedNamespace('ingress-bare', 'Ingress');
    await kubectlApply(`apiVersion: v1
kind: Pod
metadata: {name: prober, namespace: srv}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: busybox:e2e, command: ["sleep", "3600"]}]
`);
    await cluster.kubectlOk(['wait', '-n', 'srv', '--for=condition=Ready', 'pod/prober', '--timeout=120s'], { timeoutMs: 130_000 });
    const trial = async (namespace: string, n: number): Promise<Trial | null> => {
      const ip = nextIp();
      // 6 s of attempts every 10 ms, from before the target pod exists until well after it runs.
      const probe = cluster.kubectl(['exec', '-n', 'srv', 'prober', '--', 'sh', '-c', HAMMER(ip).replace('-lt 200', '-lt 600')], { timeoutMs: 60_000 });
      await pause(300);
      await kubectlApply(`apiVersion: v1
kind: Pod
metadata: {name: target-${n}, namespace: ${namespace}}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: nginx, image: nginx:e2e, ports: [{containerPort: 80}]}]
`);
      const out = (await probe).stdout;
      const got = (await cluster.kubectlOk(['get', 'pod', '-n', namespace, `target-${n}`, '-o', 'jsonpath={.status.podIP}'])).trim();
      await cluster.kubectl(['delete', 'pod', '-n', namespace, `target-${n}`, '--wait=true', '--timeout=60s'], { timeoutMs: 70_000 });
      if (got !== ip) {
        log(`ingress trial ${namespace}/${n}: the pod got ${got}, not ${ip}; inconclusive`);
        return null;
      }
      const hits = [...out.matchAll(/^hit ([\d.]+)$/gm)].map((m) => Number(m[1]));
      return { hits: hits.length, openMs: hits.length === 0 ? 0 : Math.round((Math.max(...hits) - Math.min(...hits)) * 1000) };
    };
    const without: Trial[] = [];
    const withPlugin: Trial[] = [];
    for (let n = 0; n < TRIALS; n++) {
      chainPlugin(false);
      await pause(500);
      const a = await trial('ingress-bare', n);
      if (a !== null) without.push(a);
      chainPlugin(true);
      await pause(500);
      const b = await trial('ingress-plugin', n);
      if (b !== null) withPlugin.push(b);
    }
    chainPlugin(false);
    log(summary('ingress without the plugin', without, 'first to last successful probe'));
    log(summary('ingress with the plugin', withPlugin, 'first to last successful probe'));
    assert.ok(withPlugin.length > 0, 'at least one conclusive trial with the plugin');
    assert.deepEqual(withPlugin.map((t) => t.hits), withPlugin.map(() => 0), 'no probe got through with the plugin');
  });

  test(`pod start latency over ${PODS} pods, without and with the plugin, and with the agent stopped`, { timeout: 60 * 60_000 }, async () => {
    await deniedNamespace('latency', 'Egress');
    const podYaml = (name: string) => `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: latency}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: busybox:e2e, command: ["sleep", "3600"]}]
`;
    const series = async (label: string, count: number): Promise<number[]> => {
      const ms: number[] = [];
      for (let n = 0; n < count; n++) {
        const name = `${label}-${n}`;
        const t = await timeToRunning('latency', podYaml(name), name);
        if (t !== null) ms.push(t);
        await cluster.kubectl(['delete', 'pod', '-n', 'latency', name, '--wait=false']);
      }
      return ms.sort((a, b) => a - b);
    };
    const fmt = (ms: number[]) => `p50 ${Math.round(percentile(ms, 50))} ms, p99 ${Math.round(percentile(ms, 99))} ms (n=${ms.length})`;
    chainPlugin(false);
    await pause(500);
    const bare = await series('bare', PODS);
    chainPlugin(true);
    await pause(500);
    const plugged = await series('plugin', PODS);
    log(`pod start (create -> Running) without the plugin: ${fmt(bare)}; with the plugin: ${fmt(plugged)}; added p50 ${Math.round(percentile(plugged, 50) - percentile(bare, 50))} ms, p99 ${Math.round(percentile(plugged, 99) - percentile(bare, 99))} ms`);
    const addMs = [...readFileSync(agentLog, 'utf8').matchAll(/"ms":([\d.]+)[^\n]*CNI ADD of pod latency\//g)].map((m) => Number(m[1])).sort((a, b) => a - b);
    log(`the agent's time per ADD (request to committed answer) for those pods: p50 ${percentile(addMs, 50)} ms, p99 ${percentile(addMs, 99)} ms (n=${addMs.length})`);
    assert.equal(plugged.length, PODS, 'every pod started with the plugin');

    // The agent stopped: fail-open pods start (at what cost), fail-closed pods wait for the agent.
    await stopAgent();
    chainPlugin(true, 'fail-open');
    await pause(500);
    const open = await series('open', 5);
    log(`agent stopped, fail-open: ${fmt(open)}`);
    assert.equal(open.length, 5, 'fail-open pods start without the agent');
    chainPlugin(true, 'fail-closed');
    await pause(500);
    const closed = await timeToRunning('latency', podYaml('closed-0'), 'closed-0', 15_000);
    assert.equal(closed, null, 'a fail-closed pod does not start while the agent is stopped');
    const events = await cluster.kubectlOk(['get', 'events', '-n', 'latency', '--field-selector', 'involvedObject.name=closed-0', '-o', 'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}']);
    log(`agent stopped, fail-closed: pod not Running after 15 s; events: ${events.split('\n').find((l) => l.includes('netpol-agent')) ?? events.slice(0, 400)}`);
    const restarted = performance.now();
    await startAgent();
    await cluster.kubectlOk(['wait', '-n', 'latency', '--for=jsonpath={.status.phase}=Running', 'pod/closed-0', '--timeout=120s'], { timeoutMs: 130_000 });
    log(`agent restarted: the held pod ran ${Math.round(performance.now() - restarted)} ms after the agent's start (the kubelet's sandbox retry back-off)`);
    chainPlugin(false);
  });
});
