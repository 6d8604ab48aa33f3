// probe --dataplane: the same question as probe, answered by real packets. A sandbox of network
// namespaces stands in for the nodes and pods, the dataplane programs each node's nftables from its
// compiled rule table, and every answer is a real connection attempt.
import type { ClusterEvent, PodState } from '../api';
import { NodeCompiler, objectKey } from '../compiler';
import { RuleState } from '../ruletable';
import { Dataplane, DataplaneError, DEFAULT_TABLE, checkCniShape, netnsHostFiles } from '../dataplane';
import type { SyncReport } from '../dataplane';
import { KernelNftBackend } from '../dataplane/nft';
import { Sandbox } from '../sandbox';
import type { ProbeOutcome, SandboxPodSpec, Topology } from '../sandbox';
import { hasFinished } from '../parse';
import { eventsBetween } from '../source';
import type { ClusterObjects } from '../source';
import { decideCases, probeCases } from './compute';
import type { ProbeFilter, ProbeResult } from './compute';

/** Pods with no node name still need one to live on in the sandbox. */
export const UNSCHEDULED_NODE = 'unscheduled';

export interface ObservedResult extends ProbeResult {
  /** false when no packet could be sent (SCTP on a kernel without it): allowed is then the rule-level verdict. */
  readonly observed: boolean;
  readonly outcome: ProbeOutcome;
}

function nodeOf(pod: PodState): string {
  return pod.nodeName === '' ? UNSCHEDULED_NODE : pod.nodeName;
}

/** The sandbox pods of a cluster: every pod with an address that is not host-network and still running. */
export function sandboxPods(objects: ClusterObjects): SandboxPodSpec[] {
  return objects.pods
    .filter((p) => p.ips.length > 0 && !p.hostNetwork && !hasFinished(p))
    .map((p) => ({
      key: objectKey(p),
      node: nodeOf(p),
      ips: [...p.ips],
      ports: [...new Map(p.ports.map((c) => [`${c.port}/${c.protocol}`, { port: c.port, protocol: c.protocol }])).values()],
    }));
}

/** A sandbox with one dataplane per node, kept across cluster states so updates take the incremental path. */
export class DataplaneLab {
  private readonly compilers = new Map<string, NodeCompiler>();
  private readonly dataplanes = new Map<string, Dataplane>();
  private readonly backends = new Map<string, KernelNftBackend>();

  private constructor(readonly sandbox: Sandbox) {}

  static async create(objects: ClusterObjects, topology: Topology, prefix = 'probe'): Promise<DataplaneLab> {
    const pods = sandboxPods(objects);
    const nodes = [...new Set(pods.map((p) => p.node))].sort();
    const sandbox = await Sandbox.create({ prefix, topology, nodes, pods });
    const lab = new DataplaneLab(sandbox);
    try {
      for (const node of nodes) lab.attach(node);
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  private attach(node: string): void {
    const shape = checkCniShape(netnsHostFiles(this.sandbox.nodeNetnsName(node)));
    if (shape.problem !== null) throw new DataplaneError(`node ${node}: ${shape.problem}`);
    const backend = new KernelNftBackend({ table: DEFAULT_TABLE, netns: this.sandbox.nodeNetnsPath(node) });
    this.backends.set(node, backend);
    this.dataplanes.set(node, new Dataplane(backend));
  }

  /** Starts every node over from a cluster state: fresh compilers, then a full sync over whatever the kernel holds. */
  async program(events: readonly ClusterEvent[]): Promise<SyncReport[]> {
    const reports: SyncReport[] = [];
    for (const [node, dataplane] of this.dataplanes) {
      const compiler = new NodeCompiler(node === UNSCHEDULED_NODE ? '' : node);
      for (const e of events) compiler.apply(e);
      this.compilers.set(node, compiler);
      reports.push(await dataplane.sync(compiler.elements()));
    }
    return reports;
  }

  /** Feeds events to every node's compiler and applies each resulting delta incrementally. */
  async update(events: readonly ClusterEvent[]): Promise<SyncReport[]> {
    const reports: SyncReport[] = [];
    for (const [node, dataplane] of this.dataplanes) {
      const compiler = this.compilers.get(node);
      if (compiler === undefined) throw new Error(`probe: node ${node} was never programmed`);
      for (const e of events) reports.push(await dataplane.apply(compiler.apply(e)));
    }
    return reports;
  }

  compiler(node: string): NodeCompiler | undefined {
    return this.compilers.get(node);
  }

  backend(node: string): KernelNftBackend | undefined {
    return this.backends.get(node);
  }

  /** Real connection attempts for every probe case; rule-level verdicts stand in only where no packet can be sent. */
  async observe(objects: ClusterObjects, filter: ProbeFilter, timeoutMs: number): Promise<ObservedResult[]> {
    const cases = probeCases(objects, filter);
    // Rule-level verdicts from the tables this lab programmed, for what no packet can show.
    const tables = new Map([...this.compilers].map(([node, compiler]) => [node, RuleState.of(compiler.elements())]));
    const nodeOfPod = new Map(objects.pods.map((p) => [objectKey(p), nodeOf(p)]));
    const computed = decideCases(cases, (pod) => tables.get(nodeOfPod.get(pod) ?? '') as RuleState);
    const outcomes = await this.sandbox.probe(cases.map((c) => ({ from: c.from, toIp: c.toIp, port: c.port, protocol: c.protocol, timeoutMs })));
    return cases.map((c, i) => {
      const { outcome, detail } = outcomes[i] as (typeof outcomes)[number];
      const rule = computed[i] as ProbeResult;
      const base = { from: c.from, to: c.to, port: c.port, protocol: c.protocol, outcome };
      if (outcome === 'skipped') return { ...base, allowed: rule.allowed, observed: false, reason: `not observed (${detail}); rule level: ${rule.reason}` };
      // A refusal is an answer from the destination: the network let the packet through.
      const allowed = outcome === 'connected' || outcome === 'refused';
      return { ...base, allowed, observed: true, reason: `observed ${outcome}: ${detail}` };
    });
  }

  async destroy(): Promise<void> {
    for (const b of this.backends.values()) b.close();
    await this.sandbox.destroy();
  }
}

export interface ObserveOptions {
  readonly topology: Topology;
  readonly timeoutMs: number;
}

export async function observeProbe(objects: ClusterObjects, filter: ProbeFilter, options: ObserveOptions): Promise<ObservedResult[]> {
  const lab = await DataplaneLab.create(objects, options.topology);
  try {
    await lab.program(eventsBetween(null, objects));
    return await lab.observe(objects, filter, options.timeoutMs);
  } finally {
    await lab.destroy();
  }
}
