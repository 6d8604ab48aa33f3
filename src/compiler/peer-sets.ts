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
//
// Members are text keys, refcounted by contributing pod: a peer with no port is its own key (a pod's
// address is the very string the pod holds), a peer on a port is "peer|port". A set of every pod of a
// 100,000-pod cluster costs a few MB (bench/engine-compile.ts measures it).
import { LRUCache } from 'lru-cache';
import type { Direction, Labels, PeerMatch, PodState, PolicyPeer, PolicyRule, PortMatch, PortSpec, RuleTableElement } from '../api';
import { hasFinished } from '../model';
import type { Cidr } from '../net/ip';
import { cidrContainsIp, formatCidr, parseCidr, parseIp, subtractCidrs } from '../net/ip';
import { portMatchText } from '../ruletable';
import { addressBucket, cidrBucket } from './address-index';
import { resolvePorts } from './ports';
import { selectorMatches } from './selector';

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
  /** Some pod peer has no namespaceSelector: it selects in the policy's namespace. */
  readonly ownNamespace: boolean;
  readonly selectsNamespaces: boolean;
}

/** The rule a set's elements are written for. */
export interface BoundRule {
  readonly id: string;
  readonly direction: Direction;
}

/** The key of a contribution that comes from the definition itself (pod keys always contain a "/"). */
const STATIC_CONTRIBUTOR = '';

function mustParseCidr(text: string): Cidr {
  const cidr = parseCidr(text);
  if (cidr === null) throw new Error(`compiler: unvalidated CIDR ${text}`);
  return cidr;
}

function memberKey(peer: PeerMatch, portText: string): string {
  return `${peer}|${portText}`;
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
 * What a pod adds to the set (`selected`: by one of its pod peers), as member keys: its addresses if selected, and for egress its resolved
 * named ports. `portText` registers the port matches the keys name.
 */
function contribution(def: PeerDefinition, pod: PodState, selected: boolean, portText: (m: PortMatch) => string): readonly string[] {
  if (def.namedPorts.length === 0) return selected ? pod.ips : [];
  const named = resolvePorts(def.namedPorts, pod);
  if (named.length === 0) return selected ? pod.ips : [];
  const out: string[] = selected ? [...pod.ips] : [];
  // Towards selected pods, "all peers" or an ipBlock: the pod's own ports name the numbers.
  const namedIps = selected || def.allPeers ? pod.ips : pod.ips.filter((ip) => inBlocks(def, ip));
  for (const port of named) {
    const text = portText(port);
    for (const ip of namedIps) out.push(memberKey(ip, text));
  }
  return out;
}

class PeerSet {
  readonly rules = new Set<BoundRule>();
  /** The policy rules that keep it maintained while no local pod uses it (PeerSetIndex.pin). */
  readonly pins = new Set<string>();
  /** member key -> how many contributors hold it. */
  readonly members = new Map<string, number>();
  /** contributor -> the member keys it holds (one key is held as itself). */
  readonly contributions = new Map<string, string | readonly string[]>();
  /** Namespaces its namespaceSelectors currently match (its entries in the index by namespace). */
  readonly selectedNamespaces = new Set<string>();
  /** Members whose presence changed since the last delta: key -> whether it was present before. */
  readonly touched = new Map<string, boolean>();
  /** Off while the set is built: no rule has seen it yet, so there is nothing to compare with. */
  journaling = false;

  constructor(readonly def: PeerDefinition) {}

  setContribution(contributor: string, keys: readonly string[]): void {
    const before = this.contributions.get(contributor);
    // Acquire first, so a member the contributor keeps never leaves the set.
    for (const key of keys) {
      const n = this.members.get(key);
      if (n !== undefined) this.members.set(key, n + 1);
      else {
        if (this.journaling && !this.touched.has(key)) this.touched.set(key, false);
        this.members.set(key, 1);
      }
    }
    if (typeof before === 'string') this.release(before);
    else if (before !== undefined) for (const key of before) this.release(key);
    if (keys.length === 0) this.contributions.delete(contributor);
    else this.contributions.set(contributor, keys.length === 1 ? (keys[0] as string) : keys);
  }

  private release(key: string): void {
    const n = this.members.get(key);
    if (n === undefined) throw new Error(`compiler: peer set released a member it does not hold: ${key}`);
    if (n > 1) {
      this.members.set(key, n - 1);
      return;
    }
    this.members.delete(key);
    if (this.journaling && !this.touched.has(key)) this.touched.set(key, true);
  }

  /** Whether the member was present when the pending changes began. */
  hadAtStart(key: string): boolean {
    const before = this.touched.get(key);
    return before === undefined ? this.members.has(key) : before;
  }

  forEachAtStart(fn: (key: string) => void): void {
    for (const key of this.members.keys()) if (this.touched.get(key) !== false) fn(key);
    for (const [key, before] of this.touched) if (before && !this.members.has(key)) fn(key);
  }
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
  /** The port matches member keys name, by their text. */
  private readonly portsByText = new Map<string, PortMatch>();
  private readonly portText = (m: PortMatch): string => {
    const text = portMatchText(m);
    if (!this.portsByText.has(text)) this.portsByText.set(text, m);
    return text;
  };
  private built = 0;
  private reused = 0;

  /** cacheMembers: how many members the sets no rule uses may hold in all; 0 drops them at once. */
  constructor(private readonly view: ClusterView, cacheMembers: number) {
    this.cache = cacheMembers <= 0 ? null : new LRUCache<string, PeerSet>({
      maxSize: cacheMembers,
      // Measured when the set enters the cache; it is maintained there, so its size drifts with churn.
      sizeCalculation: (set) => set.members.size + 1,
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
    for (const set of candidates) this.refresh(set, key);
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
        before.forEachAtStart((key) => {
          if (after === null || !after.members.has(key)) removed.push(this.element(rule, key));
        });
      }
      if (after !== null && afterEntry !== undefined) {
        const rule = afterEntry.rule;
        for (const key of after.members.keys()) if (before === null || !before.hadAtStart(key)) added.push(this.element(rule, key));
      }
    }
    for (const set of this.touchedSets) {
      for (const rule of set.rules) {
        if (moved.has(rule.id)) continue;
        for (const [key, before] of set.touched) {
          const now = set.members.has(key);
          if (!before && now) added.push(this.element(rule, key));
          else if (before && !now) removed.push(this.element(rule, key));
        }
      }
      set.touched.clear();
    }
    this.touchedSets.clear();
    this.journal.clear();
  }

  *elements(): IterableIterator<RuleTableElement> {
    for (const { rule, set } of this.attached.values()) for (const key of set.members.keys()) yield this.element(rule, key);
  }

  get elementCount(): number {
    let n = 0;
    for (const { set } of this.attached.values()) n += set.members.size;
    return n;
  }

  stats(): PeerSetStats {
    return {
      liveSets: this.live.size,
      liveMembers: [...this.live.values()].reduce((n, set) => n + set.members.size, 0),
      pinnedSets: [...this.live.values()].filter((set) => set.pins.size > 0).length,
      cachedSets: this.cache?.size ?? 0,
      cachedMembers: this.cache?.calculatedSize ?? 0,
      built: this.built,
      reused: this.reused,
    };
  }

  private element(rule: BoundRule, key: string): RuleTableElement {
    const bar = key.indexOf('|');
    if (bar < 0) return { kind: 'peer', rule: rule.id, direction: rule.direction, peer: key, port: null };
    const port = this.portsByText.get(key.slice(bar + 1));
    if (port === undefined) throw new Error(`compiler: peer set member with an unknown port: ${key}`);
    return { kind: 'peer', rule: rule.id, direction: rule.direction, peer: key.slice(0, bar), port };
  }

  private note(rule: BoundRule): void {
    if (!this.journal.has(rule.id)) this.journal.set(rule.id, { rule, before: this.attached.get(rule.id)?.set ?? null });
  }

  private build(def: PeerDefinition): PeerSet {
    this.built++;
    const set = new PeerSet(def);
    set.setContribution(STATIC_CONTRIBUTOR, def.staticPeers);
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
    for (const name of def.scanNames) {
      addToIndex(this.byScanName, name, set);
      for (const pod of this.view.podsDeclaring(name)) this.refresh(set, pod);
    }
    if (def.blockBuckets.length > 0) {
      for (const bucket of def.blockBuckets) addToIndex(this.byBucket, bucket, set);
      for (const block of def.blocks) for (const pod of this.view.podsInCidr(block.cidr)) this.refresh(set, pod);
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

  private contribute(set: PeerSet, podKey: string, pod: PodState | undefined, selected: boolean): void {
    const keys = pod === undefined || !canBePeer(pod) ? [] : contribution(set.def, pod, selected, this.portText);
    if (keys.length === 0 && !set.contributions.has(podKey)) return;
    set.setContribution(podKey, keys);
    if (set.touched.size > 0) this.touchedSets.add(set);
  }
}
