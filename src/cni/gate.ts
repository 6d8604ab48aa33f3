// The agent's side of netpol-agent-cni: a pod's addresses as the CNI plugin reports them at sandbox
// start, before the kubelet writes them into the pod's status.
//
//   source ──events──> CniPodGate ──events (addresses of the plugin folded in)──> AgentLoop
//   CNI plugin ──add/del──> CniPodGate ──waits for──> CommitTracker (address elements in the kernel)
//
// - The plugin's addresses hold from ADD until DEL (or the pod's deletion): an API status without
//   addresses does not take them away, and one with other addresses is logged and overridden, since
//   the plugin's come from the sandbox that runs now. An API status that agrees is logged at debug.
// - DEL releases the sandbox's addresses: they are left out of the pod until the API stops reporting
//   them, so a stale status never gives an address back to a pod whose sandbox is gone.
// - A pod's address elements and its isolation come from one compiled event, so they are committed in
//   one transaction: an address in the kernel means the pod's rules are there too.
import type { Logger } from 'pino';
import { objectKey } from '../api';
import type { ClusterEvent, Direction, ObjectKind, ObjectRef, PodState, PolicyState, RuleTableDelta, RuleTableElement, SourceSink } from '../api';
import { selectorMatches } from '../compiler';
import type { SyncReport } from '../dataplane';
import { canonicalIp } from '../net/ip';
import { addToIndex, removeFromIndex } from '../multimap';
import type { LoopDataplane } from '../agent/agent-loop';

/**
 * A LoopDataplane that passes everything through and remembers which pod addresses the kernel holds
 * after each committed transaction (a node has few local pods, so this map stays small).
 */
export class CommitTracker implements LoopDataplane {
  private committed = new Map<string, Set<string>>();
  private readonly listeners = new Set<() => void>();

  constructor(private readonly inner: LoopDataplane) {}

  get table(): string {
    return this.inner.table;
  }

  async sync(elements: Iterable<RuleTableElement>): Promise<SyncReport> {
    const seen = new Map<string, Set<string>>();
    function* observed(): Generator<RuleTableElement> {
      for (const e of elements) {
        if (e.kind === 'address') addToIndex(seen, e.pod, e.ip);
        yield e;
      }
    }
    const report = await this.inner.sync(observed());
    this.committed = seen;
    this.notify();
    return report;
  }

  async apply(delta: RuleTableDelta): Promise<SyncReport> {
    const report = await this.inner.apply(delta);
    // A refused transaction leaves the kernel as it was (nftables transactions are atomic).
    for (const e of delta.removed) if (e.kind === 'address') removeFromIndex(this.committed, e.pod, e.ip);
    for (const e of delta.added) if (e.kind === 'address') addToIndex(this.committed, e.pod, e.ip);
    this.notify();
    return report;
  }

  implementationOf(pod: string, direction: Direction): { readonly chain: string; readonly sets: readonly string[] } | null {
    return this.inner.implementationOf(pod, direction);
  }

  podElements(pod: string): Iterable<RuleTableElement> {
    return this.inner.podElements(pod);
  }

  /** Every one of these addresses of the pod is in the kernel. */
  holds(pod: string, ips: readonly string[]): boolean {
    const have = this.committed.get(pod);
    return have !== undefined && ips.every((ip) => have.has(ip));
  }

  /** Called after each committed transaction; returns the unsubscribe function. */
  onCommit(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }
}

export interface CniAddRequest {
  readonly namespace: string;
  readonly name: string;
  /** K8S_POD_UID when the runtime passes it: a recreated pod of the same name waits for its own object. */
  readonly uid: string;
  readonly containerId: string;
  /** As the plugin sent them: "10.244.0.5/24" or "10.244.0.5". */
  readonly ips: readonly string[];
}

export type CniAnswer = { readonly result: 'ok'; readonly detail: string } | { readonly result: 'error'; readonly message: string };

/** The plugin's "10.244.0.5/24" as the canonical address the compiler uses, or null. */
export function pluginAddress(text: string): string | null {
  const slash = text.indexOf('/');
  return canonicalIp(slash < 0 ? text : text.slice(0, slash));
}

interface SandboxAddresses {
  readonly containerId: string;
  readonly uid: string;
  readonly ips: readonly string[];
}

export interface CniPodGateOptions {
  readonly node: string;
  /** Where events go on (the AgentLoop). */
  readonly sink: SourceSink;
  readonly committed: CommitTracker;
  readonly logger: Logger;
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x) => b.includes(x));

/**
 * The SourceSink the source delivers to when the CNI socket is on: it forwards everything to the loop,
 * keeps this node's pods and every namespace's policies, and folds the plugin's addresses into pods.
 */
export class CniPodGate implements SourceSink {
  private readonly log: Logger;
  /** This node's pods as the source last reported them. */
  private readonly pods = new Map<string, PodState>();
  private readonly sandboxes = new Map<string, SandboxAddresses>();
  /** Per pod: addresses released by DEL that the API may still report. */
  private readonly released = new Map<string, Set<string>>();
  private readonly policies = new Map<string, Map<string, PolicyState>>();
  /** Policies the source rejected: the loop enforces them fail-closed, possibly over their whole namespace. */
  private readonly rejectedPolicies = new Map<string, Set<string>>();
  /** Called whenever a batch of source events was forwarded (pods waiting to be known). */
  private readonly arrivals = new Set<() => void>();
  /** Until the source's complete listing is in, a policy not seen yet may select any pod. */
  private isSynced = false;
  /** Last API/plugin disagreement logged per pod, so each is logged once. */
  private readonly disagreements = new Map<string, string>();

  constructor(private readonly options: CniPodGateOptions) {
    this.log = options.logger;
  }

  // --- SourceSink -------------------------------------------------------------------------------

  events(batch: readonly ClusterEvent[]): void {
    this.options.sink.events(batch.map((e) => this.track(e)));
    for (const a of [...this.arrivals]) a();
  }

  rejected(kind: ObjectKind, ref: ObjectRef, reason: string, raw: unknown): void {
    if (kind === 'NetworkPolicy') addToIndex(this.rejectedPolicies, ref.namespace, ref.name);
    this.options.sink.rejected(kind, ref, reason, raw);
  }

  synced(): void {
    this.isSynced = true;
    this.options.sink.synced();
  }

  problem(message: string, cause?: unknown): void {
    this.options.sink.problem(message, cause);
  }

  health(part: string, failure: string | null): void {
    this.options.sink.health(part, failure);
  }

  // --- the plugin -------------------------------------------------------------------------------

  /**
   * ADD: programs the pod with the sandbox's addresses and resolves once they are in the kernel, or at
   * once when no policy selects the pod; an error answer when the pod or the commit does not come
   * within waitMs.
   */
  async add(req: CniAddRequest, waitMs: number): Promise<CniAnswer> {
    const key = objectKey(req);
    const ips: string[] = [];
    for (const text of req.ips) {
      const ip = pluginAddress(text);
      if (ip === null) return { result: 'error', message: `pod ${key}: the CNI plugin sent ${JSON.stringify(text)}, which is not an IP address` };
      if (!ips.includes(ip)) ips.push(ip);
    }
    if (ips.length === 0) return { result: 'error', message: `pod ${key}: the CNI plugin sent no address` };
    const deadline = performance.now() + waitMs;
    const pod = await this.waitFor(() => this.knownPod(key, req.uid), deadline);
    if (pod === null) return { result: 'error', message: `pod ${key}${req.uid === '' ? '' : ` (uid ${req.uid})`} is not known on node ${this.options.node} from the API after ${waitMs} ms; the runtime retries the sandbox` };
    this.sandboxes.set(key, { containerId: req.containerId, uid: req.uid, ips });
    const releasedIps = this.released.get(key);
    if (releasedIps !== undefined) for (const ip of ips) releasedIps.delete(ip);
    // Programmed now, not when the kubelet writes the status (an identical upsert compiles to nothing).
    this.options.sink.events([{ type: 'upsert', kind: 'Pod', object: this.effective(pod) }]);
    if (!this.selected(pod)) return { result: 'ok', detail: 'selected by no policy' };
    const committed = await this.waitForCommit(key, ips, deadline);
    if (!committed) return { result: 'error', message: `pod ${key}: its rules were not committed to the kernel within ${waitMs} ms; the runtime retries the sandbox` };
    return { result: 'ok', detail: 'rules committed' };
  }

  /** DEL: the sandbox's addresses are gone; the pod keeps those the API reports for another sandbox. */
  del(req: { readonly namespace: string; readonly name: string; readonly containerId: string; readonly ips: readonly string[] }): CniAnswer {
    const key = objectKey(req);
    const sandbox = this.sandboxes.get(key);
    const current = sandbox !== undefined && (sandbox.containerId === req.containerId || req.containerId === '');
    const given = req.ips.map(pluginAddress).filter((ip): ip is string => ip !== null);
    const gone = current ? [...new Set([...sandbox.ips, ...given])] : given.filter((ip) => sandbox === undefined || !sandbox.ips.includes(ip));
    if (current) this.sandboxes.delete(key);
    if (gone.length === 0) return { result: 'ok', detail: 'nothing to release' };
    for (const ip of gone) addToIndex(this.released, key, ip);
    const pod = this.pods.get(key);
    if (pod !== undefined) this.options.sink.events([{ type: 'upsert', kind: 'Pod', object: this.effective(pod) }]);
    return { result: 'ok', detail: `released ${gone.join(', ')}` };
  }

  // --- internals --------------------------------------------------------------------------------

  private knownPod(key: string, uid: string): PodState | null {
    const pod = this.pods.get(key);
    return pod !== undefined && (uid === '' || pod.uid === uid) ? pod : null;
  }

  /** Some policy (or a rejected one, enforced fail-closed) may select the pod in some direction. */
  private selected(pod: PodState): boolean {
    if (!this.isSynced) return true;
    if ((this.rejectedPolicies.get(pod.namespace)?.size ?? 0) > 0) return true;
    for (const policy of this.policies.get(pod.namespace)?.values() ?? []) {
      if ((policy.ingressIsolation || policy.egressIsolation) && selectorMatches(policy.podSelector, pod.labels)) return true;
    }
    return false;
  }

  /** The pod as the loop should see it: the sandbox's addresses, or the API's less those released. */
  private effective(pod: PodState): PodState {
    const key = objectKey(pod);
    const sandbox = this.sandboxes.get(key);
    if (sandbox !== undefined && (sandbox.uid === '' || sandbox.uid === pod.uid)) {
      if (pod.ips.length > 0) {
        const text = pod.ips.join(',');
        if (sameSet(pod.ips, sandbox.ips)) {
          if (this.disagreements.get(key) !== text) this.log.debug({ pod: key, ips: pod.ips }, `pod ${key}: the API status agrees with the addresses the CNI plugin gave`);
        } else if (this.disagreements.get(key) !== text) {
          this.log.warn({ pod: key, api: pod.ips, plugin: sandbox.ips, containerId: sandbox.containerId }, `pod ${key}: the API status reports ${text} but the CNI plugin gave ${sandbox.ips.join(',')} for the running sandbox; enforcing the plugin's until its DEL`);
        }
        this.disagreements.set(key, text);
      }
      return sameSet(pod.ips, sandbox.ips) ? pod : { ...pod, ips: sandbox.ips };
    }
    const releasedIps = this.released.get(key);
    if (releasedIps === undefined) return pod;
    // An address the API no longer reports needs no tombstone any more.
    for (const ip of [...releasedIps]) if (!pod.ips.includes(ip)) releasedIps.delete(ip);
    if (releasedIps.size === 0) {
      this.released.delete(key);
      return pod;
    }
    return { ...pod, ips: pod.ips.filter((ip) => !releasedIps.has(ip)) };
  }

  private track(event: ClusterEvent): ClusterEvent {
    switch (event.kind) {
      case 'Pod': {
        if (event.type === 'delete') {
          this.forgetPod(objectKey(event.ref));
          return event;
        }
        const key = objectKey(event.object);
        if (event.object.nodeName !== this.options.node) {
          this.forgetPod(key);
          return event;
        }
        this.pods.set(key, event.object);
        const object = this.effective(event.object);
        return object === event.object ? event : { ...event, object };
      }
      case 'NetworkPolicy': {
        const ref = event.type === 'upsert' ? event.object : event.ref;
        const rejected = this.rejectedPolicies.get(ref.namespace);
        rejected?.delete(ref.name);
        if (rejected?.size === 0) this.rejectedPolicies.delete(ref.namespace);
        let inNamespace = this.policies.get(ref.namespace);
        if (event.type === 'upsert') {
          if (inNamespace === undefined) this.policies.set(ref.namespace, (inNamespace = new Map()));
          inNamespace.set(ref.name, event.object);
        } else {
          inNamespace?.delete(ref.name);
          if (inNamespace?.size === 0) this.policies.delete(ref.namespace);
        }
        return event;
      }
      case 'Namespace':
        return event;
    }
  }

  private forgetPod(key: string): void {
    this.pods.delete(key);
    this.sandboxes.delete(key);
    this.released.delete(key);
    this.disagreements.delete(key);
  }

  /** Resolves with check()'s value once it is not null (checked after each source batch), or null at the deadline. */
  private waitFor<T>(check: () => T | null, deadline: number): Promise<T | null> {
    const now = check();
    if (now !== null) return Promise.resolve(now);
    return new Promise((resolve) => {
      const done = (value: T | null): void => {
        clearTimeout(timer);
        this.arrivals.delete(onArrival);
        resolve(value);
      };
      const onArrival = (): void => {
        const value = check();
        if (value !== null) done(value);
      };
      const timer = setTimeout(() => done(null), Math.max(0, deadline - performance.now()));
      this.arrivals.add(onArrival);
    });
  }

  private waitForCommit(key: string, ips: readonly string[], deadline: number): Promise<boolean> {
    const committed = this.options.committed;
    if (committed.holds(key, ips)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (value: boolean): void => {
        clearTimeout(timer);
        unsubscribe();
        resolve(value);
      };
      const unsubscribe = committed.onCommit(() => {
        if (committed.holds(key, ips)) done(true);
      });
      const timer = setTimeout(() => done(false), Math.max(0, deadline - performance.now()));
    });
  }
}
