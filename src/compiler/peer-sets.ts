// Peer sets: the resolved peers of a rule, held once per peer definition and shared by every rule that
// has the same definition (what Felix does with one IP set per selector).
//
//   pod / namespace events ──> PeerSetIndex ──> PeerSet (members, refcounted by contributing pod)
//                                                   │  attached rules (active rules with this definition)
//                                                   └─> peer elements = members × attached rules
//
// A set is built by one scan when a rule first needs it, then maintained from pod and namespace events.
// When its last rule goes (no local pod uses it right now) it moves to an LRU cache bounded by members,
// where it is still maintained, so binding a rule whose definition is live or cached costs no scan: only
// the elements of the delta. The table never depends on what is cached: an evicted set is rebuilt.
// Definitions whose build scans the whole cluster (every pod declaring a named port, every namespace)
// are pinned while a policy of the cluster has them, built when that policy arrives: a pod starting on
// this node never waits for that scan.
//
// Members are grouped by port (the rule's bound ports, or a named port resolved against the peer) and
// refcounted by contributing pod; a member is the very address string the pod holds, so a set of every
// pod of a 100,000-pod cluster costs a few MB (bench/engine-compile.ts measures it).
import { LRUCache } from 'lru-cache';
import type { Direction, Labels, PeerMatch, PodState, PolicyPeer, PolicyRule, PortMatch, PortSpec, RuleTableElement } from '../api';
import { hasFinished } from '../parse';
import type { Cidr } from '../net/ip';
import { cidrContainsIp, formatCidr, parseCidr, parseIp, subtractCidrs } from '../net/ip';
import { portMatchText } from '../ruletable';
import { addressBucket, cidrBucket } from './address-index';
import { resolvePorts } from './ports';
import { selectorMatches } from './selector';
import { addToIndex, removeFromIndex } from '../multimap';

type PodPeer = Extract<PolicyPeer, { kind: 'pods' }>;

/** What the peer sets read of the cluster state the compiler keeps. */
export interface ClusterView {
  pod(key: string): PodState | undefined;
  podsIn(namespace: string): Iterable<string>;
  podsDeclaring(portName: string): Iterable<string>;
  /** A superset of the pods with an address inside the CIDR. */
  podsInCidr(cidr: Cidr): Iterable<string>;
  namespaceLabels(name: string): Labels;
  namespaceNames(): Iterable<string>;
}

/** Everything a rule's peer elements depend on, apart from the rule's name and direction. */
export interface PeerDefinition {
  /** Canonical text of the rest: rules with equal keys share one set. */
  readonly key: string;
  readonly namespace: string;
  readonly podPeers: readonly PodPeer[];
  /** The rule has no peers: every address. */
  readonly allPeers: boolean;
  readonly blocks: readonly { readonly cidr: Cidr; readonly except: readonly Cidr[] }[];
  /** Peers that depend on no pod: "any", or the ipBlocks with their excepts carved out. */
  readonly staticPeers: readonly PeerMatch[];
  /** Egress named ports, resolved against each peer pod's own container ports. */
  readonly namedPorts: readonly PortSpec[];
  /** Port names whose declaring pods are peers without being selected: "all peers", or ipBlocks. */
  readonly scanNames: readonly string[];
  /** Buckets (address-index.ts) the ipBlocks lie in, when some pod in them may be a peer on a named port. */
  readonly blockBuckets: readonly string[];
  /** Some ipBlock spans several buckets: every pod declaring a scanned name is checked. */
  readonly wideBlocks: boolean;
  /**
   * Building the set scans the whole cluster: every pod declaring a named port ("all peers" or a wide
   * ipBlock), or every namespace (an empty namespaceSelector).
   */
  readonly clusterWide: boolean;
  /**
   * No pod peers: what a pod contributes depends on the pod alone (its addresses and ports), so it is
   * computed again from the pod's previous state instead of being stored, per pod, in the set.
   */
  readonly stateless: boolean;
  /** Some pod peer has no namespaceSelector: it selects in the policy's namespace. */
  readonly ownNamespace: boolean;
  readonly selectsNamespaces: boolean;
}

/** The rule a set's elements are written for. */
export interface BoundRule {
  readonly id: string;
  readonly direction: Direction;
}

function mustParseCidr(text: string): Cidr {
  const cidr = parseCidr(text);
  if (cidr === null) throw new Error(`compiler: unvalidated CIDR ${text}`);
  return cidr;
}

/**
 * What one contributor holds: peers on the rule's bound ports, and namedPeers on each of namedPorts
 * (named ports resolved against the peer; the list is interned, so pods with the same ports share it).
 */
interface Contribution {
  readonly peers: readonly PeerMatch[];
  readonly namedPorts: readonly PortMatch[];
  readonly namedPeers: readonly string[];
}

const NONE: readonly never[] = [];
const NOTHING: Contribution = { peers: NONE, namedPorts: NONE, namedPeers: NONE };

function isEmpty(c: Contribution): boolean {
  return c.peers.length === 0 && (c.namedPorts.length === 0 || c.namedPeers.length === 0);
}

export function peerDefinition(namespace: string, direction: Direction, rule: PolicyRule): PeerDefinition {
  const podPeers: PodPeer[] = [];
  const blockSpecs: PolicyPeer[] = [];
  for (const peer of rule.peers ?? []) {
    if (peer.kind === 'pods') podPeers.push(peer);
    else blockSpecs.push(peer);
  }
  const blocks = blockSpecs.flatMap((b) => (b.kind === 'ipBlock' ? [{ cidr: mustParseCidr(b.cidr), except: b.except.map(mustParseCidr) }] : []));
  const allPeers = rule.peers === null;
  // Ingress named ports name the local pod's ports: they are resolved in its binding, not here.
  const namedPorts = direction === 'egress' ? (rule.ports ?? []).filter((p) => p.kind === 'named') : [];
  const ownNamespace = podPeers.some((p) => p.namespaceSelector === null);
  // Peers are a union and ports a set: their order does not change the members.
  const canonical = (items: readonly object[]): string[] => items.map((i) => JSON.stringify(i)).sort();
  const namedScan = namedPorts.length > 0 && blocks.length > 0;
  const blockBuckets = namedScan ? blocks.map((b) => cidrBucket(b.cidr)) : [];
  const wideBlocks = blockBuckets.includes(null);
  return {
    key: JSON.stringify([ownNamespace ? namespace : null, canonical(podPeers), allPeers, canonical(blockSpecs), canonical(namedPorts)]),
    namespace,
    podPeers,
    allPeers,
    blocks,
    staticPeers: allPeers ? ['any'] : blocks.flatMap((b) => subtractCidrs(b.cidr, b.except).map(formatCidr)),
    namedPorts,
    scanNames: allPeers || wideBlocks ? namedPorts.flatMap((p) => (p.kind === 'named' ? [p.name] : [])) : [],
    blockBuckets: wideBlocks ? [] : [...new Set(blockBuckets.filter((b): b is string => b !== null))],
    wideBlocks,
    clusterWide: ((allPeers || wideBlocks) && namedPorts.length > 0) || podPeers.some((p) => p.namespaceSelector !== null && p.namespaceSelector.requirements.length === 0),
    stateless: podPeers.length === 0,
    ownNamespace,
    selectsNamespaces: podPeers.some((p) => p.namespaceSelector !== null),
  };
}

function selectsNamespace(def: PeerDefinition, labels: Labels): boolean {
  return def.podPeers.some((p) => p.namespaceSelector !== null && selectorMatches(p.namespaceSelector, labels));
}

function selectsPod(def: PeerDefinition, pod: PodState, view: ClusterView): boolean {
  let nsLabels: Labels | undefined;
  for (const peer of def.podPeers) {
    if (peer.namespaceSelector === null) {
      if (pod.namespace !== def.namespace) continue;
    } else {
      nsLabels ??= view.namespaceLabels(pod.namespace);
      if (!selectorMatches(peer.namespaceSelector, nsLabels)) continue;
    }
    if (selectorMatches(peer.podSelector, pod.labels)) return true;
  }
  return false;
}

function inBlocks(def: PeerDefinition, text: string): boolean {
  const ip = parseIp(text);
  return ip !== null && def.blocks.some((b) => cidrContainsIp(b.cidr, ip) && !b.except.some((e) => cidrContainsIp(e, ip)));
}

/** Host-network and finished pods are never peers. */
function canBePeer(pod: PodState): boolean {
  return !pod.hostNetwork && !hasFinished(pod) && pod.ips.length > 0;
}

/**
 * What a pod adds to the set (`selected`: by one of its pod peers): its addresses if selected, and for
 * egress its addresses on its resolved named ports. `intern` gives the one object of each port match.
 */
function contribution(def: PeerDefinition, pod: PodState, selected: boolean, portsOf: (def: PeerDefinition, pod: PodState) => readonly PortMatch[]): Contribution {
  const peers = selected ? pod.ips : NONE;
  const namedPorts = def.namedPorts.length === 0 ? NONE : portsOf(def, pod);
  if (namedPorts.length === 0) return selected ? { peers, namedPorts, namedPeers: NONE } : NOTHING;
  // Towards selected pods, "all peers" or an ipBlock: the pod's own ports name the numbers.
  const namedPeers = selected || def.allPeers ? pod.ips : pod.ips.filter((ip) => inBlocks(def, ip));
  return { peers, namedPorts, namedPeers };
}

/** A port group's key: null for the rule's bound ports, else the interned named port. */
type PortKey = PortMatch | null;

class PeerSet {
  readonly rules = new Set<BoundRule>();
  /** The policy rules that keep it maintained while no local pod uses it (PeerSetIndex.pin). */
  readonly pins = new Set<string>();
  /** port -> peer -> how many contributors hold it. */
  readonly members = new Map<PortKey, Map<string, number>>();
  size = 0;
  readonly contributions = new Map<string, Contribution>();
  /** Namespaces its namespaceSelectors currently match (its entries in the index by namespace). */
  readonly selectedNamespaces = new Set<string>();
  /** Members whose presence changed since the last delta: port -> peer -> whether it was present before. */
  readonly touched = new Map<PortKey, Map<string, boolean>>();
  /** Off while the set is built: no rule has seen it yet, so there is nothing to compare with. */
  journaling = false;

  constructor(readonly def: PeerDefinition) {}

  setContribution(contributor: string, next: Contribution): void {
    this.replace(this.contributions.get(contributor) ?? NOTHING, next);
    if (isEmpty(next)) this.contributions.delete(contributor);
    else this.contributions.set(contributor, next);
  }

  /** Swaps what one contributor holds; the caller knows what it held (see PeerDefinition.stateless). */
  replace(before: Contribution, next: Contribution): void {
    // Acquire first, so a member the contributor keeps never leaves the set.
    for (const peer of next.peers) this.acquire(null, peer);
    for (const port of next.namedPorts) for (const peer of next.namedPeers) this.acquire(port, peer);
    for (const peer of before.peers) this.release(null, peer);
    for (const port of before.namedPorts) for (const peer of before.namedPeers) this.release(port, peer);
  }

  has(port: PortKey, peer: string): boolean {
    return this.members.get(port)?.has(peer) ?? false;
  }

  /** Whether the member was present when the pending changes began. */
  hadAtStart(port: PortKey, peer: string): boolean {
    const before = this.touched.get(port)?.get(peer);
    return before === undefined ? this.has(port, peer) : before;
  }

  forEach(fn: (port: PortKey, peer: string) => void): void {
    for (const [port, group] of this.members) for (const peer of group.keys()) fn(port, peer);
  }

  forEachAtStart(fn: (port: PortKey, peer: string) => void): void {
    for (const [port, group] of this.members) {
      const touched = this.touched.get(port);
      for (const peer of group.keys()) if (touched?.get(peer) !== false) fn(port, peer);
    }
    for (const [port, touched] of this.touched) {
      for (const [peer, before] of touched) if (before && !this.has(port, peer)) fn(port, peer);
    }
  }

  private acquire(port: PortKey, peer: string): void {
    let group = this.members.get(port);
    if (group === undefined) this.members.set(port, (group = new Map()));
    const n = group.get(peer);
    if (n !== undefined) {
      group.set(peer, n + 1);
      return;
    }
    this.note(port, peer, false);
    group.set(peer, 1);
    this.size++;
  }

  private release(port: PortKey, peer: string): void {
    const group = this.members.get(port);
    const n = group?.get(peer);
    if (group === undefined || n === undefined) throw new Error(`compiler: peer set released a member it does not hold: ${peer}`);
    if (n > 1) {
      group.set(peer, n - 1);
      return;
    }
    group.delete(peer);
    if (group.size === 0) this.members.delete(port);
    this.size--;
    this.note(port, peer, true);
  }

  private note(port: PortKey, peer: string, wasPresent: boolean): void {
    if (!this.journaling) return;
    let touched = this.touched.get(port);
    if (touched === undefined) this.touched.set(port, (touched = new Map()));
    if (!touched.has(peer)) touched.set(peer, wasPresent);
  }
}

function peerElement(rule: BoundRule, port: PortKey, peer: string): RuleTableElement {
  return { kind: 'peer', rule: rule.id, direction: rule.direction, peer, port };
}


export interface PeerSetStats {
  /** Sets attached to at least one active rule or pinned by a policy. */
  readonly liveSets: number;
  readonly liveMembers: number;
  readonly pinnedSets: number;
  /** Sets no active rule uses, kept and maintained in the cache. */
  readonly cachedSets: number;
  readonly cachedMembers: number;
  /** Sets built by a scan of the cluster, and bindings that found their set live or cached. */
  readonly built: number;
  readonly reused: number;
}

export class PeerSetIndex {
  private readonly live = new Map<string, PeerSet>();
  private readonly cache: LRUCache<string, PeerSet> | null;
  private readonly attached = new Map<string, { rule: BoundRule; set: PeerSet }>();
  /** Rules attached, detached or moved since the last delta, with the set they had before. */
  private readonly journal = new Map<string, { rule: BoundRule; before: PeerSet | null }>();
  private readonly touchedSets = new Set<PeerSet>();

  private readonly byOwnNamespace = new Map<string, Set<PeerSet>>();
  private readonly bySelectedNamespace = new Map<string, Set<PeerSet>>();
  private readonly namespaceSelecting = new Set<PeerSet>();
  private readonly byScanName = new Map<string, Set<PeerSet>>();
  /** Sets with ipBlocks (and named ports) by the address bucket each block lies in. */
  private readonly byBucket = new Map<string, Set<PeerSet>>();
  /**
   * A definition's named ports resolved against a pod, as one interned list per distinct result (port
   * groups of every set are keyed by the identity of their port). Pods mostly declare the same ports,
   * so this is a lookup, not an allocation per pod.
   */
  private readonly resolvedPorts = new Map<string, readonly PortMatch[]>();
  private readonly namedPortsOf = (def: PeerDefinition, pod: PodState): readonly PortMatch[] => {
    let text = '';
    for (const spec of def.namedPorts) {
      if (spec.kind !== 'named') continue;
      for (const cp of pod.ports) if (cp.name === spec.name && cp.protocol === spec.protocol) text += `${cp.protocol}/${cp.port},`;
    }
    if (text === '') return NONE;
    let ports = this.resolvedPorts.get(text);
    if (ports === undefined) {
      ports = resolvePorts(def.namedPorts, pod).map((m) => this.portsByText.get(portMatchText(m)) ?? this.remember(m));
      this.resolvedPorts.set(text, ports);
    }
    return ports;
  };
  /** One object per port match. */
  private readonly portsByText = new Map<string, PortMatch>();

  private built = 0;
  private reused = 0;

  /** cacheMembers: how many members the sets no rule uses may hold in all; 0 drops them at once. */
  constructor(private readonly view: ClusterView, cacheMembers: number) {
    this.cache = cacheMembers <= 0 ? null : new LRUCache<string, PeerSet>({
      maxSize: cacheMembers,
      // Measured when the set enters the cache; it is maintained there, so its size drifts with churn.
      sizeCalculation: (set) => set.size + 1,
      dispose: (set, _key, reason) => {
        if (reason === 'evict') this.unindex(set);
      },
    });
  }

  attach(rule: BoundRule, def: PeerDefinition): void {
    this.note(rule);
    const set = this.acquire(def);
    set.rules.add(rule);
    this.attached.set(rule.id, { rule, set });
  }

  detach(rule: BoundRule): void {
    const entry = this.attached.get(rule.id);
    if (entry === undefined || entry.rule !== rule) return;
    this.note(rule);
    this.attached.delete(rule.id);
    entry.set.rules.delete(rule);
    this.releaseIfUnused(entry.set);
  }

  /**
   * Keeps the definition's set built and maintained while a policy of the cluster has it, whether or
   * not a local pod uses it: for the definitions whose build scans the whole cluster (clusterWide), so
   * that a pod starting on this node never waits for that scan. `holder` names the policy rule.
   */
  pin(holder: string, def: PeerDefinition): void {
    const set = this.acquire(def);
    set.pins.add(holder);
  }

  unpin(holder: string, def: PeerDefinition): void {
    const set = this.live.get(def.key);
    if (set === undefined || !set.pins.delete(holder)) return;
    this.releaseIfUnused(set);
  }

  private acquire(def: PeerDefinition): PeerSet {
    let set = this.live.get(def.key);
    if (set !== undefined) {
      this.reused++;
      return set;
    }
    set = this.cache?.get(def.key);
    if (set === undefined) set = this.build(def);
    else {
      this.cache?.delete(def.key);
      this.reused++;
    }
    this.live.set(def.key, set);
    return set;
  }

  private releaseIfUnused(set: PeerSet): void {
    if (set.rules.size > 0 || set.pins.size > 0) return;
    this.live.delete(set.def.key);
    if (this.cache === null) return this.unindex(set);
    this.cache.set(set.def.key, set);
    if (!this.cache.has(set.def.key)) this.unindex(set); // larger than the whole cache
  }

  /** A pod changed (prev and next as the compiler saw them); the cluster view already shows next. */
  onPod(key: string, prev: PodState | undefined, next: PodState | undefined): void {
    const candidates = new Set<PeerSet>();
    const collect = (sets: Set<PeerSet> | undefined): void => {
      if (sets !== undefined) for (const s of sets) candidates.add(s);
    };
    for (const pod of [prev, next]) {
      if (pod === undefined) continue;
      collect(this.byOwnNamespace.get(pod.namespace));
      collect(this.bySelectedNamespace.get(pod.namespace));
      for (const p of pod.ports) if (p.name !== undefined) collect(this.byScanName.get(p.name));
      if (this.byBucket.size > 0) {
        for (const ip of pod.ips) {
          const bucket = addressBucket(ip);
          if (bucket !== null) collect(this.byBucket.get(bucket.key));
        }
      }
    }
    for (const set of candidates) {
      if (set.def.stateless) this.replaceStateless(set, prev, next);
      else this.refresh(set, key);
    }
  }

  /** A namespace's labels changed; the cluster view already shows the new ones. */
  onNamespace(name: string): void {
    const labels = this.view.namespaceLabels(name);
    for (const set of this.namespaceSelecting) {
      const was = set.selectedNamespaces.has(name);
      const is = selectsNamespace(set.def, labels);
      if (is && !was) {
        addToIndex(this.bySelectedNamespace, name, set);
        set.selectedNamespaces.add(name);
      } else if (was && !is) {
        removeFromIndex(this.bySelectedNamespace, name, set);
        set.selectedNamespaces.delete(name);
      }
      // Still selected, perhaps through another peer with another podSelector: every pod is rechecked.
      if (was || is) for (const pod of this.view.podsIn(name)) this.refresh(set, pod);
    }
  }

  /** Appends the peer elements that changed since the last call. */
  takeDelta(added: RuleTableElement[], removed: RuleTableElement[]): void {
    const moved = new Set<string>();
    for (const [id, { rule, before }] of this.journal) {
      const afterEntry = this.attached.get(id);
      const after = afterEntry?.set ?? null;
      if (before === after) continue;
      moved.add(id);
      if (before !== null) {
        before.forEachAtStart((port, peer) => {
          if (after === null || !after.has(port, peer)) removed.push(peerElement(rule, port, peer));
        });
      }
      if (after !== null && afterEntry !== undefined) {
        const rule = afterEntry.rule;
        after.forEach((port, peer) => {
          if (before === null || !before.hadAtStart(port, peer)) added.push(peerElement(rule, port, peer));
        });
      }
    }
    for (const set of this.touchedSets) {
      for (const rule of set.rules) {
        if (moved.has(rule.id)) continue;
        for (const [port, touched] of set.touched) {
          for (const [peer, before] of touched) {
            const now = set.has(port, peer);
            if (!before && now) added.push(peerElement(rule, port, peer));
            else if (before && !now) removed.push(peerElement(rule, port, peer));
          }
        }
      }
      set.touched.clear();
    }
    this.touchedSets.clear();
    this.journal.clear();
  }

  *elements(): IterableIterator<RuleTableElement> {
    for (const { rule, set } of this.attached.values()) {
      for (const [port, group] of set.members) for (const peer of group.keys()) yield peerElement(rule, port, peer);
    }
  }

  get elementCount(): number {
    let n = 0;
    for (const { set } of this.attached.values()) n += set.size;
    return n;
  }

  stats(): PeerSetStats {
    return {
      liveSets: this.live.size,
      liveMembers: [...this.live.values()].reduce((n, set) => n + set.size, 0),
      pinnedSets: [...this.live.values()].filter((set) => set.pins.size > 0).length,
      cachedSets: this.cache?.size ?? 0,
      cachedMembers: this.cache?.calculatedSize ?? 0,
      built: this.built,
      reused: this.reused,
    };
  }

  private remember(m: PortMatch): PortMatch {
    this.portsByText.set(portMatchText(m), m);
    return m;
  }

  private note(rule: BoundRule): void {
    if (!this.journal.has(rule.id)) this.journal.set(rule.id, { rule, before: this.attached.get(rule.id)?.set ?? null });
  }

  private build(def: PeerDefinition): PeerSet {
    this.built++;
    const set = new PeerSet(def);
    // The definition's own peers never change: they are held for the life of the set.
    set.replace(NOTHING, { peers: def.staticPeers, namedPorts: NONE, namedPeers: NONE });
    if (def.ownNamespace) addToIndex(this.byOwnNamespace, def.namespace, set);
    if (def.selectsNamespaces) {
      this.namespaceSelecting.add(set);
      for (const name of this.view.namespaceNames()) {
        if (!selectsNamespace(def, this.view.namespaceLabels(name))) continue;
        addToIndex(this.bySelectedNamespace, name, set);
        set.selectedNamespaces.add(name);
      }
    }
    // Each namespace once, with the pod peers that apply there decided once for all its pods.
    const namespaces = new Set(set.selectedNamespaces);
    if (def.ownNamespace) namespaces.add(def.namespace);
    for (const name of namespaces) {
      const labels = this.view.namespaceLabels(name);
      const peers = def.podPeers.filter((p) => (p.namespaceSelector === null ? name === def.namespace : selectorMatches(p.namespaceSelector, labels)));
      for (const key of this.view.podsIn(name)) {
        const pod = this.view.pod(key);
        if (pod !== undefined) this.contribute(set, key, pod, peers.some((p) => selectorMatches(p.podSelector, pod.labels)));
      }
    }
    // A pod found through several names or blocks is resolved once (a stateless set keeps no record).
    const scanned = new Set<string>();
    const sources = def.scanNames.length + (def.blockBuckets.length > 0 ? def.blocks.length : 0);
    const scan = (key: string): void => {
      if (sources > 1) {
        if (scanned.has(key)) return;
        scanned.add(key);
      }
      if (def.stateless) this.replaceStateless(set, undefined, this.view.pod(key));
      else this.refresh(set, key);
    };
    for (const name of def.scanNames) {
      addToIndex(this.byScanName, name, set);
      for (const pod of this.view.podsDeclaring(name)) scan(pod);
    }
    if (def.blockBuckets.length > 0) {
      for (const bucket of def.blockBuckets) addToIndex(this.byBucket, bucket, set);
      for (const block of def.blocks) for (const pod of this.view.podsInCidr(block.cidr)) scan(pod);
    }
    set.journaling = true;
    return set;
  }

  private unindex(set: PeerSet): void {
    const def = set.def;
    if (def.ownNamespace) removeFromIndex(this.byOwnNamespace, def.namespace, set);
    for (const name of set.selectedNamespaces) removeFromIndex(this.bySelectedNamespace, name, set);
    this.namespaceSelecting.delete(set);
    for (const name of def.scanNames) removeFromIndex(this.byScanName, name, set);
    for (const bucket of def.blockBuckets) removeFromIndex(this.byBucket, bucket, set);
  }

  private refresh(set: PeerSet, podKey: string): void {
    const pod = this.view.pod(podKey);
    if (pod === undefined) this.contribute(set, podKey, undefined, false);
    else this.contribute(set, podKey, pod, set.def.podPeers.length > 0 && selectsPod(set.def, pod, this.view));
  }

  private replaceStateless(set: PeerSet, prev: PodState | undefined, next: PodState | undefined): void {
    const before = prev === undefined || !canBePeer(prev) ? NOTHING : contribution(set.def, prev, false, this.namedPortsOf);
    const after = next === undefined || !canBePeer(next) ? NOTHING : contribution(set.def, next, false, this.namedPortsOf);
    if (isEmpty(before) && isEmpty(after)) return;
    set.replace(before, after);
    if (set.touched.size > 0) this.touchedSets.add(set);
  }

  private contribute(set: PeerSet, podKey: string, pod: PodState | undefined, selected: boolean): void {
    const next = pod === undefined || !canBePeer(pod) ? NOTHING : contribution(set.def, pod, selected, this.namedPortsOf);
    if (isEmpty(next) && !set.contributions.has(podKey)) return;
    set.setContribution(podKey, next);
    if (set.touched.size > 0) this.touchedSets.add(set);
  }
}
