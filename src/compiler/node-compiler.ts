// The incremental policy compiler for one node.
//
//   ClusterEvent ──> cluster state ──> targets (policy -> local pods it selects)
//                                  └─> peer index (namespace -> active rules whose peers may live there)
//                                          │
//                      units: (rule, local pod, source) -> element keys
//                                          │
//                      ElementStore (refcounted) ──> RuleTableDelta
//
// Every element of the rule table is produced by a "unit": the addresses of a local pod, its isolation
// by one policy, the binding of one rule to it, the static peers of a rule (ipBlocks, "all peers"),
// or the contribution of one peer pod to a rule. Peers belong to the rule, not to each local pod, so
// a peer event costs the same however many local pods a rule applies to. Recomputing a unit from the
// current state is idempotent, so an event only has to find the units it may have changed and
// recompute them; the refcounted store turns that into a delta of elements whose presence changed.
import { objectKey } from '../api';
import type {
  ClusterEvent, Direction, NamespaceState, PodState, PolicyRule, PolicyState, PortMatch, PortSpec,
  PolicyPeer, RuleTableDelta, RuleTableElement,
} from '../api';
import { ElementStore, elementKey } from '../ruletable';
import { NAMESPACE_NAME_LABEL, hasFinished } from '../model';
import type { Cidr } from '../net/ip';
import { cidrContainsIp, formatCidr, parseCidr, parseIp, subtractCidrs } from '../net/ip';
import { sameLabels, selectorMatches } from './selector';

type PodPeer = Extract<PolicyPeer, { kind: 'pods' }>;

interface ActiveRule {
  readonly id: string;
  readonly policy: ActivePolicy;
  readonly direction: Direction;
  readonly rule: PolicyRule;
  readonly podPeers: readonly PodPeer[];
  /** ipBlock peers with their excepts carved out, as disjoint CIDRs. */
  readonly blockCidrs: readonly string[];
  readonly blocks: readonly { cidr: Cidr; except: readonly Cidr[] }[];
  /** Egress named ports towards peers that are not selected pods ("all peers" or ipBlocks) resolve per pod. */
  readonly namedEgressNames: readonly string[];
  /** Pods that currently contribute peer elements to this rule. */
  readonly contributors: Set<string>;
  /** Namespaces its namespaceSelectors currently match (its entries in rulesBySelectedNamespace). */
  readonly selectedNamespaces: Set<string>;
}

interface ActivePolicy {
  readonly key: string;
  readonly state: PolicyState;
  readonly targets: Set<string>;
  readonly rules: ActiveRule[];
}

const ALL_PORTS_FROM = 1;
const ALL_PORTS_TO = 65535;


/** Host-network and finished pods are neither isolated targets nor selected peers. */
function isPolicyPod(p: PodState): boolean {
  return !p.hostNetwork && !hasFinished(p);
}

function addToIndex<K, V>(index: Map<K, Set<V>>, key: K, value: V): void {
  let set = index.get(key);
  if (set === undefined) index.set(key, (set = new Set()));
  set.add(value);
}

function removeFromIndex<K, V>(index: Map<K, Set<V>>, key: K, value: V): void {
  const set = index.get(key);
  if (set === undefined) return;
  set.delete(value);
  if (set.size === 0) index.delete(key);
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
  private readonly policies = new Map<string, PolicyState>();
  private readonly policiesByNamespace = new Map<string, Set<string>>();

  private readonly active = new Map<string, ActivePolicy>();
  private readonly targetPolicies = new Map<string, Set<string>>();
  /** Rules with a same-namespace pod peer, by the policy's namespace. */
  private readonly rulesByOwnNamespace = new Map<string, Set<ActiveRule>>();
  /** Rules with a namespaceSelector peer, by each namespace it currently matches. */
  private readonly rulesBySelectedNamespace = new Map<string, Set<ActiveRule>>();
  private readonly namespaceSelectorRules = new Set<ActiveRule>();
  private readonly namedEgressRules = new Set<ActiveRule>();

  private readonly units = new Map<string, string[]>();
  private readonly store = new ElementStore();

  constructor(readonly node: string) {}

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
    return this.store.takeDelta();
  }

  elements(): IterableIterator<RuleTableElement> {
    return this.store.elements();
  }

  get elementCount(): number {
    return this.store.size;
  }

  // --- events ---------------------------------------------------------------------------------

  private onNamespace(name: string, next: NamespaceState | undefined): void {
    const before = this.namespaceLabels(name);
    if (next === undefined) this.namespaces.delete(name);
    else this.namespaces.set(name, next);
    if (sameLabels(before, this.namespaceLabels(name))) return;
    for (const rule of this.namespaceSelectorRules) {
      const was = this.rulesBySelectedNamespace.get(name)?.has(rule) ?? false;
      const is = this.ruleSelectsNamespace(rule, name);
      if (was === is) continue;
      if (is) this.selectNamespace(rule, name);
      else {
        removeFromIndex(this.rulesBySelectedNamespace, name, rule);
        rule.selectedNamespaces.delete(name);
      }
      for (const key of this.podsByNamespace.get(name) ?? []) this.refreshContribution(rule, key);
    }
  }

  private onPod(key: string, next: PodState | undefined): void {
    const prev = this.pods.get(key);
    if (prev !== undefined) {
      removeFromIndex(this.podsByNamespace, prev.namespace, key);
      for (const p of prev.ports) if (p.name !== undefined) removeFromIndex(this.podsByPortName, p.name, key);
    }
    if (next === undefined) this.pods.delete(key);
    else {
      this.pods.set(key, next);
      addToIndex(this.podsByNamespace, next.namespace, key);
      for (const p of next.ports) if (p.name !== undefined) addToIndex(this.podsByPortName, p.name, key);
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
    for (const pk of oldPolicies) {
      if (!newPolicies.has(pk) || portsChanged) this.removeTarget(pk, key);
    }
    for (const pk of newPolicies) {
      if (!oldPolicies.has(pk) || portsChanged) this.addTarget(pk, key);
    }

    // As a peer of the rules of active policies.
    if (prev !== undefined && next !== undefined && samePeerView(prev, next)) return;
    const candidates = new Set<ActiveRule>(this.namedEgressRules);
    for (const pod of [prev, next]) {
      if (pod === undefined) continue;
      for (const r of this.rulesByOwnNamespace.get(pod.namespace) ?? []) candidates.add(r);
      for (const r of this.rulesBySelectedNamespace.get(pod.namespace) ?? []) candidates.add(r);
    }
    for (const rule of candidates) this.refreshContribution(rule, key);
  }

  private onPolicy(key: string, next: PolicyState | undefined): void {
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

  // --- targets and activation -----------------------------------------------------------------

  private isLocalTarget(pod: PodState): boolean {
    return pod.nodeName === this.node && isPolicyPod(pod);
  }

  private addTarget(policyKey: string, target: string): void {
    let policy = this.active.get(policyKey);
    if (policy === undefined) policy = this.activate(policyKey);
    policy.targets.add(target);
    addToIndex(this.targetPolicies, target, policyKey);
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
    const directions: [Direction, readonly PolicyRule[]][] = [['ingress', state.ingress], ['egress', state.egress]];
    for (const [direction, rules] of directions) {
      rules.forEach((rule, index) => policy.rules.push(this.makeRule(policy, direction, index, rule)));
    }
    this.active.set(policyKey, policy);
    for (const rule of policy.rules) this.indexRule(rule);
    return policy;
  }

  private deactivate(policy: ActivePolicy): void {
    for (const rule of policy.rules) {
      this.setUnit(`peer\0${rule.id}\0`, []);
      for (const peer of rule.contributors) this.setUnit(`peer\0${rule.id}\0${peer}`, []);
      removeFromIndex(this.rulesByOwnNamespace, policy.state.namespace, rule);
      for (const ns of rule.selectedNamespaces) removeFromIndex(this.rulesBySelectedNamespace, ns, rule);
      this.namespaceSelectorRules.delete(rule);
      this.namedEgressRules.delete(rule);
    }
    this.active.delete(policy.key);
  }

  private makeRule(policy: ActivePolicy, direction: Direction, index: number, rule: PolicyRule): ActiveRule {
    const podPeers: PodPeer[] = [];
    const blocks: { cidr: Cidr; except: Cidr[] }[] = [];
    for (const peer of rule.peers ?? []) {
      if (peer.kind === 'pods') podPeers.push(peer);
      else blocks.push({ cidr: mustParseCidr(peer.cidr), except: peer.except.map(mustParseCidr) });
    }
    const hasNonPodPeers = rule.peers === null || blocks.length > 0;
    const namedEgressNames = direction === 'egress' && hasNonPodPeers
      ? (rule.ports ?? []).flatMap((p) => (p.kind === 'named' ? [p.name] : []))
      : [];
    return {
      id: `${policy.key}/${direction}/${index}`,
      policy,
      direction,
      rule,
      podPeers,
      blocks,
      blockCidrs: blocks.flatMap((b) => subtractCidrs(b.cidr, b.except).map(formatCidr)),
      namedEgressNames,
      contributors: new Set(),
      selectedNamespaces: new Set(),
    };
  }

  private indexRule(rule: ActiveRule): void {
    const ns = rule.policy.state.namespace;
    if (rule.podPeers.some((p) => p.namespaceSelector === null)) addToIndex(this.rulesByOwnNamespace, ns, rule);
    const scan = new Set<string>();
    if (rule.podPeers.some((p) => p.namespaceSelector !== null)) {
      this.namespaceSelectorRules.add(rule);
      for (const name of this.allNamespaces()) {
        if (!this.ruleSelectsNamespace(rule, name)) continue;
        this.selectNamespace(rule, name);
        for (const pk of this.podsByNamespace.get(name) ?? []) scan.add(pk);
      }
    }
    if (rule.podPeers.some((p) => p.namespaceSelector === null)) {
      for (const pk of this.podsByNamespace.get(ns) ?? []) scan.add(pk);
    }
    if (rule.namedEgressNames.length > 0) {
      this.namedEgressRules.add(rule);
      for (const name of rule.namedEgressNames) for (const pk of this.podsByPortName.get(name) ?? []) scan.add(pk);
    }
    this.setUnit(`peer\0${rule.id}\0`, this.staticPeers(rule));
    for (const pk of scan) this.refreshContribution(rule, pk);
  }

  // --- peers ----------------------------------------------------------------------------------

  private namespaceLabels(name: string): NamespaceState['labels'] {
    // A namespace not (yet) seen still carries the label the API server always sets.
    return this.namespaces.get(name)?.labels ?? { [NAMESPACE_NAME_LABEL]: name };
  }

  private allNamespaces(): Set<string> {
    return new Set([...this.namespaces.keys(), ...this.podsByNamespace.keys()]);
  }

  private selectNamespace(rule: ActiveRule, name: string): void {
    addToIndex(this.rulesBySelectedNamespace, name, rule);
    rule.selectedNamespaces.add(name);
  }

  private ruleSelectsNamespace(rule: ActiveRule, name: string): boolean {
    const labels = this.namespaceLabels(name);
    return rule.podPeers.some((p) => p.namespaceSelector !== null && selectorMatches(p.namespaceSelector, labels));
  }

  private matchesPodPeer(rule: ActiveRule, pod: PodState): boolean {
    let nsLabels: NamespaceState['labels'] | undefined;
    for (const peer of rule.podPeers) {
      if (peer.namespaceSelector === null) {
        if (pod.namespace !== rule.policy.state.namespace) continue;
      } else {
        nsLabels ??= this.namespaceLabels(pod.namespace);
        if (!selectorMatches(peer.namespaceSelector, nsLabels)) continue;
      }
      if (selectorMatches(peer.podSelector, pod.labels)) return true;
    }
    return false;
  }

  /** Whether the pod can add peer elements to the rule at all (for any local target). */
  private peerRelevant(rule: ActiveRule, pod: PodState | undefined): pod is PodState {
    if (pod === undefined || !isPolicyPod(pod) || pod.ips.length === 0) return false;
    if (this.matchesPodPeer(rule, pod)) return true;
    return rule.namedEgressNames.length > 0 && pod.ports.some((p) => p.name !== undefined && rule.namedEgressNames.includes(p.name));
  }

  private refreshContribution(rule: ActiveRule, peer: string): void {
    const relevant = this.peerRelevant(rule, this.pods.get(peer));
    if (!relevant && !rule.contributors.has(peer)) return;
    if (relevant) rule.contributors.add(peer);
    else rule.contributors.delete(peer);
    this.setUnit(`peer\0${rule.id}\0${peer}`, relevant ? this.peerElements(rule, peer) : []);
  }

  // --- elements -------------------------------------------------------------------------------

  /** The rule applies to the target: the binding, and the ports known without looking at peers. */
  private bindElements(rule: ActiveRule, target: string): RuleTableElement[] {
    const targetPod = this.pods.get(target);
    if (targetPod === undefined) return [];
    // Ingress named ports name the target's own ports; egress ones name the peer's (see peerElements).
    const ports = resolvePorts(rule.rule.ports, rule.direction === 'ingress' ? targetPod : null);
    const base = { kind: 'bind', pod: target, direction: rule.direction, rule: rule.id } as const;
    return [{ ...base, port: null }, ...ports.map((port) => ({ ...base, port }))];
  }

  /** Peers that do not depend on any pod: "all peers" and ipBlocks. */
  private staticPeers(rule: ActiveRule): RuleTableElement[] {
    const peers = rule.rule.peers === null ? ['any'] : rule.blockCidrs;
    return peers.map((peer) => ({ kind: 'peer', rule: rule.id, direction: rule.direction, peer, port: null }));
  }

  /** What a pod adds to the rule's peers: its addresses, and for egress its resolved named ports. */
  private peerElements(rule: ActiveRule, peer: string): RuleTableElement[] {
    const pod = this.pods.get(peer);
    if (pod === undefined) return [];
    const selected = this.matchesPodPeer(rule, pod);
    // Egress named ports towards selected pods, "all peers" or an ipBlock: the pod's own ports name the numbers.
    const named = rule.direction === 'egress' ? resolvePorts((rule.rule.ports ?? []).filter((p) => p.kind === 'named'), pod) : [];
    const namedIps = selected || rule.rule.peers === null ? pod.ips : pod.ips.filter((ip) => this.inBlocks(rule, ip));
    const out: RuleTableElement[] = [];
    const base = { kind: 'peer', rule: rule.id, direction: rule.direction } as const;
    if (selected) for (const ip of pod.ips) out.push({ ...base, peer: ip, port: null });
    for (const ip of namedIps) for (const port of named) out.push({ ...base, peer: ip, port });
    return out;
  }

  private inBlocks(rule: ActiveRule, text: string): boolean {
    const ip = parseIp(text);
    return ip !== null && rule.blocks.some((b) => cidrContainsIp(b.cidr, ip) && !b.except.some((e) => cidrContainsIp(e, ip)));
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

function mustParseCidr(text: string): Cidr {
  const cidr = parseCidr(text);
  if (cidr === null) throw new Error(`compiler: unvalidated CIDR ${text}`);
  return cidr;
}

/**
 * The port matches of a rule. Named ports resolve against `owner` (the pod that serves them: the local
 * pod for ingress, the peer for egress); with no owner they are left out. A name the owner does not
 * declare for that protocol matches nothing.
 */
function resolvePorts(specs: readonly PortSpec[] | null, owner: PodState | null): PortMatch[] {
  if (specs === null) return ['any'];
  const out: PortMatch[] = [];
  const seen = new Set<string>();
  const push = (m: PortMatch & object): void => {
    const k = `${m.protocol}/${m.from}-${m.to}`;
    if (!seen.has(k)) { seen.add(k); out.push(m); }
  };
  for (const spec of specs) {
    switch (spec.kind) {
      case 'number':
        push({ protocol: spec.protocol, from: spec.port, to: spec.endPort });
        break;
      case 'allPorts':
        push({ protocol: spec.protocol, from: ALL_PORTS_FROM, to: ALL_PORTS_TO });
        break;
      case 'named':
        for (const cp of owner?.ports ?? []) {
          if (cp.name === spec.name && cp.protocol === spec.protocol) push({ protocol: spec.protocol, from: cp.port, to: cp.port });
        }
        break;
    }
  }
  return out;
}
