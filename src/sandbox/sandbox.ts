// A fake cluster network on this machine: one network namespace per node and per pod, plus a "fabric"
// namespace whose bridge joins the nodes. Nothing is created in the root namespace (veths are created
// inside our namespaces with their peer moved straight into another of ours), no route leads out of our
// namespaces, and every name carries the caller's prefix plus a per-run id. destroy() removes everything;
// an exit/signal handler (cleanup.ts) does the same synchronously if destroy() is never reached.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { cpus } from 'node:os';
import { PROTOCOLS } from '../api';
import { fabricV4, fabricV6 } from './addresses';
import { bridgedPlan } from './bridged';
import { killQuietly, registerLive, unregisterLive, type LiveSandbox } from './cleanup';
import { SandboxError } from './errors';
import { HelperClient, helperScript } from './helper-client';
import type { HelperNotServing } from './helper-protocol';
import { FABRIC_BRIDGE, NODE_FABRIC_IF, Names, fabricPortName, netnsPath, newRunId, podVethName } from './naming';
import { routedPlan } from './routed';
import { ipBatch, killChild, mapLimit, pidsInNetns, run, sysctlIn } from './run-command';
import type { NodeInfo, PodInfo, TopologyPlan } from './topology';
import {
  NODE_SOURCE_PREFIX,
  type ExecResult,
  type ProbeOutcome,
  type ProbeRequest,
  type ProbeResult,
  type SandboxPodSpec,
  type SandboxPortSpec,
  type SandboxSpec,
  type Topology,
} from './types';
import { claimAddresses, validatePod, validateSpec, type ValidPod } from './validate-spec';

/** `ip` processes in flight at once (they are short and mostly wait on the kernel). */
const IP_PARALLEL = 8;
/** Helper processes starting at once (Node start-up is CPU-bound). */
const HELPER_PARALLEL = Math.max(2, cpus().length);
const MAX_PROBE_TIMEOUT_MS = 120_000;

interface PodEntry extends PodInfo {
  ports: SandboxPortSpec[];
  helper: HelperClient | null;
}

export class Sandbox {
  readonly topology: Topology;
  /** "<prefix>-<run id>": the start of every namespace name this sandbox creates. */
  readonly name: string;
  private readonly names: Names;
  private readonly plan: TopologyPlan;
  private readonly script: string;
  private readonly nodes = new Map<string, NodeInfo>();
  private readonly pods = new Map<string, PodEntry>();
  private readonly nodeHelpers = new Map<string, HelperClient>();
  private readonly execChildren = new Set<ChildProcess>();
  /** Namespaces created, or about to be: what teardown deletes. */
  private readonly netns = new Set<string>();
  /** address -> pod key */
  private readonly owners = new Map<string, string>();
  private seq = 0;
  private destroying: Promise<void> | null = null;
  private mutex: Promise<unknown> = Promise.resolve();
  private readonly live: LiveSandbox;

  private constructor(spec: SandboxSpec, plan: TopologyPlan, script: string) {
    this.topology = spec.topology;
    this.names = new Names(spec.prefix, newRunId());
    this.name = this.names.base;
    this.plan = plan;
    this.script = script;
    spec.nodes.forEach((name, index) => {
      this.nodes.set(name, { name, index, netns: this.names.node(index, name), fabricV4: fabricV4(index), fabricV6: fabricV6(index) });
    });
    this.live = { processIds: () => this.processIds(), netnsNames: () => [...this.netns] };
  }

  /** Builds the whole network and starts every helper; on failure nothing is left behind. */
  static async create(spec: SandboxSpec): Promise<Sandbox> {
    const pods = validateSpec(spec);
    const script = helperScript();
    const plan = spec.topology === 'routed' ? routedPlan : bridgedPlan;
    await plan.preflight();
    const sb = new Sandbox(spec, plan, script);
    registerLive(sb.live);
    try {
      await sb.exclusive(() => sb.build(pods));
    } catch (err) {
      await sb.destroy().catch(() => undefined);
      throw err;
    }
    return sb;
  }

  // ------------------------------------------------------------------------------------------ names

  /** /run/netns/<name> of a node's namespace (where the nftables addon programs that node). */
  nodeNetnsPath(node: string): string {
    return netnsPath(this.nodeInfo(node).netns);
  }

  nodeNetnsName(node: string): string {
    return this.nodeInfo(node).netns;
  }

  podNetnsName(pod: string): string {
    return this.podEntry(pod).netns;
  }

  /** The namespace whose bridge joins the nodes: where a test links other namespaces it made to them. */
  fabricNetnsName(): string {
    return this.names.fabric();
  }

  nodeNames(): string[] {
    return [...this.nodes.keys()];
  }

  podKeys(): string[] {
    return [...this.pods.keys()];
  }

  /** Ports a pod declared but its helper could not serve (SCTP, or a bind failure), with the reason. */
  unservedPorts(pod: string): HelperNotServing[] {
    return this.podEntry(pod).helper?.notServing ?? [];
  }

  /** Every process this sandbox started that is still running (helpers and exec commands). */
  processIds(): number[] {
    const helpers = [...this.nodeHelpers.values(), ...[...this.pods.values()].map((p) => p.helper)];
    const pids = helpers.flatMap((h) => (h !== null && h.running && h.pid > 0 ? [h.pid] : []));
    for (const c of this.execChildren) if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) pids.push(c.pid);
    return pids;
  }

  // ------------------------------------------------------------------------------------------ churn

  /** Adds a pod (its node must exist); its addresses must be free (a removed pod's addresses are). */
  addPod(spec: SandboxPodSpec): Promise<void> {
    return this.exclusive(async () => {
      this.assertAlive();
      if (this.pods.has(spec.key)) {
        throw new SandboxError(`pod ${spec.key} is already in the sandbox; removePod("${spec.key}") before adding it again`);
      }
      const v = validatePod(spec, new Set(this.nodes.keys()));
      claimAddresses(v, new Map(this.owners)); // check only; committed by newEntry
      const e = this.newEntry(v);
      try {
        this.claimNetns([e.netns]);
        await ipBatch(null, [`netns add ${e.netns}`], `pod ${e.key} (namespace ${e.netns})`);
        this.assertAlive();
        this.startHelper(e);
        await this.plumbPods([e]);
        await this.attachToNodes(e);
        await this.forgetOnNode(e);
        await e.helper?.ready;
      } catch (err) {
        await this.dropPod(e).catch(() => undefined);
        throw err;
      }
    });
  }

  /** Removes a pod: kills its helper, unroutes its addresses everywhere, deletes its namespace. */
  removePod(key: string): Promise<void> {
    return this.exclusive(async () => {
      this.assertAlive();
      await this.dropPod(this.podEntry(key));
    });
  }

  // ------------------------------------------------------------------------------------------ traffic

  /** Runs every probe at once; a probe that cannot run comes back as 'error' with the reason. */
  async probe(reqs: ProbeRequest[]): Promise<ProbeResult[]> {
    this.assertAlive();
    return Promise.all(reqs.map(async (req) => ({ req, ...(await this.probeOne(req)) })));
  }

  /** Runs argv inside a pod's (or "node:NAME"'s) namespace; code is null if it was killed at timeoutMs. */
  async exec(pod: string, argv: string[], timeoutMs: number): Promise<ExecResult> {
    this.assertAlive();
    if (argv.length === 0) throw new SandboxError(`exec in ${pod}: give a command to run (argv is empty)`);
    const netns = pod.startsWith(NODE_SOURCE_PREFIX) ? this.nodeInfo(pod.slice(NODE_SOURCE_PREFIX.length)).netns : this.podEntry(pod).netns;
    const res = await run('ip', ['netns', 'exec', netns, ...argv], {
      timeoutMs,
      group: true,
      track: (child, running) => (running ? this.execChildren.add(child) : this.execChildren.delete(child)),
    });
    return { code: res.timedOut ? null : res.code, stdout: res.stdout, stderr: res.stderr };
  }

  // ------------------------------------------------------------------------------------------ teardown

  /** Kills every process and deletes every namespace of this sandbox; safe to call more than once. */
  destroy(): Promise<void> {
    if (this.destroying === null) this.destroying = this.teardown();
    return this.destroying;
  }

  private async teardown(): Promise<void> {
    // Kill first, so a mutation in flight fails fast, then wait for it before deleting namespaces.
    const stopAll = async (): Promise<void> => {
      for (const c of this.execChildren) killChild(c, true);
      const helpers = [...this.nodeHelpers.values(), ...[...this.pods.values()].map((p) => p.helper)];
      await Promise.all(helpers.map((h) => h?.stop()));
    };
    await stopAll();
    await this.mutex;
    await stopAll();
    const names = [...this.netns];
    // Anything still inside (a daemon an exec'd command left behind) would keep a namespace alive.
    for (const pid of await pidsInNetns(names)) killQuietly(pid);
    await ipBatch(null, names.map((n) => `netns del ${n}`), 'teardown', true);
    const left = names.filter((n) => existsSync(netnsPath(n)));
    for (const n of names) if (!left.includes(n)) this.netns.delete(n);
    if (left.length > 0) {
      throw new SandboxError(`sandbox ${this.name}: could not delete namespaces ${left.join(', ')}; delete them with \`ip netns del NAME\``);
    }
    unregisterLive(this.live);
  }

  // ------------------------------------------------------------------------------------------ internals

  private async build(pods: ValidPod[]): Promise<void> {
    const nodes = [...this.nodes.values()];
    const entries = pods.map((p) => this.newEntry(p));
    const fabric = this.names.fabric();
    const all = [fabric, ...nodes.map((n) => n.netns), ...entries.map((e) => e.netns)];
    this.claimNetns(all);
    await ipBatch(null, all.map((n) => `netns add ${n}`), `the sandbox's namespaces (${this.name}-*)`);
    // Helpers start while the network is plumbed; both must be done before create() returns.
    const helpers = mapLimit([...nodes, ...entries], HELPER_PARALLEL, async (x) => {
      this.assertAlive();
      await ('key' in x ? this.startHelper(x) : this.startNodeHelper(x)).ready;
    });
    helpers.catch(() => undefined);
    await mapLimit(nodes, IP_PARALLEL, (n) => sysctlIn(n.netns, this.plan.nodeSysctls, `node ${n.name} (namespace ${n.netns})`));
    await ipBatch(fabric, fabricLines(nodes), `the node fabric (namespace ${fabric})`);
    await this.plumbPods(entries);
    await mapLimit(nodes, IP_PARALLEL, (n) =>
      ipBatch(
        n.netns,
        [
          ...this.plan.nodeSetup(n, nodes),
          ...entries.filter((e) => e.node === n).flatMap((e) => this.plan.attachLocal(e)),
          ...entries.filter((e) => e.node !== n).flatMap((e) => this.plan.attachRemote(e)),
        ],
        `node ${n.name} (namespace ${n.netns})`,
      ),
    );
    await helpers;
  }

  private newEntry(v: ValidPod): PodEntry {
    const seq = this.seq++;
    const node = this.nodeInfo(v.node);
    const e: PodEntry = { key: v.key, node, netns: this.names.pod(seq, v.key), seq, veth: podVethName(seq), addrs: v.addrs, ports: v.ports, helper: null };
    claimAddresses(v, this.owners);
    this.pods.set(e.key, e);
    return e;
  }

  private claimNetns(names: readonly string[]): void {
    const taken = names.filter((n) => existsSync(netnsPath(n)));
    if (taken.length > 0) {
      throw new SandboxError(`namespace ${taken.join(', ')} already exists (left by another run?); delete it with \`ip netns del NAME\` or use another prefix`);
    }
    for (const n of names) this.netns.add(n);
  }

  private startHelper(e: PodEntry): HelperClient {
    e.helper = HelperClient.spawn(e.netns, { label: `pod ${e.key}`, ports: e.ports }, this.script);
    return e.helper;
  }

  private startNodeHelper(n: NodeInfo): HelperClient {
    const h = HelperClient.spawn(n.netns, { label: `node ${n.name}`, ports: [] }, this.script);
    this.nodeHelpers.set(n.name, h);
    return h;
  }

  private plumbPods(entries: readonly PodEntry[]): Promise<unknown> {
    return mapLimit(entries, IP_PARALLEL, (e) =>
      ipBatch(e.netns, this.plan.podSetup(e), `pod ${e.key} on node ${e.node.name} (namespace ${e.netns})`),
    );
  }

  /** Wires a pod into its own node and routes to it from the others (after create). */
  private async attachToNodes(e: PodEntry): Promise<void> {
    await ipBatch(e.node.netns, this.plan.attachLocal(e), `pod ${e.key} on node ${e.node.name}`);
    await mapLimit(this.otherNodes(e.node), IP_PARALLEL, (n) =>
      ipBatch(n.netns, this.plan.attachRemote(e), `the route from node ${n.name} to pod ${e.key}`),
    );
  }

  /** Makes the other pods on e's node forget cached MACs for e's addresses (a reused address). */
  private async forgetOnNode(e: PodEntry): Promise<void> {
    const lines = this.plan.forgetNeighbours(e.addrs);
    if (lines.length === 0) return;
    const peers = [...this.pods.values()].filter((p) => p !== e && p.node === e.node);
    await mapLimit(peers, IP_PARALLEL, (p) => ipBatch(p.netns, lines, `pod ${p.key}'s neighbour cache`, true));
  }

  /** Takes a pod out everywhere; tries every step and reports what failed. */
  private async dropPod(e: PodEntry): Promise<void> {
    this.pods.delete(e.key);
    for (const a of e.addrs) if (this.owners.get(a.ip) === e.key) this.owners.delete(a.ip);
    await e.helper?.stop();
    const results = await Promise.allSettled([
      ipBatch(e.node.netns, this.plan.detachLocal(e), `removing pod ${e.key} from node ${e.node.name}`, true),
      ...this.otherNodes(e.node).map((n) => ipBatch(n.netns, this.plan.detachRemote(e), `removing node ${n.name}'s route to pod ${e.key}`)),
      this.forgetOnNode(e),
    ]);
    if (this.netns.has(e.netns)) {
      for (const pid of await pidsInNetns([e.netns])) killQuietly(pid);
      await ipBatch(null, [`netns del ${e.netns}`], `deleting pod ${e.key}'s namespace`, true);
      if (!existsSync(netnsPath(e.netns))) this.netns.delete(e.netns);
    }
    const failed = results.flatMap((r) => (r.status === 'rejected' ? [r.reason instanceof Error ? r.reason.message : String(r.reason)] : []));
    if (this.netns.has(e.netns)) failed.push(`namespace ${e.netns} is still there`);
    if (failed.length > 0) throw new SandboxError(`removing pod ${e.key} left something behind: ${failed.join('; ')}`);
  }

  private async probeOne(req: ProbeRequest): Promise<{ outcome: ProbeOutcome; detail: string }> {
    const bad = (detail: string): { outcome: ProbeOutcome; detail: string } => ({ outcome: 'error', detail });
    let helper: HelperClient | null | undefined;
    if (req.from.startsWith(NODE_SOURCE_PREFIX)) {
      const node = req.from.slice(NODE_SOURCE_PREFIX.length);
      helper = this.nodeHelpers.get(node);
      if (helper === undefined) return bad(`probe from ${req.from}: no node ${JSON.stringify(node)} in the sandbox (nodes: ${this.nodeNames().join(', ')})`);
    } else {
      const e = this.pods.get(req.from);
      if (e === undefined) return bad(`probe from ${req.from}: no such pod in the sandbox; addPod() it first, or use "node:NAME" to probe from a node`);
      helper = e.helper;
    }
    if (helper === null) return bad(`probe from ${req.from}: its helper is not running`);
    if (isIP(req.toIp) === 0) return bad(`probe from ${req.from}: ${JSON.stringify(req.toIp)} is not an IP address`);
    if (!PROTOCOLS.includes(req.protocol)) return bad(`probe from ${req.from}: protocol ${JSON.stringify(req.protocol)} is not TCP, UDP or SCTP`);
    if (!Number.isInteger(req.port) || req.port < 1 || req.port > 65535) return bad(`probe from ${req.from}: port ${String(req.port)} is not 1-65535`);
    if (!Number.isInteger(req.timeoutMs) || req.timeoutMs < 1 || req.timeoutMs > MAX_PROBE_TIMEOUT_MS) {
      return bad(`probe from ${req.from}: timeoutMs ${String(req.timeoutMs)} is not a whole number of ms in 1-${MAX_PROBE_TIMEOUT_MS}`);
    }
    return helper.probe(req);
  }

  private otherNodes(node: NodeInfo): NodeInfo[] {
    return [...this.nodes.values()].filter((n) => n !== node);
  }

  private nodeInfo(node: string): NodeInfo {
    const n = this.nodes.get(node);
    if (n === undefined) throw new SandboxError(`node ${JSON.stringify(node)} is not in sandbox ${this.name} (nodes: ${this.nodeNames().join(', ')})`);
    return n;
  }

  private podEntry(pod: string): PodEntry {
    const e = this.pods.get(pod);
    if (e === undefined) throw new SandboxError(`pod ${pod} is not in sandbox ${this.name}; addPod() it first`);
    return e;
  }

  private assertAlive(): void {
    if (this.destroying !== null) throw new SandboxError(`sandbox ${this.name} has been destroyed; create a new one`);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.mutex.then(fn);
    this.mutex = p.catch(() => undefined);
    return p;
  }
}

/** The fabric namespace: one bridge, one veth per node with its peer named "fabric" in the node. */
function fabricLines(nodes: readonly NodeInfo[]): string[] {
  return [
    'link set lo up',
    `link add name ${FABRIC_BRIDGE} type bridge mcast_snooping 0`,
    `link set ${FABRIC_BRIDGE} up`,
    ...nodes.flatMap((n) => [
      `link add name ${fabricPortName(n.index)} type veth peer name ${NODE_FABRIC_IF} netns ${n.netns}`,
      `link set ${fabricPortName(n.index)} master ${FABRIC_BRIDGE}`,
      `link set ${fabricPortName(n.index)} up`,
    ]),
  ];
}
