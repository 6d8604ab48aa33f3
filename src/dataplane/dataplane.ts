// Programs one node's rule table into its nftables table: a full sync at start-up (and on demand),
// then one transaction per rule-table delta touching only the groups and sets it changed. Every
// change is a single atomic transaction, and the table is never flushed as a whole, so no packet
// ever sees a half-programmed state.
import type { Direction, RuleTableDelta, RuleTableElement } from '../api';
import { DIRECTIONS } from '../api';
import { AgentError, errorMessage } from '../errors';
import { addToIndex, removeFromIndex } from '../multimap';
import type { KeyParts } from './flatten';
import { GroupAllow } from './group-allow';
import type { ChainView, DesiredView, DropLogging, GroupCounters, SetView } from './layout';
import { INTERVAL_SET_SUFFIXES, POD_MAPS, addGroupView, groupCounters, groupName, groupSetName, groupSetNames, podMapView, staticChains } from './layout';
import type { BaseChainSpec, NftBackend, SetDatatype, SetFlag } from './nft';
import { NftApplyError } from './nft';
import type { Transaction } from './nft';
import { diffViews, viewFromSnapshot } from './diff';
import type { Scope } from './diff';
import { RuleState, podDirectionKey } from '../ruletable';
import type { Verdict } from '../ruletable';
import type { Protocol } from '../api';
import type { IpAddress } from '../net/ip';

export interface DataplaneOptions {
  /** Dropped new connections to nfnetlink_log (see DropLogging); default: not logged. */
  readonly logging?: DropLogging;
  /** An audit table: group chains log and count what they would drop, and drop nothing. */
  readonly audit?: boolean;
}

/** One group chain as the kernel counts it: its direction, its member pods, its rules' counters. */
export interface GroupCounterReport {
  readonly chain: string;
  readonly direction: Direction;
  /** Local pods ("namespace/name") whose packets this chain decides: they share its counters. */
  readonly pods: readonly string[];
  readonly counters: GroupCounters;
}

export interface SyncReport {
  readonly kind: 'full' | 'incremental';
  /** nft operations sent in the transaction (0: the kernel already matched). */
  readonly operations: number;
  readonly groups: number;
  readonly durationMs: number;
}

export class DataplaneError extends AgentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DATAPLANE', message, options);
  }
}

function emptyView(): DesiredView {
  return { chains: new Map(), sets: new Map() };
}

type PodMapEntry = { readonly key: KeyParts; readonly jump: string };
/** A set as this process wrote it: its own copy of the elements, updated one element at a time. */
type ProgrammedSet = Omit<SetView<SetDatatype, SetFlag>, 'elements'> & { readonly elements: Map<string, { readonly key: KeyParts; readonly jump?: string }> };
interface ProgrammedView {
  readonly chains: Map<string, ChainView<BaseChainSpec>>;
  readonly sets: Map<string, ProgrammedSet>;
}

/** Sets an incremental diff compares: whole (null) or on some element ids. */
class SetScope extends Map<string, Set<string> | null> {
  whole(set: string): void {
    this.set(set, null);
  }

  element(set: string, id: string): void {
    const ids = this.get(set);
    if (ids === undefined) this.set(set, new Set([id]));
    else ids?.add(id);
  }
}

export class Dataplane {
  private state = new RuleState();
  /** What this process last wrote (or found) in the kernel; null until the first full sync. */
  private programmed: ProgrammedView | null = null;
  /** What each group allows, kept up to date from the deltas. */
  private readonly allow = new Map<string, GroupAllow>();
  /** The pod maps' desired elements, and who claims each address (pod|direction -> group). */
  private readonly podMaps = new Map<string, Map<string, PodMapEntry>>(POD_MAPS.map((m) => [m.name, new Map()]));
  private readonly claims = new Map<string, Map<string, Map<string, string>>>(POD_MAPS.map((m) => [m.name, new Map()]));
  private readonly claimed = new Map<string, { readonly map: string; readonly ip: string }[]>();
  /** pod|direction -> group chain, for isolated local pods with addresses. */
  private readonly groupOf = new Map<string, string>();
  private readonly members = new Map<string, Set<string>>();
  private readonly groupRules = new Map<string, string[]>();
  private readonly ruleGroups = new Map<string, Set<string>>();

  constructor(
    private readonly backend: NftBackend,
    private readonly options: DataplaneOptions = {},
  ) {}

  /** Where dropped new connections are logged, or null. */
  get logging(): DropLogging | null {
    return this.options.logging ?? null;
  }

  get table(): string {
    return this.backend.table;
  }

  /** Start-up, or on demand: the whole rule table, repairing whatever the kernel holds. */
  async sync(elements: Iterable<RuleTableElement>): Promise<SyncReport> {
    this.state = RuleState.of(elements);
    return this.reconcile();
  }

  /** Compares the kernel with the desired state and repairs the difference in one transaction. */
  async reconcile(): Promise<SyncReport> {
    const started = performance.now();
    // Until this transaction succeeds, what the kernel holds is unknown: the next call starts over.
    this.programmed = null;
    for (const pd of [...this.groupOf.keys()]) this.setGroup(pd, null);
    this.allow.clear();
    this.claimed.clear();
    for (const byIp of [...this.podMaps.values(), ...this.claims.values()]) byIp.clear();
    for (const pod of this.state.pods()) {
      for (const d of DIRECTIONS) {
        const pd = podDirectionKey(pod, d);
        const group = this.wantedGroup(pod, d);
        this.setGroup(pd, group);
        this.claim(pd, group, null);
      }
    }
    for (const group of this.members.keys()) this.allow.set(group, GroupAllow.of(this.groupSpans(group)));
    const desired = this.buildView(new Set(this.members.keys()));
    const snapshot = await this.backend.list().catch((err: unknown) => {
      throw new DataplaneError(`table inet ${this.backend.table}: listing it for a full reconcile failed: ${errorMessage(err)}`, { cause: err });
    });
    const current = snapshot === null ? null : viewFromSnapshot(snapshot);
    const tx = diffViews(this.backend.table, current, desired, null);
    await this.run(tx, 'full reconcile');
    this.programmed = { chains: new Map(desired.chains), sets: new Map([...desired.sets].map(([name, set]) => [name, copySet(set)])) };
    return { kind: 'full', operations: tx.size, groups: this.members.size, durationMs: performance.now() - started };
  }

  /**
   * One rule-table delta as one transaction. After any failure the kernel's content is unknown (and
   * groupOf/members already describe the delta), so `programmed` is forgotten and the next call is
   * a full reconcile; a transaction the kernel refused is repaired at once by that reconcile.
   */
  async apply(delta: RuleTableDelta): Promise<SyncReport> {
    const started = performance.now();
    const touched = this.state.apply(delta);
    const programmed = this.programmed;
    if (programmed === null) return this.reconcile();
    this.programmed = null;
    try {
      const sets = new SetScope();
      const changed = new Set<string>();
      const built = this.regroup(touched.podDirections, changed, sets);
      this.applyPeers(delta, built, changed, sets);
      const desired = this.buildView(new Set([...changed].filter((g) => this.members.has(g))));
      const scope: Scope = { chains: changed, sets };
      const tx = diffViews(this.backend.table, programmed, desired, scope);
      await this.run(tx, 'incremental update');
      applyScope(programmed, desired, scope);
      this.programmed = programmed;
      return { kind: 'incremental', operations: tx.size, groups: this.members.size, durationMs: performance.now() - started };
    } catch (err) {
      // Someone changed our table behind our back: what we believe is no longer true. Repair it all.
      if (err instanceof DataplaneError && err.cause instanceof NftApplyError) return this.reconcile();
      throw err;
    }
  }

  /** The group chain and sets that implement a local pod's rules in one direction; null when it is not isolated. */
  implementationOf(pod: string, direction: Direction): { readonly chain: string; readonly sets: readonly string[] } | null {
    const chain = this.groupOf.get(podDirectionKey(pod, direction));
    return chain === undefined ? null : { chain, sets: groupSetNames(chain) };
  }

  /**
   * Moves the touched pods to the groups they now belong to and their addresses in the pod maps.
   * A group that appears is built from its spans and one that goes is dropped: both are compared
   * whole. Returns the groups built (they already hold the delta's peers).
   */
  private regroup(podDirections: Iterable<string>, changed: Set<string>, sets: SetScope): Set<string> {
    const regrouped = new Set<string>();
    for (const pd of podDirections) {
      const [pod, direction] = splitPodDirection(pd);
      const before = this.groupOf.get(pd) ?? null;
      const after = this.wantedGroup(pod, direction);
      if (before !== after) {
        this.setGroup(pd, after);
        if (before !== null) regrouped.add(before);
        if (after !== null) regrouped.add(after);
      }
      // Addresses may have changed even when the group did not.
      this.claim(pd, after, sets);
    }
    const built = new Set<string>();
    for (const group of regrouped) {
      // A group that went and came back within the delta keeps its content (it follows from the signature).
      if (!this.members.has(group)) this.allow.delete(group);
      else if (!this.allow.has(group)) {
        this.allow.set(group, GroupAllow.of(this.groupSpans(group)));
        built.add(group);
      } else continue;
      changed.add(group);
      for (const name of groupSetNames(group)) sets.whole(name);
    }
    return built;
  }

  /**
   * The delta's peers, span by span, into the groups their rule is bound in: an exact key is one
   * element of a hash set; any other span makes the group's interval sets compared whole.
   */
  private applyPeers(delta: RuleTableDelta, built: ReadonlySet<string>, changed: Set<string>, sets: SetScope): void {
    for (const [list, by] of [[delta.removed, -1], [delta.added, 1]] as const) {
      for (const e of list) {
        if (e.kind !== 'peer') continue;
        for (const group of this.ruleGroups.get(e.rule) ?? []) {
          const allow = built.has(group) ? undefined : this.allow.get(group);
          if (allow === undefined) continue;
          const ports = e.port !== null ? [e.port] : this.groupBoundPorts(group, e.rule);
          for (const port of ports) {
            const change = allow.change({ peer: e.peer, port }, by);
            if (change === null) continue;
            changed.add(group);
            if (change.set === 'interval') for (const suffix of INTERVAL_SET_SUFFIXES) sets.whole(groupSetName(group, suffix));
            else sets.element(groupSetName(group, change.set), change.id);
          }
        }
      }
    }
  }

  /**
   * The counters of every group chain, read from the kernel's listing of the table (one listing,
   * whatever the number of groups, queued behind the commits: NftBackend.listCounters). A listed
   * chain the dataplane does not know is left out.
   */
  async counters(): Promise<GroupCounterReport[]> {
    const snapshot = await this.backend.listCounters();
    const out: GroupCounterReport[] = [];
    for (const chain of snapshot?.chains ?? []) {
      const info = this.group(chain.name);
      if (info !== null) out.push({ chain: chain.name, ...info, counters: groupCounters(chain) });
    }
    return out;
  }

  /** A group chain's direction and member pods, or null when no local pod uses a chain of that name. */
  group(chain: string): { readonly direction: Direction; readonly pods: string[] } | null {
    const members = this.members.get(chain);
    if (members === undefined || members.size === 0) return null;
    const pods = [...members].map((pd) => splitPodDirection(pd)[0]).sort();
    return { direction: splitPodDirection(members.values().next().value as string)[1], pods };
  }

  /** The local pod that holds `ip`, if any (a linear scan over local pods: they are few). */
  localPodOf(ip: string): string | null {
    for (const pod of this.state.pods()) if (this.state.ipsOf(pod).includes(ip)) return pod;
    return null;
  }

  /** The verdict the programmed rules give a new connection of a local pod (see RuleState.decide). */
  decide(pod: string, direction: Direction, remote: IpAddress, protocol: Protocol, port: number): Verdict {
    return this.state.decide(pod, direction, remote, protocol, port);
  }

  /** A local pod's elements and the peers of its rules, as programmed (see RuleState.podElements). */
  podElements(pod: string): IterableIterator<RuleTableElement> {
    return this.state.podElements(pod);
  }

  /** The rules bound to a local pod in one direction. */
  boundRules(pod: string, direction: Direction): string[] {
    return this.state.signature(pod, direction).rules;
  }

  private async run(tx: Transaction, what: string): Promise<void> {
    if (tx.size === 0) return;
    try {
      await this.backend.run(tx);
    } catch (err) {
      throw new DataplaneError(`table inet ${this.backend.table}: ${what} failed (${tx.size} operations): ${errorMessage(err)}`, { cause: err });
    }
  }

  /** The group a local pod belongs to in one direction: null when it is not isolated or has no address. */
  private wantedGroup(pod: string, direction: Direction): string | null {
    if (!this.state.isIsolated(pod, direction) || this.state.ipsOf(pod).length === 0) return null;
    const sig = this.state.signature(pod, direction);
    const name = groupName(direction, sig.text);
    if (!this.groupRules.has(name)) {
      this.groupRules.set(name, sig.rules);
      for (const r of sig.rules) addToIndex(this.ruleGroups, r, name);
    }
    return name;
  }

  /** A member of the group: its spans and bound ports are the group's (they make its signature). */
  private representative(group: string): [string, Direction] {
    const pd = this.members.get(group)?.values().next().value;
    if (pd === undefined) throw new DataplaneError(`group chain ${group} has no member pod`);
    return splitPodDirection(pd);
  }

  private groupSpans(group: string): ReturnType<RuleState['spans']> {
    return this.state.spans(...this.representative(group));
  }

  private groupBoundPorts(group: string, rule: string): ReturnType<RuleState['boundPorts']> {
    const [pod, direction] = this.representative(group);
    return this.state.boundPorts(pod, direction, rule);
  }

  /**
   * Points the pod's addresses at `group` in the pod maps (null: at nothing), noting the addresses
   * whose map element may change in `scope`. An address two pods claim (IP reuse seen out of order)
   * goes to the smallest pod|direction key, whatever the order the claims came in.
   */
  private claim(pd: string, group: string | null, scope: SetScope | null): void {
    for (const { map, ip } of this.claimed.get(pd) ?? []) {
      const claimants = this.claims.get(map)?.get(ip);
      claimants?.delete(pd);
      if (claimants !== undefined && claimants.size === 0) this.claims.get(map)?.delete(ip);
      this.settle(map, ip, scope);
    }
    this.claimed.delete(pd);
    if (group === null) return;
    const [pod, direction] = splitPodDirection(pd);
    const mine: { map: string; ip: string }[] = [];
    for (const ip of this.state.ipsOf(pod)) {
      const family = ip.includes(':') ? 6 : 4;
      const map = POD_MAPS.find((m) => m.direction === direction && m.family === family)?.name;
      const byIp = map === undefined ? undefined : this.claims.get(map);
      if (map === undefined || byIp === undefined) continue;
      let claimants = byIp.get(ip);
      if (claimants === undefined) byIp.set(ip, (claimants = new Map()));
      claimants.set(pd, group);
      mine.push({ map, ip });
      this.settle(map, ip, scope);
    }
    this.claimed.set(pd, mine);
  }

  /** The map element of one address from its claims (a new entry object: programmed copies share them). */
  private settle(map: string, ip: string, scope: SetScope | null): void {
    const entries = this.podMaps.get(map);
    if (entries === undefined) return;
    let winner: [string, string] | undefined;
    for (const claim of this.claims.get(map)?.get(ip) ?? []) if (winner === undefined || claim[0] < winner[0]) winner = claim;
    const current = entries.get(ip);
    if (winner === undefined) entries.delete(ip);
    else if (current?.jump !== winner[1]) entries.set(ip, { key: [ip], jump: winner[1] });
    scope?.element(map, ip);
  }

  private setGroup(pd: string, group: string | null): void {
    const before = this.groupOf.get(pd);
    if (before !== undefined) {
      const m = this.members.get(before);
      m?.delete(pd);
      if (m !== undefined && m.size === 0) {
        this.members.delete(before);
        for (const r of this.groupRules.get(before) ?? []) removeFromIndex(this.ruleGroups, r, before);
        this.groupRules.delete(before);
      }
      this.groupOf.delete(pd);
    }
    if (group !== null) {
      this.groupOf.set(pd, group);
      addToIndex(this.members, group, pd);
    }
  }

  /** Desired objects: the static chains, the pod maps, and the given groups (live element maps: diff, never keep). */
  private buildView(groups: ReadonlySet<string>): DesiredView {
    const view = emptyView();
    for (const [name, chain] of staticChains()) view.chains.set(name, chain);
    for (const m of POD_MAPS) view.sets.set(m.name, podMapView(m.family, this.podMaps.get(m.name) ?? new Map()));
    for (const group of groups) {
      const allow = this.allow.get(group);
      if (allow !== undefined) addGroupView(view, group, this.representative(group)[1], allow.content(), this.options.logging ?? null, this.options.audit === true);
    }
    return view;
  }
}

function splitPodDirection(pd: string): [string, Direction] {
  const bar = pd.lastIndexOf('|');
  return [pd.slice(0, bar), pd.slice(bar + 1) as Direction];
}

function copySet(set: SetView<SetDatatype, SetFlag>): ProgrammedSet {
  return { ...set, elements: new Map(set.elements) };
}

/** After a successful incremental transaction, the kernel holds `desired` for everything in scope. */
function applyScope(programmed: ProgrammedView, desired: DesiredView, scope: Scope): void {
  for (const name of scope.chains) {
    const c = desired.chains.get(name);
    if (c === undefined) programmed.chains.delete(name);
    else programmed.chains.set(name, c);
  }
  for (const [name, ids] of scope.sets) {
    const s = desired.sets.get(name);
    const have = programmed.sets.get(name);
    if (s === undefined) programmed.sets.delete(name);
    else if (ids === null || have === undefined) programmed.sets.set(name, copySet(s));
    else {
      for (const id of ids) {
        const e = s.elements.get(id);
        if (e === undefined) have.elements.delete(id);
        else have.elements.set(id, e);
      }
    }
  }
}
