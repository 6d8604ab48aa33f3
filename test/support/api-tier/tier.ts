// The API tier's world: the real control plane (etcd, kube-apiserver, kube-controller-manager from
// test/e2e/cluster, control-plane-only) in its own network namespace, sandbox nodes (src/sandbox) whose
// fabric is linked to that namespace, the sandbox kubelet, and one `netpol-agent run` per node inside the
// node's namespace, authenticated with the ServiceAccount token of manifests/base/rbac.yaml.
//
// Routing: a veth joins the control plane's namespace to the sandbox fabric bridge (169.254.100.254 on
// the control-plane side); each node routes the API server's address (10.250.0.10) there. Nothing links
// any of it to the root namespace: the test process reaches the API server and each agent's loopback
// endpoint through Unix sockets served by relays inside those namespaces (relay.ts).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, cpSync, createWriteStream, mkdirSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DEBUG_PATHS, getOverSocket } from '../../../src/agent';
import { errorMessage } from '../../../src/errors';
import { Sandbox } from '../../../src/sandbox';
import { FABRIC_BRIDGE, NODE_FABRIC_IF } from '../../../src/sandbox/naming';
import { Cluster, REPO_ROOT } from '../../e2e/cluster';
import { KubeClient, type KubeObject } from './kube';
import { SandboxKubelet, type SandboxNode } from './sandbox-kubelet';

export const MAIN = resolve(__dirname, '../../../src/cli/main.js');
const RELAY = join(__dirname, 'relay.js');
/** The control plane's address on the fabric, and where nodes send packets for the API server. */
const CONTROL_PLANE_FABRIC_IP = '169.254.100.254';
const AGENT_LISTEN = '127.0.0.1:9977';

export interface TierOptions {
  nodes: string[];
  /** The agents' --resync-period. */
  resyncPeriod: string;
  /** The agents' --watch-silence-timeout (default: the agent's). */
  watchSilenceTimeout?: string;
  onLog?: (line: string) => void;
}

export interface AgentProcess {
  node: string;
  child: ChildProcess;
  log: string;
  exited: Promise<number | null>;
}

/** Every process and folder a tier created, for the synchronous teardown on Ctrl-C or a crash. */
const emergency = { pids: new Set<number>(), clusterState: null as string | null, dirs: new Set<string>() };
let handlersInstalled = false;

function emergencyTeardown(): void {
  for (const pid of emergency.pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  emergency.pids.clear();
  if (emergency.clusterState !== null) {
    try {
      // In its own session, as test/e2e/cluster.ts does: the test runner may kill our process group meanwhile.
      execFileSync('setsid', [join(REPO_ROOT, 'test/e2e/cluster/down.sh'), emergency.clusterState], { stdio: 'ignore', timeout: 120_000 });
    } catch {
      // down.sh reports leftovers on its own stderr; nothing more to do here
    }
    emergency.clusterState = null;
  }
  for (const d of emergency.dirs) rmSync(d, { recursive: true, force: true });
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', emergencyTeardown);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      emergencyTeardown();
      process.exit(130);
    });
  }
}

function nodeIndex(name: string, nodes: string[]): number {
  return nodes.indexOf(name) + 1;
}

/** Starts a relay in a namespace (nsenter for the control plane's, ip netns exec for a sandbox node's). */
async function startRelay(netnsArgs: string[], listen: string, target: string): Promise<ChildProcess> {
  const child = spawn(netnsArgs[0] as string, [...netnsArgs.slice(1), process.execPath, RELAY, listen, target], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid !== undefined) emergency.pids.add(child.pid);
  await new Promise<void>((resolveReady, reject) => {
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.once('data', () => resolveReady());
    child.once('exit', (code) => reject(new Error(`relay ${listen} -> ${target} exited ${String(code)}: ${err}`)));
  });
  return child;
}

export class Tier {
  readonly dir: string;
  readonly agents = new Map<string, AgentProcess>();
  readonly sandboxNodes: SandboxNode[];
  private readonly relays: ChildProcess[] = [];
  private readonly logs: WriteStream;
  saKubeconfig = '';

  private constructor(readonly cluster: Cluster, readonly sandbox: Sandbox, readonly kube: KubeClient, readonly kubelet: SandboxKubelet, readonly options: TierOptions, dir: string) {
    this.dir = dir;
    this.sandboxNodes = options.nodes.map((name) => nodeSpec(name, options.nodes));
    this.logs = createWriteStream(join(dir, 'agents.log'));
  }

  static async start(options: TierOptions): Promise<Tier> {
    installHandlers();
    const log = options.onLog ?? (() => undefined);
    const dir = mkdtempSync(join(tmpdir(), 'netpol-api-tier-'));
    emergency.dirs.add(dir);
    const t0 = Date.now();
    const cluster = await Cluster.start({ controlPlaneOnly: true, onLog: log });
    emergency.clusterState = cluster.state;
    let sandbox: Sandbox | null = null;
    try {
      sandbox = await Sandbox.create({ prefix: 'apitier', topology: 'routed', nodes: options.nodes, pods: [] });
      await linkControlPlane(cluster, sandbox);
      const apiSocket = join(dir, 'api.sock');
      const adminRelay = await startRelay(['nsenter', `--net=${cluster.netnsPath}`], `unix:${apiSocket}`, '127.0.0.1:6443');
      const kube = new KubeClient(join(cluster.state, 'pki'), apiSocket);
      const kubelet = new SandboxKubelet(kube, sandbox, options.nodes.map((n) => nodeSpec(n, options.nodes)), log);
      const tier = new Tier(cluster, sandbox, kube, kubelet, options, dir);
      tier.relays.push(adminRelay);
      await tier.applyManifests();
      tier.saKubeconfig = await cluster.serviceAccountKubeconfig('netpol-agent', 'netpol-agent', `https://${cluster.nodeIp}:6443`);
      await kubelet.start();
      for (const node of options.nodes) {
        tier.relays.push(await startRelay(['ip', 'netns', 'exec', sandbox.nodeNetnsName(node)], `unix:${tier.agentSocket(node)}`, AGENT_LISTEN));
        tier.startAgent(node);
      }
      for (const node of options.nodes) await tier.waitAgentReady(node, 60_000);
      log(`api tier up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      return tier;
    } catch (err) {
      await sandbox?.destroy().catch(() => undefined);
      await cluster.stop().catch(() => undefined);
      emergencyTeardown();
      throw err;
    }
  }

  /** The ServiceAccount, ClusterRole and ClusterRoleBinding of manifests/ (and its namespace). */
  private async applyManifests(): Promise<void> {
    for (const file of ['namespace.yaml', 'rbac.yaml']) {
      for (const doc of parseAllDocuments(readFileSync(join(REPO_ROOT, 'manifests', 'base', file), 'utf8'))) {
        const o = doc.toJS() as KubeObject | null;
        if (o === null) continue;
        await this.kube.create(collectionOf(o), o);
      }
    }
  }

  /** The ClusterRoleBinding as manifests/base/rbac.yaml has it. */
  rbacObject(kind: string): KubeObject {
    for (const doc of parseAllDocuments(readFileSync(join(REPO_ROOT, 'manifests', 'base', 'rbac.yaml'), 'utf8'))) {
      const o = doc.toJS() as KubeObject | null;
      if (o !== null && o.kind === kind) return o;
    }
    throw new Error(`manifests/base/rbac.yaml has no ${kind}`);
  }

  agentSocket(node: string): string {
    return join(this.dir, `agent-${node}.sock`);
  }

  /** The agent's own debug socket (/rules): a file, which the node's network namespace does not hide. */
  agentDebugSocket(node: string): string {
    return join(this.dir, `agent-${node}-debug`, 'debug.sock');
  }

  startAgent(node: string, kubeconfig = this.saKubeconfig): AgentProcess {
    const args = ['netns', 'exec', this.sandbox.nodeNetnsName(node), process.execPath, MAIN, 'run', '--kubeconfig', kubeconfig, '--node-name', node, '--metrics-listen', AGENT_LISTEN, '--debug-socket', this.agentDebugSocket(node), '--resync-period', this.options.resyncPeriod, ...(this.options.watchSilenceTimeout !== undefined ? ['--watch-silence-timeout', this.options.watchSilenceTimeout] : [])];
    const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid !== undefined) emergency.pids.add(child.pid);
    const agent: AgentProcess = {
      node,
      child,
      log: '',
      exited: new Promise((r) => child.once('exit', (code) => {
        if (child.pid !== undefined) emergency.pids.delete(child.pid);
        r(code);
      })),
    };
    const take = (d: Buffer): void => {
      const text = d.toString();
      agent.log = (agent.log + text).slice(-2_000_000);
      this.logs.write(text);
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    this.agents.set(node, agent);
    return agent;
  }

  agent(node: string): AgentProcess {
    const a = this.agents.get(node);
    if (a === undefined) throw new Error(`no agent on ${node}`);
    return a;
  }

  async stopAgent(node: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const a = this.agent(node);
    if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill(signal);
    return a.exited;
  }

  /** GET on an agent: its debug socket for /rules, /explain, /drops, else its loopback endpoint (through its relay). */
  async agentGet(node: string, path: string, timeoutMs = 10_000): Promise<{ status: number; body: string }> {
    const debug = DEBUG_PATHS.includes(new URL(path, 'http://agent').pathname);
    try {
      return await getOverSocket(debug ? this.agentDebugSocket(node) : this.agentSocket(node), path, timeoutMs, 'application/json');
    } catch (err) {
      throw new Error(`GET ${path} on ${node}'s agent: ${errorMessage(err)}`, { cause: err });
    }
  }

  async rules(node: string, query = ''): Promise<RulesJson> {
    return JSON.parse((await this.agentGet(node, `/rules${query}`)).body) as RulesJson;
  }

  async waitAgentReady(node: string, timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.agentGet(node, '/readyz', 2000).catch(() => null);
      if (r?.status === 200) return;
      const a = this.agent(node);
      if (a.child.exitCode !== null) throw new Error(`the agent on ${node} exited ${a.child.exitCode}:\n${a.log.slice(-4000)}`);
      if (Date.now() > end) throw new Error(`the agent on ${node} is not ready after ${timeoutMs} ms:\n${a.log.slice(-4000)}`);
      await new Promise((r2) => setTimeout(r2, 100));
    }
  }

  /** Resident memory of the agent process, in bytes (from /proc). */
  agentRss(node: string): number {
    const pid = this.agent(node).child.pid;
    const status = readFileSync(`/proc/${String(pid)}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return Number(m?.[1] ?? 0) * 1024;
  }

  /** A process started in a node's namespace (nft, for the table faults). */
  inNode(node: string, argv: string[]): string {
    return execFileSync('ip', ['netns', 'exec', this.sandbox.nodeNetnsName(node), ...argv], { encoding: 'utf8', timeout: 30_000 });
  }

  /** Stops kube-apiserver (SIGTERM, as a node reboot or an upgrade would) and returns its command line. */
  async stopApiServer(): Promise<string[]> {
    const pidFile = join(this.cluster.state, 'pids', 'kube-apiserver');
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 300 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 100));
    if (existsSync(`/proc/${pid}`)) process.kill(pid, 'SIGKILL');
    return argv;
  }

  /** Starts kube-apiserver again with that command line, in the control plane's namespace, where down.sh finds it. */
  async startApiServer(argv: string[]): Promise<void> {
    const out = openSync(join(this.cluster.state, 'logs', 'kube-apiserver.log'), 'a');
    const child = spawn('nsenter', [`--net=${this.cluster.netnsPath}`, ...argv], { detached: true, stdio: ['ignore', out, out] });
    child.unref();
    closeSync(out);
    if (child.pid === undefined) throw new Error('kube-apiserver did not start');
    writeFileSync(join(this.cluster.state, 'pids', 'kube-apiserver'), `${child.pid}\n`);
    await this.kube.waitReady(120_000);
  }

  /** etcdctl against the cluster's etcd (in the control plane's namespace). */
  etcdctl(args: string[]): string {
    return execFileSync('nsenter', [`--net=${this.cluster.netnsPath}`, join(this.cluster.binDir, 'etcdctl'), '--endpoints=http://127.0.0.1:2379', ...args], { encoding: 'utf8', timeout: 60_000 });
  }

  async stop(): Promise<void> {
    const errors: string[] = [];
    await this.kubelet.stop().catch((e: unknown) => errors.push(String(e)));
    for (const node of this.agents.keys()) await this.stopAgent(node).catch((e: unknown) => errors.push(String(e)));
    for (const r of this.relays) r.kill('SIGTERM');
    this.kube.close();
    this.logs.end();
    await this.sandbox.destroy().catch((e: unknown) => errors.push(String(e)));
    const keep = process.env['API_TIER_LOGS'];
    if (keep !== undefined && keep !== '') {
      // For CI artifacts: the agents' logs and the control plane's, before down.sh removes them.
      mkdirSync(keep, { recursive: true });
      if (!this.logs.closed) await new Promise<void>((r) => this.logs.once('close', () => r()));
      cpSync(join(this.dir, 'agents.log'), join(keep, `agents-${this.cluster.state.split('-').pop() ?? ''}.log`));
      cpSync(join(this.cluster.state, 'logs'), join(keep, `control-plane-${this.cluster.state.split('-').pop() ?? ''}`), { recursive: true });
    }
    await this.cluster.stop().then(() => { emergency.clusterState = null; }, (e: unknown) => errors.push(String(e)));
    rmSync(this.dir, { recursive: true, force: true });
    emergency.dirs.delete(this.dir);
    if (errors.length > 0) throw new Error(`api tier teardown: ${errors.join('\n')}`);
  }
}

export interface RulesJson {
  sync: { generation: number; ready: boolean; synced: boolean; pendingEvents: number; lastError: { message: string } | null };
  pods: { pod: string; ips: string[]; ingress: { isolatedBy: string[] }; egress: { isolatedBy: string[] } }[];
  notEnforceable: { policy: string; reason: string }[];
  rejected: { kind: string; object: string; reason: string }[];
}

function nodeSpec(name: string, nodes: string[]): SandboxNode {
  const n = nodeIndex(name, nodes);
  return { name, podCidrV4: `10.244.${n}.0/24`, podPrefixV6: `fd00:10:244::${n}:`, hostIp: `169.254.100.${n}` };
}

function collectionOf(o: KubeObject): string {
  const ns = o.metadata.namespace;
  switch (o.kind) {
    case 'Namespace': return '/api/v1/namespaces';
    case 'ServiceAccount': return `/api/v1/namespaces/${ns ?? ''}/serviceaccounts`;
    case 'ClusterRole': return '/apis/rbac.authorization.k8s.io/v1/clusterroles';
    case 'ClusterRoleBinding': return '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings';
    default: throw new Error(`no collection for kind ${String(o.kind)}`);
  }
}

/** The veth from the control plane's namespace into the fabric bridge, and each node's route to the API server. */
async function linkControlPlane(cluster: Cluster, sandbox: Sandbox): Promise<void> {
  const fabric = sandbox.fabricNetnsName();
  const ip = (args: string[]): void => {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
  };
  ip(['-n', cluster.netns, 'link', 'add', 'apifab', 'type', 'veth', 'peer', 'name', 'cplink', 'netns', fabric]);
  ip(['-n', fabric, 'link', 'set', 'cplink', 'master', FABRIC_BRIDGE, 'up']);
  ip(['-n', cluster.netns, 'addr', 'add', `${CONTROL_PLANE_FABRIC_IP}/24`, 'dev', 'apifab']);
  ip(['-n', cluster.netns, 'link', 'set', 'apifab', 'up']);
  for (const node of sandbox.nodeNames()) {
    ip(['-n', sandbox.nodeNetnsName(node), 'route', 'add', `${cluster.nodeIp}/32`, 'via', CONTROL_PLANE_FABRIC_IP, 'dev', NODE_FABRIC_IF]);
  }
}
