// The incremental policy compiler for one node.
//
//   ClusterEvent ──> cluster state ──> targets (policy -> local pods it selects)
//                                  │        │ activates the rules of policies that select a local pod
//                                  │        v
//                                  └─> PeerSetIndex (peer-sets.ts): one maintained peer set per peer
//                                      definition, shared by the active rules that have it
//                                          │
//          units: (local pod, policy, rule) -> elements ──> ElementStore (refcounted)
//                                          │                       │
//                                          └──────> RuleTableDelta <┘
//
// The elements of local pods (addresses, isolation, bindings) come from "units": recomputing a unit
// from the current state is idempotent, so an event only has to find the units it may have changed; the
// refcounted store turns that into a delta of elements whose presence changed. Peers belong to the rule,
// not to each local pod, so a peer event costs the same however many local pods a rule applies to, and
// a rule binding for the first time finds its peers already resolved when another rule with the same
// peers is active or was recently (the set's members become the delta, with no scan of the cluster).
import { objectKey } from '../api';
import type { ClusterEvent, Direction, Labels, NamespaceState, PodState, PolicyRule, PolicyState, RuleTableDelta, RuleTableElement } from '../api';
import { ElementStore, elementKey } from '../ruletable';
import { NAMESPACE_NAME_LABEL, hasFinished } from '../parse';
import { PodAddressIndex } from './address-index';
import type { ClusterView, PeerDefinition, PeerSetStats } from './peer-sets';
import { PeerSetIndex, peerDefinition } from './peer-sets';
import { resolvePorts } from './ports';
import { sameLabels, selectorMatches } from './selector';
import { addToIndex, removeFromIndex } from '../multimap';

interface ActiveRule {
  readonly id: string;
  readonly direction: Direction;
  readonly rule: PolicyRule;
}

interface ActivePolicy {
  readonly key: string;
  readonly state: PolicyState;
  readonly targets: Set<string>;
  readonly rules: ActiveRule[];
}

export interface NodeCompilerOptions {
  /**
   * Members (resolved addresses and ports) that peer sets no active rule uses may hold in all, kept
   * maintained so that a rule binding again finds them; 0 drops them at once. bench/engine-compile.ts
   * measures the RSS this costs.
   */
  readonly peerCacheMembers?: number;
}

export const DEFAULT_PEER_CACHE_MEMBERS = 500_000;

function policyRules(policy: PolicyState): [Direction, readonly PolicyRule[]][] {
  return [['ingress', policy.ingress], ['egress', policy.egress]];
}

/** Host-network and finished pods are neither isolated targets nor selected peers. */
function isPolicyPod(p: PodState): boolean {
  return !p.hostNetwork && !hasFinished(p);
}


function samePorts(a: PodState, b: PodState): boolean {
  return a.ports.length === b.ports.length && a.ports.every((p, i) => {
    const q = b.ports[i];
    return q !== undefined && p.name === q.name && p.port === q.port && p.protocol === q.protocol;
  });
}

/** Equal for everything that decides a pod's role as a peer. */
function samePeerView(a: PodState, b: PodState): boolean {
  return isPolicyPod(a) === isPolicyPod(b) && sameLabels(a.labels, b.labels) && a.ips.join() === b.ips.join() && samePorts(a, b);
}

export class NodeCompiler {
  private readonly namespaces = new Map<string, NamespaceState>();
  private readonly pods = new Map<string, PodState>();
  private readonly podsByNamespace = new Map<string, Set<string>>();
  private readonly podsByPortName = new Map<string, Set<string>>();
  private readonly podsByAddress = new PodAddressIndex();
  private readonly policies = new Map<string, PolicyState>();
  private readonly policiesByNamespace = new Map<string, Set<string>>();

  private readonly active = new Map<string, ActivePolicy>();
  private readonly targetPolicies = new Map<string, Set<string>>();
  private readonly peerSets: PeerSetIndex;
  /** Policy -> the cluster-wide peer definitions it pins. */
  private readonly pinned = new Map<string, PeerDefinition[]>();

  private readonly units = new Map<string, string[]>();
  private readonly store = new ElementStore();

  constructor(readonly node: string, options: NodeCompilerOptions = {}) {
    const view: ClusterView = {
      pod: (key) => this.pods.get(key),
      podsIn: (namespace) => this.podsByNamespace.get(namespace) ?? [],
      podsDeclaring: (portName) => this.podsByPortName.get(portName) ?? [],
      podsInCidr: (cidr) => this.podsByAddress.podsInCidr(cidr),
      namespaceLabels: (name) => this.namespaceLabels(name),
      namespaceNames: () => this.namespaceNames(),
    };
    this.peerSets = new PeerSetIndex(view, options.peerCacheMembers ?? DEFAULT_PEER_CACHE_MEMBERS);
  }

  apply(event: ClusterEvent): RuleTableDelta {
    switch (event.kind) {
      case 'Namespace':
        this.onNamespace(event.type === 'upsert' ? event.object.name : event.name, event.type === 'upsert' ? event.object : undefined);
        break;
      case 'Pod':
        this.onPod(event.type === 'upsert' ? objectKey(event.object) : objectKey(event.ref), event.type === 'upsert' ? event.object : undefined);
        break;
      case 'NetworkPolicy':
        this.onPolicy(event.type === 'upsert' ? objectKey(event.object) : objectKey(event.ref), event.type === 'upsert' ? event.object : undefined);
        break;
    }
    const delta = this.store.takeDelta();
    this.peerSets.takeDelta(delta.added, delta.removed);
    return delta;
  }

  *elements(): IterableIterator<RuleTableElement> {
    yield* this.store.elements();
    yield* this.peerSets.elements();
  }

  get elementCount(): number {
    return this.store.size + this.peerSets.elementCount;
  }

  peerSetStats(): PeerSetStats {
    return this.peerSets.stats();
  }

  // --- events ---------------------------------------------------------------------------------

  private onNamespace(name: string, next: NamespaceState | undefined): void {
    const before = this.namespaceLabels(name);
    if (next === undefined) this.namespaces.delete(name);
    else this.namespaces.set(name, next);
    if (!sameLabels(before, this.namespaceLabels(name))) this.peerSets.onNamespace(name);
  }

  private onPod(key: string, next: PodState | undefined): void {
    const prev = this.pods.get(key);
    if (prev !== undefined) {
      removeFromIndex(this.podsByNamespace, prev.namespace, key);
      for (const p of prev.ports) if (p.name !== undefined) removeFromIndex(this.podsByPortName, p.name, key);
      this.podsByAddress.remove(key, prev.ips);
    }
    if (next === undefined) this.pods.delete(key);
    else {
      this.pods.set(key, next);
      addToIndex(this.podsByNamespace, next.namespace, key);
      for (const p of next.ports) if (p.name !== undefined) addToIndex(this.podsByPortName, p.name, key);
      this.podsByAddress.add(key, next.ips);
    }

    // As a local pod: its addresses and the policies that select it.
    const local = next !== undefined && this.isLocalTarget(next);
    this.setUnit(`address\0${key}`, local ? next.ips.map((ip) => ({ kind: 'address', pod: key, ip })) : []);
    const oldPolicies = this.targetPolicies.get(key) ?? new Set<string>();
    const newPolicies = new Set<string>();
    if (local) {
      for (const pk of this.policiesByNamespace.get(next.namespace) ?? []) {
        const policy = this.policies.get(pk);
        if (policy !== undefined && selectorMatches(policy.podSelector, next.labels)) newPolicies.add(pk);
      }
    }
    const portsChanged = prev !== undefined && next !== undefined && !samePorts(prev, next);
    // Bind before unbinding: a rule that stays active through the change keeps its peers bound.
    for (const pk of newPolicies) {
      if (!oldPolicies.has(pk)) this.addTarget(pk, key);
      else if (portsChanged) this.refreshTarget(pk, key);
    }
    for (const pk of oldPolicies) {
      if (!newPolicies.has(pk)) this.removeTarget(pk, key);
    }

    // As a peer of the rules of active policies.
    if (prev !== undefined && next !== undefined && samePeerView(prev, next)) return;
    this.peerSets.onPod(key, prev, next);
  }

  private onPolicy(key: string, next: PolicyState | undefined): void {
    this.repin(key, next);
    const prev = this.policies.get(key);
    const activePrev = this.active.get(key);
    if (activePrev !== undefined) {
      for (const target of [...activePrev.targets]) this.removeTarget(key, target);
    }
    if (prev !== undefined) removeFromIndex(this.policiesByNamespace, prev.namespace, key);
    if (next === undefined) {
      this.policies.delete(key);
      return;
    }
    this.policies.set(key, next);
    addToIndex(this.policiesByNamespace, next.namespace, key);
    for (const pk of this.podsByNamespace.get(next.namespace) ?? []) {
      const pod = this.pods.get(pk);
      if (pod !== undefined && this.isLocalTarget(pod) && selectorMatches(next.podSelector, pod.labels)) this.addTarget(key, pk);
    }
  }

  /**
   * Pins the policy's cluster-wide peer definitions (those whose build scans the whole cluster), so
   * that a pod starting on this node finds them built; the new ones before the old ones go, so an
   * update that keeps one does not rebuild it.
   */
  private repin(key: string, next: PolicyState | undefined): void {
    const before = this.pinned.get(key) ?? [];
    const after = new Map<string, PeerDefinition>();
    if (next !== undefined) {
      for (const [direction, rules] of policyRules(next)) {
        for (const rule of rules) {
          const def = peerDefinition(next.namespace, direction, rule);
          if (def.clusterWide) after.set(def.key, def);
        }
      }
    }
    for (const def of after.values()) this.peerSets.pin(key, def);
    for (const def of before) if (!after.has(def.key)) this.peerSets.unpin(key, def);
    if (after.size > 0) this.pinned.set(key, [...after.values()]);
    else this.pinned.delete(key);
  }

  // --- targets and activation -----------------------------------------------------------------

  private isLocalTarget(pod: PodState): boolean {
    return pod.nodeName === this.node && isPolicyPod(pod);
  }

  private addTarget(policyKey: string, target: string): void {
    let policy = this.active.get(policyKey);
    if (policy === undefined) policy = this.activate(policyKey);
    policy.targets.add(target);
    addToIndex(this.targetPolicies, target, policyKey);
    this.refreshTarget(policyKey, target);
  }

  private refreshTarget(policyKey: string, target: string): void {
    const policy = this.active.get(policyKey);
    if (policy === undefined) return;
    const state = policy.state;
    const isolation: RuleTableElement[] = [];
    if (state.ingressIsolation) isolation.push({ kind: 'isolation', pod: target, direction: 'ingress', policy: policyKey });
    if (state.egressIsolation) isolation.push({ kind: 'isolation', pod: target, direction: 'egress', policy: policyKey });
    this.setUnit(`isolation\0${policyKey}\0${target}`, isolation);
    for (const rule of policy.rules) this.setUnit(`bind\0${rule.id}\0${target}`, this.bindElements(rule, target));
  }

  private removeTarget(policyKey: string, target: string): void {
    const policy = this.active.get(policyKey);
    if (policy === undefined || !policy.targets.delete(target)) return;
    removeFromIndex(this.targetPolicies, target, policyKey);
    this.setUnit(`isolation\0${policyKey}\0${target}`, []);
    for (const rule of policy.rules) this.setUnit(`bind\0${rule.id}\0${target}`, []);
    if (policy.targets.size === 0) this.deactivate(policy);
  }

  private activate(policyKey: string): ActivePolicy {
    const state = this.policies.get(policyKey);
    if (state === undefined) throw new Error(`compiler: activating unknown policy ${policyKey}`);
    const policy: ActivePolicy = { key: policyKey, state, targets: new Set(), rules: [] };
    for (const [direction, rules] of policyRules(state)) {
      rules.forEach((rule, index) => {
        const active: ActiveRule = { id: `${policyKey}/${direction}/${index}`, direction, rule };
        policy.rules.push(active);
        this.peerSets.attach(active, peerDefinition(state.namespace, direction, rule));
      });
    }
    this.active.set(policyKey, policy);
    return policy;
  }

  private deactivate(policy: ActivePolicy): void {
    for (const rule of policy.rules) this.peerSets.detach(rule);
    this.active.delete(policy.key);
  }

  /** Namespaces seen, and those only known through their pods. */
  private *namespaceNames(): IterableIterator<string> {
    yield* this.namespaces.keys();
    for (const name of this.podsByNamespace.keys()) if (!this.namespaces.has(name)) yield name;
  }

  private namespaceLabels(name: string): Labels {
    // A namespace not (yet) seen still carries the label the API server always sets.
    return this.namespaces.get(name)?.labels ?? { [NAMESPACE_NAME_LABEL]: name };
  }

  // --- elements -------------------------------------------------------------------------------

  /** The rule applies to the target: the binding, and the ports known without looking at peers. */
  private bindElements(rule: ActiveRule, target: string): RuleTableElement[] {
    const targetPod = this.pods.get(target);
    if (targetPod === undefined) return [];
    // Ingress named ports name the target's own ports; egress ones name the peer's (see peer-sets.ts).
    const ports = resolvePorts(rule.rule.ports, rule.direction === 'ingress' ? targetPod : null);
    const base = { kind: 'bind', pod: target, direction: rule.direction, rule: rule.id } as const;
    return [{ ...base, port: null }, ...ports.map((port) => ({ ...base, port }))];
  }

  private setUnit(unit: string, elements: readonly RuleTableElement[]): void {
    const before = this.units.get(unit);
    const keys = elements.map(elementKey);
    elements.forEach((e, i) => this.store.acquire(keys[i] as string, e));
    if (before !== undefined) for (const k of before) this.store.release(k);
    if (keys.length === 0) this.units.delete(unit);
    else this.units.set(unit, keys);
  }
}
