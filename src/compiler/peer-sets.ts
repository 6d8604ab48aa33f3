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
import { LRUCache } from 'lru-cache';
import type { Direction, Labels, PeerMatch, PodState, PolicyPeer, PolicyRule, PortMatch, PortSpec, RuleTableElement } from '../api';
import { hasFinished } from '../model';
import type { Cidr } from '../net/ip';
import { cidrContainsIp, formatCidr, parseCidr, parseIp, subtractCidrs } from '../net/ip';
import { portMatchText } from '../ruletable';
import { resolvePorts } from './ports';
import { selectorMatches } from './selector';

type PodPeer = Extract<PolicyPeer, { kind: 'pods' }>;

/** What the peer sets read of the cluster state the compiler keeps. */
export interface ClusterView {
  pod(key: string): PodState | undefined;
  podsIn(namespace: string): Iterable<string>;
  podsDeclaring(portName: string): Iterable<string>;
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
  /** Port names whose declaring pods are peers without being selected ("all peers" or ipBlocks). */
  readonly scanNames: readonly string[];
  /** Some pod peer has no namespaceSelector: it selects in the policy's namespace. */
  readonly ownNamespace: boolean;
  readonly selectsNamespaces: boolean;
}

/** The rule a set's elements are written for. */
export interface BoundRule {
  readonly id: string;
  readonly direction: Direction;
}

interface Member {
  readonly peer: PeerMatch;
  readonly port: PortMatch | null;
  count: number;
}

interface MemberEntry {
  readonly key: string;
  readonly peer: PeerMatch;
  readonly port: PortMatch | null;
}

/** The key of a contribution that comes from the definition itself (pod keys always contain a "/"). */
const STATIC_CONTRIBUTOR = '';

function mustParseCidr(text: string): Cidr {
  const cidr = parseCidr(text);
  if (cidr === null) throw new Error(`compiler: unvalidated CIDR ${text}`);
  return cidr;
}

function memberEntry(peer: PeerMatch, port: PortMatch | null): MemberEntry {
  return { key: port === null ? `${peer}|` : `${peer}|${portMatchText(port)}`, peer, port };
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
  return {
    key: JSON.stringify([ownNamespace ? namespace : null, podPeers, allPeers, blockSpecs, namedPorts]),
    namespace,
    podPeers,
    allPeers,
    blocks,
    staticPeers: allPeers ? ['any'] : blocks.flatMap((b) => subtractCidrs(b.cidr, b.except).map(formatCidr)),
    namedPorts,
    scanNames: allPeers || blocks.length > 0 ? namedPorts.flatMap((p) => (p.kind === 'named' ? [p.name] : [])) : [],
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

/** What a pod adds to the set: its addresses if selected, and for egress its resolved named ports. */
function contribution(def: PeerDefinition, pod: PodState, view: ClusterView): MemberEntry[] {
  // Host-network and finished pods are never selected peers.
  if (pod.hostNetwork || hasFinished(pod) || pod.ips.length === 0) return [];
  const selected = def.podPeers.length > 0 && selectsPod(def, pod, view);
  const named = def.namedPorts.length > 0 ? resolvePorts(def.namedPorts, pod) : [];
  const out: MemberEntry[] = [];
  if (selected) for (const ip of pod.ips) out.push(memberEntry(ip, null));
  if (named.length === 0) return out;
  // Towards selected pods, "all peers" or an ipBlock: the pod's own ports name the numbers.
  const namedIps = selected || def.allPeers ? pod.ips : pod.ips.filter((ip) => inBlocks(def, ip));
  for (const ip of namedIps) for (const port of named) out.push(memberEntry(ip, port));
  return out;
}

class PeerSet {
  readonly rules = new Set<BoundRule>();
  readonly members = new Map<string, Member>();
  /** pod key -> the member keys it holds. */
  readonly contributions = new Map<string, readonly string[]>();
  /** Namespaces its namespaceSelectors currently match (its entries in the index by namespace). */
  readonly selectedNamespaces = new Set<string>();
  /** Members whose presence changed since the last delta: key -> the member before (null: absent). */
  readonly touched = new Map<string, Member | null>();
  /** Off while the set is built: no rule has seen it yet, so there is nothing to compare with. */
  journaling = false;

  constructor(readonly def: PeerDefinition) {}

  setContribution(contributor: string, entries: readonly MemberEntry[]): void {
    const before = this.contributions.get(contributor);
    // Acquire first, so a member the contributor keeps never leaves the set.
    for (const e of entries) {
      const m = this.members.get(e.key);
      if (m !== undefined) m.count++;
      else {
        if (this.journaling && !this.touched.has(e.key)) this.touched.set(e.key, null);
        this.members.set(e.key, { peer: e.peer, port: e.port, count: 1 });
      }
    }
    if (before !== undefined) for (const key of before) this.release(key);
    if (entries.length === 0) this.contributions.delete(contributor);
    else this.contributions.set(contributor, entries.map((e) => e.key));
  }

  private release(key: string): void {
    const m = this.members.get(key);
    if (m === undefined) throw new Error(`compiler: peer set released a member it does not hold: ${key}`);
    if (--m.count > 0) return;
    this.members.delete(key);
    if (this.journaling && !this.touched.has(key)) this.touched.set(key, m);
  }

  /** Whether the member was present when the pending changes began. */
  hadAtStart(key: string): boolean {
    const before = this.touched.get(key);
    return before === undefined ? this.members.has(key) : before !== null;
  }

  forEachAtStart(fn: (key: string, m: Member) => void): void {
    for (const [key, m] of this.members) if (this.touched.get(key) !== null) fn(key, m);
    for (const [key, before] of this.touched) if (before !== null && !this.members.has(key)) fn(key, before);
  }
}

function peerElement(rule: BoundRule, m: Member): RuleTableElement {
  return { kind: 'peer', rule: rule.id, direction: rule.direction, peer: m.peer, port: m.port };
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
  /** Sets attached to at least one active rule. */
  readonly liveSets: number;
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
    let set = this.live.get(def.key);
    if (set === undefined) {
      set = this.cache?.get(def.key);
      if (set === undefined) set = this.build(def);
      else {
        this.cache?.delete(def.key);
        this.reused++;
      }
      this.live.set(def.key, set);
    } else this.reused++;
    set.rules.add(rule);
    this.attached.set(rule.id, { rule, set });
  }

  detach(rule: BoundRule): void {
    const entry = this.attached.get(rule.id);
    if (entry === undefined || entry.rule !== rule) return;
    this.note(rule);
    this.attached.delete(rule.id);
    const set = entry.set;
    set.rules.delete(rule);
    if (set.rules.size > 0) return;
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
        before.forEachAtStart((key, m) => {
          if (after === null || !after.members.has(key)) removed.push(peerElement(rule, m));
        });
      }
      if (after !== null && afterEntry !== undefined) {
        for (const [key, m] of after.members) if (before === null || !before.hadAtStart(key)) added.push(peerElement(afterEntry.rule, m));
      }
    }
    for (const set of this.touchedSets) {
      for (const rule of set.rules) {
        if (moved.has(rule.id)) continue;
        for (const [key, before] of set.touched) {
          const now = set.members.get(key);
          if (before === null && now !== undefined) added.push(peerElement(rule, now));
          else if (before !== null && now === undefined) removed.push(peerElement(rule, before));
        }
      }
      set.touched.clear();
    }
    this.touchedSets.clear();
    this.journal.clear();
  }

  *elements(): IterableIterator<RuleTableElement> {
    for (const { rule, set } of this.attached.values()) for (const m of set.members.values()) yield peerElement(rule, m);
  }

  get elementCount(): number {
    let n = 0;
    for (const { set } of this.attached.values()) n += set.members.size;
    return n;
  }

  stats(): PeerSetStats {
    return {
      liveSets: this.live.size,
      cachedSets: this.cache?.size ?? 0,
      cachedMembers: this.cache?.calculatedSize ?? 0,
      built: this.built,
      reused: this.reused,
    };
  }

  private note(rule: BoundRule): void {
    if (!this.journal.has(rule.id)) this.journal.set(rule.id, { rule, before: this.attached.get(rule.id)?.set ?? null });
  }

  private build(def: PeerDefinition): PeerSet {
    this.built++;
    const set = new PeerSet(def);
    set.setContribution(STATIC_CONTRIBUTOR, def.staticPeers.map((peer) => memberEntry(peer, null)));
    if (def.ownNamespace) {
      addToIndex(this.byOwnNamespace, def.namespace, set);
      for (const pod of this.view.podsIn(def.namespace)) this.refresh(set, pod);
    }
    if (def.selectsNamespaces) {
      this.namespaceSelecting.add(set);
      for (const name of this.view.namespaceNames()) {
        if (!selectsNamespace(def, this.view.namespaceLabels(name))) continue;
        addToIndex(this.bySelectedNamespace, name, set);
        set.selectedNamespaces.add(name);
        for (const pod of this.view.podsIn(name)) this.refresh(set, pod);
      }
    }
    for (const name of def.scanNames) {
      addToIndex(this.byScanName, name, set);
      for (const pod of this.view.podsDeclaring(name)) this.refresh(set, pod);
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
  }

  private refresh(set: PeerSet, podKey: string): void {
    const pod = this.view.pod(podKey);
    const entries = pod === undefined ? [] : contribution(set.def, pod, this.view);
    if (entries.length === 0 && !set.contributions.has(podKey)) return;
    set.setContribution(podKey, entries);
    if (set.touched.size > 0) this.touchedSets.add(set);
  }
}
