// A kubelet for tests: it watches the Pods bound to its sandbox nodes (spec.nodeName) and, like a kubelet
// with a CNI, gives each one a network namespace (a sandbox pod, whose helper serves the pod's declared
// container ports) with addresses from its node's pod ranges, then reports them through the status
// subresource (podIPs, phase Running, Ready). A pod that goes away (deleted, or marked for deletion) loses
// its namespace; a pod marked for deletion is then removed for good, as a kubelet does once its containers
// have stopped. Pods on other nodes are left alone (the benchmarks bind API-only pods to nodes nobody runs).
import type { Protocol } from '../../../src/api';
import type { Sandbox } from '../../../src/sandbox';
import { KubeClient, KubeError, type KubeObject, type WatchEvent } from './kube';

/** Fixed addresses for a pod, as a JSON list (like Calico's cni.projectcalico.org/ipAddrs). */
export const IP_ADDRS_ANNOTATION = 'sandbox.netpol-agent.test/ip-addrs';

export interface SandboxNode {
  name: string;
  /** The node's IPv4 pod range, a /24: pods get .10 upwards. */
  podCidrV4: string;
  /** The node's IPv6 pod range prefix ("fd00:10:244::1:"), for dual-stack pods; host parts as IPv4. */
  podPrefixV6?: string;
  /** status.hostIP of its pods. */
  hostIp: string;
}

interface PodSpecShape {
  nodeName?: string;
  containers?: { ports?: { containerPort: number; protocol?: Protocol }[] }[];
}

interface Running {
  uid: string;
  node: string;
  ips: string[];
}

export class SandboxKubelet {
  private readonly nodes: Map<string, SandboxNode>;
  private readonly running = new Map<string, Running>();
  /** Per node: host parts in use. */
  private readonly used = new Map<string, Set<number>>();
  private readonly controller = new AbortController();
  private loop: Promise<void> | null = null;
  /** Work on one pod at a time, in event order. */
  private queue: Promise<void> = Promise.resolve();
  private readonly errors: string[] = [];
  private synced = false;
  private readonly waiters: { key: string; resolve: () => void }[] = [];
  private readonly hosts = new Map<string, number>();
  /** Called once a pod's namespace is wired, before its status is reported, with its addresses. */
  onWired: ((key: string, ips: string[]) => void) | null = null;
  /** Called when the status patch that reports a pod's addresses has returned. */
  onReported: ((key: string, at: number) => void) | null = null;

  constructor(private readonly kube: KubeClient, private readonly sandbox: Sandbox, nodes: SandboxNode[], private readonly log: (line: string) => void = () => undefined) {
    this.nodes = new Map(nodes.map((n) => [n.name, n]));
    for (const n of nodes) this.used.set(n.name, new Set());
  }

  /** Lists and watches pods until stop(); resolves once the first list is handled. */
  async start(): Promise<void> {
    this.loop = this.run();
    const end = Date.now() + 60_000;
    while (!this.synced) {
      if (Date.now() > end) throw new Error(`sandbox kubelet: no first pod list within 60 s: ${this.errors.join('; ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    this.controller.abort();
    await this.loop;
    await this.queue;
  }

  /** Problems met so far (failed status patches, pods that could not be wired). */
  problems(): string[] {
    return [...this.errors];
  }

  /** Resolves once the pod "ns/name" runs with its status reported. */
  whenRunning(key: string, timeoutMs = 30_000): Promise<void> {
    if (this.running.has(key)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sandbox kubelet: pod ${key} not running after ${timeoutMs} ms; problems: ${this.errors.join('; ') || 'none'}`)), timeoutMs);
      this.waiters.push({ key, resolve: () => { clearTimeout(timer); resolve(); } });
    });
  }

  /** The IPs the kubelet gave a running pod. */
  ipsOf(key: string): string[] {
    const r = this.running.get(key);
    if (r === undefined) throw new Error(`sandbox kubelet: pod ${key} is not running`);
    return r.ips;
  }

  private async run(): Promise<void> {
    const signal = this.controller.signal;
    while (!signal.aborted) {
      try {
        const list = await this.kube.get<{ metadata: { resourceVersion: string }; items: KubeObject[] }>('/api/v1/pods');
        const seen = new Set<string>();
        for (const pod of list.items) {
          seen.add(keyOf(pod));
          this.enqueue(pod, false);
        }
        for (const key of this.running.keys()) if (!seen.has(key)) this.enqueueGone(key);
        await this.queue;
        this.synced = true;
        let rv = list.metadata.resourceVersion;
        for (;;) {
          let expired = false;
          await this.kube.watch('/api/v1/pods', rv, (e: WatchEvent) => {
            if (e.type === 'BOOKMARK') rv = e.object.metadata.resourceVersion ?? rv;
            else if (e.type === 'ERROR') expired = true;
            else {
              rv = e.object.metadata.resourceVersion ?? rv;
              this.enqueue(e.object, e.type === 'DELETED');
            }
          }, signal);
          if (expired || signal.aborted) break;
        }
      } catch (err) {
        if (signal.aborted) break;
        this.log(`sandbox kubelet: pod list/watch failed (${err instanceof Error ? err.message : String(err)}); again in 1 s`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private enqueue(pod: KubeObject, deleted: boolean): void {
    const spec = pod.spec as PodSpecShape | undefined;
    const node = spec?.nodeName;
    if (node === undefined || !this.nodes.has(node)) return;
    const key = keyOf(pod);
    const gone = deleted || pod.metadata.deletionTimestamp !== undefined;
    this.queue = this.queue.then(async () => {
      try {
        const current = this.running.get(key);
        if (gone) {
          if (current !== undefined && current.uid === pod.metadata.uid) await this.removePod(key);
          if (!deleted) await this.kube.deleteIfThere(`/api/v1/namespaces/${pod.metadata.namespace ?? ''}/pods/${pod.metadata.name}`, 0);
          return;
        }
        if (current !== undefined && current.uid !== pod.metadata.uid) await this.removePod(key); // recreated under the same name
        if (!this.running.has(key)) await this.addPod(key, node, pod);
      } catch (err) {
        this.errors.push(`pod ${key}: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
  }

  private enqueueGone(key: string): void {
    this.queue = this.queue.then(() => this.removePod(key)).catch((err: unknown) => {
      this.errors.push(`pod ${key}: ${err instanceof Error ? err.message : String(err)}`);
    });
  }

  private allocate(key: string, node: SandboxNode, pod: KubeObject): { ips: string[]; host: number | null } {
    const fixed = pod.metadata.annotations?.[IP_ADDRS_ANNOTATION];
    if (fixed !== undefined) return { ips: JSON.parse(fixed) as string[], host: null };
    const used = this.used.get(node.name) as Set<number>;
    let host = 10;
    while (used.has(host)) host++;
    if (host > 254) throw new Error(`node ${node.name} has no free address in ${node.podCidrV4} for pod ${key}`);
    used.add(host);
    const base = node.podCidrV4.replace(/\.0\/24$/, '');
    const ips = [`${base}.${host}`];
    if (node.podPrefixV6 !== undefined) ips.push(`${node.podPrefixV6}${host}`);
    return { ips, host };
  }

  private async addPod(key: string, nodeName: string, pod: KubeObject): Promise<void> {
    const node = this.nodes.get(nodeName) as SandboxNode;
    const { ips, host } = this.allocate(key, node, pod);
    const spec = pod.spec as PodSpecShape;
    const ports = (spec.containers ?? []).flatMap((c) => (c.ports ?? []).map((p) => ({ port: p.containerPort, protocol: p.protocol ?? 'TCP' })));
    try {
      await this.sandbox.addPod({ key, node: nodeName, ips, ports });
    } catch (err) {
      if (host !== null) this.used.get(nodeName)?.delete(host);
      throw err;
    }
    this.running.set(key, { uid: pod.metadata.uid ?? '', node: nodeName, ips });
    if (host !== null) this.hosts.set(key, host);
    this.onWired?.(key, ips);
    const now = new Date().toISOString();
    try {
      await this.kube.patch(`/api/v1/namespaces/${pod.metadata.namespace ?? ''}/pods/${pod.metadata.name}/status`, {
        status: {
          phase: 'Running',
          hostIP: node.hostIp,
          hostIPs: [{ ip: node.hostIp }],
          podIP: ips[0],
          podIPs: ips.map((ip) => ({ ip })),
          startTime: now,
          conditions: ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'].map((type) => ({ type, status: 'True', lastTransitionTime: now })),
        },
      });
      this.onReported?.(key, performance.now());
    } catch (err) {
      if (!(err instanceof KubeError && err.status === 404)) throw err; // deleted meanwhile: its DELETED event follows
    }
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i];
      if (w !== undefined && w.key === key) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  private async removePod(key: string): Promise<void> {
    const r = this.running.get(key);
    if (r === undefined) return;
    this.running.delete(key);
    const host = this.hosts.get(key);
    this.hosts.delete(key);
    await this.sandbox.removePod(key);
    if (host !== undefined) this.used.get(r.node)?.delete(host);
  }
}

function keyOf(pod: KubeObject): string {
  return `${pod.metadata.namespace ?? ''}/${pod.metadata.name}`;
}
